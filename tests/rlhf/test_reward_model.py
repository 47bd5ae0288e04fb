"""Reward models: the pairs data path, a tiny RewardTrainer run, and the loop's rewards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from lora_land.errors import UserError
from lora_land.evaluation.measures import parse_entities, slot_values
from lora_land.evaluation.tasks import load_task
from lora_land.rlhf.pairing import Pair, read_pairs, write_jsonl
from lora_land.rlhf.reward_model import split_pairs
from lora_land.rlhf.rewards import (
    MetricCoverageReward,
    MetricEntityReward,
    MetricReward,
    MultiReferenceReward,
    describe_reward,
    load_reward,
)
from tests.conftest import read_jsonl


def _sst2_pairs(samples_dir: Path, n: int) -> list[Pair]:
    """Gold label chosen over the wrong one, on real sst2 training rows."""
    task = load_task("glue_sst2")
    rows = read_jsonl(samples_dir / "train" / "glue_sst2.jsonl")[:n]
    flip = {"0": "1", "1": "0"}
    return [Pair(task.render(r), r["target"], flip[r["target"]]) for r in rows]


def test_held_out_split_is_seeded_disjoint_and_never_empty(samples_dir):
    pairs = _sst2_pairs(samples_dir, 20)
    train, test = split_pairs(pairs, 0.2, seed=3)
    assert (len(train), len(test)) == (16, 4)
    assert {p.prompt for p in train}.isdisjoint({p.prompt for p in test})
    assert split_pairs(pairs, 0.2, seed=3) == (train, test)
    assert split_pairs(pairs, 0.2, seed=4) != (train, test)
    assert [len(side) for side in split_pairs(pairs[:2], 0.01, 0)] == [1, 1]
    with pytest.raises(UserError, match=r"at least 2 pairs \(got 1\)"):
        split_pairs(pairs[:1], 0.2, 0)
    with pytest.raises(UserError, match=r"between 0 and 1 \(got 1.5\)"):
        split_pairs(pairs, 1.5, 0)


def test_metric_reward_scores_answers_against_the_gold_target(samples_dir):
    task = load_task("glue_sst2")
    rows = read_jsonl(samples_dir / "train" / "glue_sst2.jsonl")[:2]
    gold, wrong = rows[0]["target"], {"0": "1", "1": "0"}[rows[0]["target"]]
    reward = load_reward("metric", task)
    assert isinstance(reward, MetricReward) and reward.name == "metric:binary_accuracy_flex"
    assert reward.score(["p", "p"], [gold, wrong], [rows[0], rows[0]]) == [1.0, 0.0]


def test_metric_coverage_reward_averages_the_metric_with_the_inputs_values_mentioned(samples_dir):
    task = load_task("webnlg")
    row = read_jsonl(samples_dir / "train" / "webnlg.jsonl")[0]
    reward = load_reward("metric+coverage", task)
    assert isinstance(reward, MetricCoverageReward)
    assert reward.name == "metric:rouge+slot_coverage"
    values = slot_values("webnlg", row)
    assert len(values) >= 2
    gold = row["target"]
    metric = MetricReward(task)
    # an answer naming only the first value: its coverage is 1/len(values)
    partial = f"It is about {values[0]}."
    got = reward.score(["p"] * 3, [gold, partial, ""], [row] * 3)
    m = metric.score(["p"] * 3, [gold, partial, ""], [row] * 3)
    gold_cov = sum(v.lower() in gold.lower() for v in values) / len(values)
    assert got[0] == pytest.approx((m[0] + gold_cov) / 2)
    assert got[1] == pytest.approx((m[1] + 1 / len(values)) / 2)
    assert got[2] == pytest.approx(m[2] / 2) and m[2] == 0.0
    assert got[0] > got[1] > got[2]


def test_all_refs_reward_averages_the_metric_over_every_reference_of_the_input(samples_dir):
    task = load_task("viggo")
    rows = read_jsonl(samples_dir / "train" / "viggo.jsonl")
    by_input: dict[str, list[dict]] = {}
    for row in rows:
        by_input.setdefault(row["meaning_representation"], []).append(row)
    shared = next(g for g in by_input.values() if len({r["target"] for r in g}) >= 3)
    single = next(g[0] for g in by_input.values() if len(g) == 1)
    reward = load_reward("metric-all-refs", task, references=rows)
    assert isinstance(reward, MultiReferenceReward) and reward.name == "metric:rouge@all-refs"
    metric = MetricReward(task)
    row, other = shared[0], shared[1]
    refs = reward.references(row)
    assert refs[0] == row["target"] and sorted(refs) == sorted(r["target"] for r in shared)
    # an answer equal to ANOTHER reference: the one-reference metric scores it against
    # row's own target only; this reward against all of them, itself included (1.0)
    answer = other["target"]
    expected = sum(metric.spec.score(answer, r["target"], row) for r in shared) / len(shared)
    [got] = reward.score(["p"], [answer], [row])
    assert got == pytest.approx(expected)
    [alone] = metric.score(["p"], [answer], [row])
    assert got > alone  # the other reference's own 1.0 lifts the mean
    # every row of one input gets the same reward for the same answer
    assert reward.score(["p"] * 2, [answer] * 2, [row, other]) == pytest.approx([got, got])
    # an input with one reference scores as the plain metric does
    assert reward.score(["p"], ["A fun game."], [single]) == metric.score(
        ["p"], ["A fun game."], [single]
    )
    # by default the references are the train part of the zoo's split: never dev or eval
    from lora_land.training.split import load_split

    default = load_reward("metric-all-refs", task)
    assert sum(map(len, default.targets.values())) == len(load_split("viggo").train)


def test_metric_entity_reward_pays_only_for_typed_entities_found(samples_dir):
    task = load_task("conllpp")
    rows = read_jsonl(samples_dir / "train" / "conllpp.jsonl")

    def kinds(r):  # the types a row's target names entities of
        return [k for k, v in parse_entities(r["target"]).items() if v]

    row = next(
        r
        for r in rows
        if len(kinds(r)) == 1
        and len(kinds(r)) < len(parse_entities(r["target"]))
        and len(parse_entities(r["target"])[kinds(r)[0]]) >= 2
    )
    gold = parse_entities(row["target"])
    kind, names = kinds(row)[0], gold[kinds(row)[0]]
    other = next(k for k in gold if k != kind)
    reward = load_reward("metric+entity-f1", task)
    assert isinstance(reward, MetricEntityReward)
    assert reward.name == "metric:rouge+entity_f1"
    # one entity right and nothing else: F1 = 2 * 1 / (n_gold + 1)
    one = json.dumps({k: ([names[0]] if k == kind else []) for k in gold})
    n_gold = sum(map(len, gold.values()))
    wrong_type = json.dumps({k: (list(names) if k == other else []) for k in gold})
    texts = [row["target"], one, "not a dict", wrong_type]
    metric = MetricReward(task).score(["p"] * 4, texts, [row] * 4)
    got = reward.score(["p"] * 4, texts, [row] * 4)
    f1 = [1.0, 2 / (n_gold + 1), 0.0]
    for g, m, f in zip(got[:3], metric[:3], f1, strict=True):
        assert g == pytest.approx((m + f) / 2)
    assert got[0] == pytest.approx(1.0)
    # the right strings under another type: ROUGE pays for them, entity F1 does not
    assert metric[3] > 0 and got[3] == pytest.approx(metric[3] / 2)
    with pytest.raises(UserError, match=r"needs an NER task \(bc5cdr, conllpp\), not 'webnlg'"):
        load_reward("metric+entity-f1", load_task("webnlg"))
    assert "entity F1" in describe_reward("metric+entity-f1")


def test_metric_coverage_reward_is_refused_for_a_task_without_slots():
    with pytest.raises(UserError, match=r"needs a data-to-text task \(e2e_nlg, viggo, webnlg\)"):
        load_reward("metric+coverage", load_task("glue_sst2"))


def test_reward_spec_that_is_neither_metric_nor_a_model_dir_is_refused(tmp_path):
    task = load_task("glue_sst2")
    refused = (
        r"'nope' is neither 'metric' nor 'metric\+coverage' nor 'metric-all-refs' "
        r"nor 'metric\+entity-f1' nor a reward-model dir"
    )
    with pytest.raises(UserError, match=refused):
        load_reward("nope", task)
    with pytest.raises(UserError, match="not a reward model made by"):
        load_reward(str(tmp_path), task)


@pytest.mark.slow
def test_cli_trains_a_reward_model_that_rlhf_can_load(samples_dir, tiny_base, tmp_path, capsys):
    from lora_land.cli import main

    pairs = write_jsonl(tmp_path / "votes.jsonl", _sst2_pairs(samples_dir, 10))
    assert len(read_pairs(pairs)) == 10
    out = tmp_path / "rm"
    argv = ["reward-model", "--pairs", str(pairs), "--out", str(out), "--base", str(tiny_base)]
    assert main([*argv, "--max-steps", "2", "--batch-size", "4"]) == 0
    printed = capsys.readouterr().out
    assert "pairwise accuracy on 2 held-out pairs" in printed
    summary = json.loads((out / "reward_model.json").read_text())
    assert summary["train_pairs"] == 8 and len(summary["losses"]) == 2
    assert summary["held_out_accuracy"]["n"] == 2
    assert 0.0 <= summary["held_out_accuracy"]["mean"] <= 1.0
    assert not list(out.glob("*.bin"))  # safetensors only
    saved = load_file(out / "adapter_model.safetensors")
    assert any("score" in k for k in saved) and any("lora_A" in k for k in saved)  # head + LoRA

    reward = load_reward(str(out), load_task("glue_sst2"))
    values = reward.score(["Review: fine\nLabel: "] * 2, ["1", "0"], [{}, {}])
    assert len(values) == 2 and values[0] != values[1]


def test_model_card_names_each_proxy_reward_in_words():
    from lora_land.rlhf.rewards import describe_reward

    assert describe_reward("metric") == "the task metric against the gold target"
    assert "share of the input's values the answer mentions" in describe_reward("metric+coverage")
    assert "every reference the training rows give" in describe_reward("metric-all-refs")
    assert describe_reward("/runs/reward_models/votes") == "a reward model"
