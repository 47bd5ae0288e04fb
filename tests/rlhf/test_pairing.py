"""`max_min` pairing, the pairs file format, and the intervals the loop reports."""

from __future__ import annotations

import json

import pytest

from lora_land.errors import UserError
from lora_land.rlhf.pairing import Sample, max_min_pairs, read_pairs, write_jsonl
from tests.conftest import read_jsonl


def _s(index: int, text: str, reward: float, seed: int = 0) -> Sample:
    return Sample(index, f"prompt {index}", text, 1.0, seed, "eos", len(text), reward)


def test_best_and_worst_answer_of_each_prompt_make_the_pair():
    samples = [_s(0, "a", 0.2), _s(0, "b", 0.9), _s(0, "c", 0.1), _s(1, "x", 1.0), _s(1, "y", 0)]
    pairing = max_min_pairs(samples)
    assert [(p.prompt, p.chosen, p.rejected) for p in pairing.pairs] == [
        ("prompt 0", "b", "c"),
        ("prompt 1", "x", "y"),
    ]
    assert (pairing.pairs[0].reward_chosen, pairing.pairs[0].reward_rejected) == (0.9, 0.1)
    assert (pairing.prompts, pairing.skipped_ties) == (2, 0)


def test_prompts_whose_answers_all_score_the_same_are_skipped():
    samples = [_s(0, "a", 1.0), _s(0, "b", 1.0), _s(1, "c", 0.0), _s(1, "d", 0.5)]
    pairing = max_min_pairs(samples)
    assert [(p.chosen, p.rejected) for p in pairing.pairs] == [("d", "c")]
    assert pairing.skipped_ties == 1


def test_length_penalty_prefers_the_shorter_of_equally_rewarded_answers():
    samples = [_s(0, "short", 1.0), _s(0, "a much longer answer", 1.0)]
    assert max_min_pairs(samples).pairs == []  # a tie without the penalty
    pair = max_min_pairs(samples, length_penalty=0.01).pairs[0]
    assert (pair.chosen, pair.rejected) == ("short", "a much longer answer")


def test_length_matched_pairs_take_the_worst_answer_of_a_length_like_the_best_ones():
    best = "ten chars!"  # 10
    samples = [
        _s(0, best, 0.9),
        _s(0, "x" * 30, 0.0),  # the worst, but 3x as long
        _s(0, "y" * 12, 0.4),  # 1.2x: within 1.25
        _s(0, "z" * 11, 0.6),
        _s(1, "a" * 10, 1.0),
        _s(1, "b" * 40, 0.1),  # prompt 1: the only worse answer is 4x as long
    ]
    plain = max_min_pairs(samples)
    assert [p.rejected for p in plain.pairs] == ["x" * 30, "b" * 40]
    matched = max_min_pairs(samples, max_length_ratio=1.25)
    assert [(p.chosen, p.rejected, p.reward_rejected) for p in matched.pairs] == [
        (best, "y" * 12, 0.4)
    ]
    assert (matched.prompts, matched.skipped_ties, matched.skipped_length) == (2, 0, 1)
    # a factor that admits every answer is the plain rule
    assert max_min_pairs(samples, max_length_ratio=10).pairs == plain.pairs
    with pytest.raises(UserError, match=r"max length ratio must be >= 1 or 0 for none"):
        max_min_pairs(samples, max_length_ratio=0.5)


def test_unscored_samples_and_negative_penalties_are_refused():
    with pytest.raises(UserError, match="no reward"):
        max_min_pairs([Sample(0, "p", "a", 1.0, 7, "eos", 1)])
    with pytest.raises(UserError, match=r"length penalty must be >= 0 \(got -1"):
        max_min_pairs([_s(0, "a", 1.0)], length_penalty=-1)


def test_pairs_file_round_trips_and_names_bad_lines(tmp_path):
    samples = [_s(0, "good", 1.0), _s(0, "bad", 0.0)]
    path = write_jsonl(tmp_path / "pairs.jsonl", max_min_pairs(samples).pairs)
    assert [(p.prompt, p.chosen, p.rejected) for p in read_pairs(path)] == [
        ("prompt 0", "good", "bad")
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n{oops\n")
    with pytest.raises(UserError, match=r"bad.jsonl:2 is not valid JSON"):
        read_pairs(bad)
    bad.write_text(json.dumps({"prompt": "p", "chosen": "a"}) + "\n")
    with pytest.raises(UserError, match=r"bad.jsonl:1: .*missing or not text: \['rejected'\]"):
        read_pairs(bad)
    same = {"prompt": "p", "chosen": "a", "rejected": "a"}
    bad.write_text(json.dumps(same) + "\n")
    with pytest.raises(UserError, match=r"no usable pairs \(1 with identical texts\)"):
        read_pairs(bad)
    arena = {"prompt": "p", "chosen": "", "rejected": "b", "task": "t", "vote_id": 3}
    bad.write_text(json.dumps(same) + "\n" + json.dumps(arena) + "\n")
    assert [(p.chosen, p.rejected) for p in read_pairs(bad)] == [("", "b")]
    with pytest.raises(UserError, match="not found"):
        read_pairs(tmp_path / "none.jsonl")


def test_loop_prompts_come_from_training_rows_never_the_evaluation_rows(samples_dir, tmp_path):
    from lora_land.rlhf.loop import prompt_slices, training_rows

    rows, source = training_rows("glue_sst2")
    assert "train" in source and len(rows) > 100
    evaluation = {r["sentence"] for r in read_jsonl(samples_dir / "glue_sst2.jsonl")}
    assert evaluation.isdisjoint({r["sentence"] for r in rows})
    slices = prompt_slices(rows, 50, 3, seed=0)
    seen = [{r["sentence"] for r in part} for part in slices]
    assert [len(s) for s in seen] == [50, 50, 50]
    assert seen[0].isdisjoint(seen[1]) and seen[1].isdisjoint(seen[2])  # fresh per iteration
    assert prompt_slices(rows, 50, 3, seed=0) == slices
    given = tmp_path / "rows.jsonl"
    given.write_text('{"sentence": "x", "target": "1"}\n')
    assert training_rows("glue_sst2", given) == ([{"sentence": "x", "target": "1"}], str(given))


def test_balancing_keeps_as_many_pairs_for_each_chosen_label_as_the_rarest_has():
    from lora_land.rlhf.pairing import Pair, Pairing, balance_chosen

    pairs = [Pair(f"p{i}", " 1", " 0", 1.0, 0.0) for i in range(5)]
    pairs += [Pair(f"q{i}", "0", "1", 1.0, 0.0) for i in range(2)]
    balanced = balance_chosen(Pairing(pairs, prompts=9, skipped_ties=2), seed=3)
    chosen = [p.chosen.strip() for p in balanced.pairs]
    assert chosen.count("1") == chosen.count("0") == 2
    assert balanced.dropped_to_balance == 3 and balanced.prompts == 9
    assert [p for p in pairs if p in balanced.pairs] == balanced.pairs  # order kept
    assert balance_chosen(Pairing(pairs, 9, 2), seed=3) == balanced  # seeded
    one_label = Pairing(pairs[:5], 5, 0)
    assert balance_chosen(one_label) is one_label  # nothing to balance against
