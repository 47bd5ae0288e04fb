"""Reward models: the pairs data path, a tiny RewardTrainer run, and the loop's rewards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from lora_land.errors import UserError
from lora_land.evaluation.tasks import load_task
from lora_land.rlhf.pairing import Pair, read_pairs, write_jsonl
from lora_land.rlhf.reward_model import split_pairs
from lora_land.rlhf.rewards import MetricReward, load_reward
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


def test_reward_spec_that_is_neither_metric_nor_a_model_dir_is_refused(tmp_path):
    task = load_task("glue_sst2")
    with pytest.raises(UserError, match=r"'nope' is neither 'metric' nor a reward-model dir"):
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
