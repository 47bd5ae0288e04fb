"""Every metric against hand-worked examples, including the report's edge cases."""

from __future__ import annotations

import pytest

from lora_land.evaluation.metrics import get_metric, score, score_many


def test_every_catalog_task_metric_fn_is_registered_and_higher_is_better() -> None:
    from lora_land.catalog import load_catalog

    tasks = load_catalog().tasks
    assert len(tasks) == 31
    for task in tasks.values():
        assert get_metric(task.metric_fn).name == task.metric_fn, task.name
        assert task.higher_is_better, task.name  # the only direction every metric here has


def test_unknown_metric_lists_valid_names() -> None:
    with pytest.raises(KeyError, match=r"valid metrics: .*binary_accuracy_flex"):
        get_metric("f1_macro")


@pytest.mark.parametrize(
    ("pred", "target", "expected"),
    [
        ("Positive", "positive", 1.0),  # casing
        ("positive.", "Positive", 1.0),  # trailing period
        ("1.0", "1", 1.0),  # numbers compare by value, both ways
        ("1", "1.0", 1.0),
        ("2", "1", 0.0),
        ("", "1", 0.0),
        ("the answer is 1", "1", 0.0),  # plain accuracy does not search
    ],
)
def test_accuracy(pred: str, target: str, expected: float) -> None:
    assert score("accuracy", pred, target) == expected


@pytest.mark.parametrize(
    ("pred", "target", "expected"),
    [
        ("1", "1", 1.0),
        ("Yes", "1", 1.0),
        ("no", "0", 1.0),
        ("True", "yes", 1.0),
        ("False", "True", 0.0),
        ("positive", "1", 1.0),
        ("The sentiment is negative.", "0", 1.0),
        ("I cannot tell", "1", 0.0),  # no boolean found: wrong
        ("maybe", "maybe", 0.0),  # nothing to compare in either
        ("10", "0", 0.0),  # the report checks "1" before "0": "10" reads as true
    ],
)
def test_binary_accuracy_flex(pred: str, target: str, expected: float) -> None:
    assert score("binary_accuracy_flex", pred, target) == expected


def test_digit_presence_variants() -> None:
    assert score("mrpc_accuracy", "Answer: 1", "1") == 1.0
    assert score("mrpc_accuracy", "0", "1") == 0.0
    assert score("mrpc_accuracy", "0.", "0") == 1.0  # vanilla accuracy, trailing period
    assert score("mnli_accuracy", "label 2", "2") == 1.0
    assert score("mnli_accuracy", "neutral", "1") == 0.0
    assert score("hellaswag_accuracy", "ending 3", "3") == 1.0
    assert score("hellaswag_accuracy", "ending 3", "0") == 0.0


def test_rouge_l_fmeasure() -> None:
    assert score("rouge", "the cat sat", "the cat sat") == pytest.approx(1.0)
    # LCS "the cat" = 2 tokens; precision 2/2, recall 2/3 -> F = 0.8
    assert score("rouge", "The cat", "the cat sat") == pytest.approx(0.8)
    assert score("rouge", "", "the cat sat") == 0.0


@pytest.mark.parametrize(
    ("pred", "target", "expected"),
    [
        ("4.75", "4.75", 1.0),
        ("3", "4.0", 0.8),  # 1 - |3 - 4| / 5
        ("Similarity: 2.5 out of 5", "5.0", 0.5),  # first number found
        ("no idea", "3.0", 0.0),  # no number: wrong
        ("7", "3.0", 0.0),  # out of range counts as no number
    ],
)
def test_stsb_rises_with_quality(pred: str, target: str, expected: float) -> None:
    assert score("stsb", pred, target) == pytest.approx(expected)


def test_gsm8k_compares_last_numbers() -> None:
    assert score("gsm8k_regex", "3 + 4 = 7. The answer is 7", "7") == 1.0
    assert score("gsm8k_regex", "#### 1,234", "1234") == 1.0
    assert score("gsm8k_regex", "It costs $18.00.", "18") == 1.0
    assert score("gsm8k_regex", "7 then 8", "7") == 0.0
    assert score("gsm8k_regex", "no numbers", "7") == 0.0


def test_first_number_choice_and_label_variants() -> None:
    assert score("mmlu_accuracy", "3", "3") == 1.0
    assert score("mmlu_accuracy", "Answer: 2. Because...", "2") == 1.0
    assert score("mmlu_accuracy", "2.0", "2") == 1.0
    assert score("mmlu_accuracy", "I do not know", "2") == 0.0
    assert score("winogrande_accuracy", "Option 1", "1") == 1.0
    assert score("winogrande_accuracy", "Option 2", "1") == 0.0
    assert score("arc_accuracy", "b", "B") == 1.0
    assert score("arc_accuracy", "The answer is C.", "C") == 1.0
    assert score("arc_accuracy", "A cat", "C") == 0.0  # the first standalone letter is A
    assert score("covid_accuracy", "extremely positive", "Extremely Positive") == 1.0
    assert score("covid_accuracy", "Extremely Positive", "Positive") == 0.0
    assert score("covid_accuracy", "It is Neutral.", "Neutral") == 1.0


def test_dbpedia_and_customer_support() -> None:
    assert score("dbpedia", "0", "Company") == pytest.approx(1.0)  # 0-based index
    assert score("dbpedia", "Company", "Company") == pytest.approx(1.0)
    assert score("dbpedia", "Artist", "Company") == 0.0
    assert score("customer_support_accuracy", "I think: replace card", "replace card") == 1.0
    assert score("customer_support_accuracy", "check balance", "replace card") == 0.0


def test_humaneval_needs_the_row() -> None:
    with pytest.raises(ValueError, match="entry_point"):
        score("humaneval", "return 1", "return 1")


def test_score_many_is_the_mean() -> None:
    assert score_many("accuracy", ["1", "0", "1", "x"], ["1", "1", "1", "1"]) == 0.5
    assert score_many("accuracy", [], []) == 0.0
    with pytest.raises(ValueError, match="2 predictions for 1 targets"):
        score_many("accuracy", ["1", "0"], ["1"])
