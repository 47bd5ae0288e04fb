"""Proxy rewards for the loop: the task's metric against the gold target, or a reward model.

`MetricReward` is the default, a verifiable reward: the report's metric for the task scores
each sampled answer against the row's `target`. `load_reward("metric" | DIR)` picks it or a
Bradley-Terry reward model trained with `lora-land reward-model` (see `reward_model.py`, which
needs torch and is only imported when a directory is given). Rewards score text; they sample
nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from lora_land.catalog import Task
from lora_land.errors import UserError
from lora_land.evaluation.metrics import get_metric


class Reward(Protocol):
    name: str  # "metric:<fn>" or "reward-model:<dir name>", recorded in summaries

    def score(
        self, prompts: Sequence[str], texts: Sequence[str], rows: Sequence[Mapping]
    ) -> list[float]: ...


class MetricReward:
    """The task's own metric of each answer against the row's gold `target`."""

    def __init__(self, task: Task) -> None:
        self.spec = get_metric(task.metric_fn)
        self.name = f"metric:{self.spec.name}"

    def score(
        self, prompts: Sequence[str], texts: Sequence[str], rows: Sequence[Mapping]
    ) -> list[float]:
        return [
            self.spec.score(text, str(row["target"]), row)
            for text, row in zip(texts, rows, strict=True)
        ]


def load_reward(spec: str, task: Task, base_source: str | None = None) -> Reward:
    """`"metric"` -> the task's metric; a directory -> the reward model trained there."""
    if spec == "metric":
        return MetricReward(task)
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise UserError(
            f"--reward {spec!r} is neither 'metric' nor a reward-model directory "
            "(train one with `lora-land reward-model --pairs FILE.jsonl`)"
        )
    from lora_land.rlhf.reward_model import RewardModelScorer

    return RewardModelScorer(path, base_source)
