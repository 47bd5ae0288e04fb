"""The fixed, seeded train/dev split of each task's training rows.

Recipes, steps and which adapters ship are chosen on the dev part; the evaluation rows
(`shared/data/samples/<task>.jsonl`) only measure, once. Other tools that need prompts to
train on (e.g. RLHF prompt slices) take them from the train part, never from dev or eval.

How rows are assigned: rows are grouped by their input (every field but `target` and
`source`), because some tasks repeat one input with several references (e2e_nlg: ~530 distinct
meaning representations in 2000 rows); a group never straddles the split, so dev never asks
for an input the adapter saw in training. Each group gets a key, the SHA-256 of the seed, the
task and the input; groups in key order fill dev until it holds at least `dev_rows` rows
(at most half the rows). So the split depends only on the rows' content, not on file order,
and stays put when rows are added (only groups keyed below the dev boundary can join dev).
This module reads JSONL and hashes; it imports no torch and trains nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lora_land.config import PROJECT_ROOT
from lora_land.errors import UserError
from lora_land.evaluation.tasks import read_jsonl

TRAIN_DIR = PROJECT_ROOT.parent / "shared" / "data" / "samples" / "train"
DEV_ROWS = 100  # at least this many dev rows where the data allows (at most half the rows)
# Tasks whose choices need a larger dev split than DEV_ROWS. glue_qnli: every DPO run moved the
# label threshold, and 100 rows could not tell a move that pays from one that costs (+0.080 on
# dev, -0.120 on the evaluation rows); 400 rows halve the interval. Old dev rows stay in dev
# (groups fill dev in key order), but rows the adapter trained on join it: retrain after a change.
DEV_ROWS_BY_TASK = {"glue_qnli": 400}
SPLIT_SEED = "lora-land-dev-v1"  # changing it changes every dev set: never do it lightly
NON_INPUT_FIELDS = frozenset({"target", "source"})


@dataclass(frozen=True)
class TaskSplit:
    """Indices (line order among the file's non-blank rows) of the train and dev parts."""

    task: str
    rows: tuple[dict, ...]
    train_index: tuple[int, ...]
    dev_index: tuple[int, ...]

    @property
    def train(self) -> list[dict]:
        return [self.rows[i] for i in self.train_index]

    @property
    def dev(self) -> list[dict]:
        return [self.rows[i] for i in self.dev_index]


def input_key(row: Mapping[str, object]) -> str:
    """The row's input as canonical JSON: what must not appear on both sides of the split."""
    return json.dumps(
        {k: v for k, v in row.items() if k not in NON_INPUT_FIELDS}, sort_keys=True, default=str
    )


def _group_hash(seed: str, task: str, key: str) -> str:
    return hashlib.sha256(f"{seed}\x00{task}\x00{key}".encode()).hexdigest()


def split_indices(
    rows: Sequence[Mapping[str, object]],
    task: str,
    *,
    dev_rows: int = DEV_ROWS,
    seed: str = SPLIT_SEED,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(train indices, dev indices), each ascending; see the module docstring for the rule."""
    if dev_rows < 1:
        raise UserError(f"dev_rows must be at least 1, got {dev_rows}")
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(input_key(row), []).append(i)
    order = sorted(groups, key=lambda k: _group_hash(seed, task, k))
    want = min(dev_rows, len(rows) // 2)
    dev: list[int] = []
    for key in order:
        if len(dev) >= want:
            break
        dev += groups[key]
    dev_set = set(dev)
    train = tuple(i for i in range(len(rows)) if i not in dev_set)
    return train, tuple(sorted(dev))


def dev_rows_for(task: str) -> int:
    """How many dev rows `task` holds out at least (`DEV_ROWS_BY_TASK`, else `DEV_ROWS`)."""
    return DEV_ROWS_BY_TASK.get(task, DEV_ROWS)


def load_split(task: str, train_dir: Path = TRAIN_DIR, *, dev_rows: int | None = None) -> TaskSplit:
    """The task's training rows split into train and dev (`dev_rows_for(task)` dev rows unless
    `dev_rows` is given); a missing file is a `UserError`."""
    path = Path(train_dir) / f"{task}.jsonl"
    if not path.is_file():
        raise UserError(f"no training rows for task {task!r}: {path} does not exist")
    rows = read_jsonl(path)
    if len(rows) < 2:
        raise UserError(f"{path} holds {len(rows)} row(s); a train/dev split needs at least 2")
    train, dev = split_indices(
        rows, task, dev_rows=dev_rows_for(task) if dev_rows is None else dev_rows
    )
    return TaskSplit(task, tuple(rows), train, dev)
