"""The seeded train/dev split: disjoint, complete, deterministic, order-independent, grouped."""

from __future__ import annotations

import json
import random

import pytest

from lora_land.errors import UserError
from lora_land.training.split import (
    DEV_ROWS,
    DEV_ROWS_BY_TASK,
    dev_rows_for,
    input_key,
    load_split,
    split_indices,
)

TASKS_WITH_TRAIN_ROWS = 20


def _rows(n: int, repeats: int = 1) -> list[dict]:
    return [{"sentence": f"s{i // repeats}", "target": str(i % 2)} for i in range(n)]


def test_train_and_dev_are_disjoint_and_cover_every_row():
    train, dev = split_indices(_rows(500), "t")
    assert set(train).isdisjoint(dev)
    assert sorted(train + dev) == list(range(500))
    assert len(dev) == DEV_ROWS


def test_split_is_deterministic_and_depends_on_the_task_name():
    rows = _rows(400)
    assert split_indices(rows, "a") == split_indices(rows, "a")
    assert split_indices(rows, "a")[1] != split_indices(rows, "b")[1]


def test_dev_membership_does_not_depend_on_file_order():
    rows = _rows(300)
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    dev_a = {input_key(rows[i]) for i in split_indices(rows, "t")[1]}
    dev_b = {input_key(shuffled[i]) for i in split_indices(shuffled, "t")[1]}
    assert dev_a == dev_b


def test_rows_sharing_an_input_stay_on_one_side():
    rows = _rows(400, repeats=4)  # 100 inputs with 4 references each, like e2e_nlg
    train, dev = split_indices(rows, "t")
    assert {input_key(rows[i]) for i in train}.isdisjoint({input_key(rows[i]) for i in dev})
    assert len(dev) >= DEV_ROWS and len(dev) % 4 == 0


def test_small_files_give_at_most_half_to_dev():
    train, dev = split_indices(_rows(30), "t")
    assert len(dev) == 15 and len(train) == 15


def test_bad_sizes_and_missing_files_are_named(tmp_path):
    with pytest.raises(UserError, match="dev_rows must be at least 1, got 0"):
        split_indices(_rows(10), "t", dev_rows=0)
    with pytest.raises(UserError, match="no training rows for task 'nope'"):
        load_split("nope", tmp_path)
    (tmp_path / "one.jsonl").write_text(json.dumps({"x": 1, "target": "a"}) + "\n")
    with pytest.raises(UserError, match="holds 1 row"):
        load_split("one", tmp_path)


def test_every_shared_task_gets_a_dev_of_100_rows_disjoint_by_input(samples_dir):
    files = sorted((samples_dir / "train").glob("*.jsonl"))
    assert len(files) == TASKS_WITH_TRAIN_ROWS
    for path in files:
        split = load_split(path.stem, path.parent)
        assert len(split.dev) >= dev_rows_for(path.stem) >= DEV_ROWS, path.stem
        train_inputs = {input_key(r) for r in split.train}
        assert not train_inputs & {input_key(r) for r in split.dev}, path.stem
        assert len(split.train) + len(split.dev) == len(split.rows)


def test_a_task_with_a_larger_dev_split_keeps_the_smaller_ones_rows_in_dev(samples_dir):
    """glue_qnli holds out 400 rows; the 100 of the default split are among them (groups fill
    dev in key order), and its train part shrinks by as many rows as dev grows."""
    assert DEV_ROWS_BY_TASK["glue_qnli"] == 400
    path = samples_dir / "train" / "glue_qnli.jsonl"
    large = load_split("glue_qnli", path.parent)
    small = load_split("glue_qnli", path.parent, dev_rows=DEV_ROWS)
    assert len(large.dev) >= 400 > len(small.dev) >= DEV_ROWS
    assert set(small.dev_index) < set(large.dev_index)
    assert len(large.train) == len(large.rows) - len(large.dev)
    with pytest.raises(UserError, match="dev_rows must be at least 1"):
        load_split("glue_qnli", path.parent, dev_rows=0)  # not the task's default
