"""Proxy rewards for the loop: the task's metric against the gold target, or a reward model.

`MetricReward` is the default, a verifiable reward: the report's metric for the task scores
each sampled answer against the row's `target`. `MetricCoverageReward` ("metric+coverage",
data-to-text tasks only) averages it with the answer's slot coverage, the share of the input's
values the text mentions, so that a sample is not preferred only for matching the one reference's
wording. `MultiReferenceReward` ("metric-all-refs") averages the metric over every reference
the training rows give the same input, as the evaluation does over its rows (e2e_nlg and viggo
repeat an input with several references), so that a sample is not preferred for matching one
of them. `MetricEntityReward` ("metric+entity-f1", NER tasks only) averages the metric with the
answer's entity F1, which pays only for entities found with their type. `load_reward("metric" |
"metric+coverage" | "metric-all-refs" | "metric+entity-f1" | DIR)` picks one or a
Bradley-Terry reward model trained with `lora-land reward-model` (see `reward_model.py`, which
needs torch and is only imported when a directory is given). Rewards score text; they sample
nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from lora_land.catalog import Task
from lora_land.errors import UserError
from lora_land.evaluation.measures import DATA_TO_TEXT, NER_TASKS, entity_f1, slot_coverage
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


class _MetricWithMeasure:
    """The mean of the task's metric against the gold target and a second per-row measure
    (`self.measure(text, target, row)`); subclasses say which measure and for which tasks."""

    metric: MetricReward
    measure: Callable[[str, str, Mapping | None], float]

    def score(
        self, prompts: Sequence[str], texts: Sequence[str], rows: Sequence[Mapping]
    ) -> list[float]:
        metric = self.metric.score(prompts, texts, rows)
        return [
            (m + self.measure(text, str(row["target"]), row)) / 2
            for m, text, row in zip(metric, texts, rows, strict=True)
        ]


def _only_for(task: Task, tasks, spec: str, kind: str) -> None:
    if task.name not in tasks:
        raise UserError(
            f"--reward {spec} needs {kind} ({', '.join(sorted(tasks))}), not {task.name!r}"
        )


class MetricCoverageReward(_MetricWithMeasure):
    """The metric's mean with the answer's slot coverage (the share of the input's values it
    mentions); data-to-text tasks only."""

    def __init__(self, task: Task) -> None:
        _only_for(task, DATA_TO_TEXT, "metric+coverage", "a data-to-text task")
        self.metric = MetricReward(task)
        self.measure = slot_coverage(task.name)
        self.name = f"{self.metric.name}+slot_coverage"


class MetricEntityReward(_MetricWithMeasure):
    """The metric's mean with the answer's entity F1 (the predicted (type, entity) pairs
    against the target's); NER tasks only. ROUGE on an entity dict pays for the JSON skeleton
    and for near-miss spans; entity F1 pays only for entities found with their type, and
    nothing for an answer that does not parse."""

    def __init__(self, task: Task) -> None:
        _only_for(task, NER_TASKS, "metric+entity-f1", "an NER task")
        self.metric = MetricReward(task)
        self.measure = entity_f1
        self.name = f"{self.metric.name}+entity_f1"


class MultiReferenceReward:
    """The task's metric averaged over every gold reference that `references` (the training
    rows the loop takes prompts from) give the row's input: the answer's expected score on a
    row of that input, which is what an evaluation that repeats an input with several
    references averages. An input with one reference scores as `MetricReward` does."""

    def __init__(self, task: Task, references: Sequence[Mapping]) -> None:
        from lora_land.training.split import input_key

        self.metric = MetricReward(task)
        self.name = f"{self.metric.name}@all-refs"
        self._key = input_key
        self.targets: dict[str, list[str]] = {}
        for row in references:
            self.targets.setdefault(input_key(row), []).append(str(row["target"]))

    def references(self, row: Mapping) -> list[str]:
        """The row's own target first, then the other references its input has."""
        own = str(row["target"])
        others = list(self.targets.get(self._key(row), []))
        if own in others:
            others.remove(own)
        return [own, *others]

    def score(
        self, prompts: Sequence[str], texts: Sequence[str], rows: Sequence[Mapping]
    ) -> list[float]:
        spec = self.metric.spec
        out = []
        for text, row in zip(texts, rows, strict=True):
            refs = self.references(row)
            out.append(sum(spec.score(text, ref, row) for ref in refs) / len(refs))
        return out


REWARDS = {  # the named rewards, in words (the loader's message, the CLI help, model cards)
    "metric": "the task metric against the gold target",
    "metric+coverage": (
        "the mean of the task metric against the gold target and the share of the input's "
        "values the answer mentions (data-to-text tasks)"
    ),
    "metric-all-refs": (
        "the task metric averaged over every reference the training rows give the same input"
    ),
    "metric+entity-f1": (
        "the mean of the task metric against the gold target and the answer's entity F1 (NER tasks)"
    ),
}


def describe_reward(spec: str) -> str:
    """A run's `--reward` in words: a named reward's description, else a reward model."""
    return REWARDS.get(spec, "a reward model")


def load_reward(
    spec: str,
    task: Task,
    base_source: str | None = None,
    references: Sequence[Mapping] | None = None,
) -> Reward:
    """`"metric"` -> the task's metric; `"metric+coverage"` -> its mean with slot coverage
    (data-to-text tasks); `"metric+entity-f1"` -> its mean with entity F1 (NER tasks);
    `"metric-all-refs"` -> its mean over the references `references`
    give each input (default: the train part of the task's split); a directory -> the reward
    model trained there."""
    if spec == "metric":
        return MetricReward(task)
    if spec == "metric+coverage":
        return MetricCoverageReward(task)
    if spec == "metric+entity-f1":
        return MetricEntityReward(task)
    if spec == "metric-all-refs":
        if references is None:
            from lora_land.rlhf.loop import training_rows

            references, _ = training_rows(task.name)
        return MultiReferenceReward(task, references)
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise UserError(
            f"--reward {spec!r} is neither {' nor '.join(map(repr, REWARDS))} nor a "
            "reward-model directory (train one with `lora-land reward-model --pairs FILE.jsonl`)"
        )
    from lora_land.rlhf.reward_model import RewardModelScorer

    return RewardModelScorer(path, base_source)
