"""Reading and validating the files under `leaderboards/`.

Each reader turns one file into catalog records and raises `CatalogDataError` naming the
file, the row (CSV line or JSON entry) and the problem: a missing column, an unknown task or
base model, a score out of range, a duplicate row, bad JSON. This module does not compute
statistics or answer queries (see `lora_land.catalog.catalog`).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from lora_land.catalog.models import BaseModel, Task, template_fields
from lora_land.errors import CatalogDataError

TASKS_FILE = "tasks.json"
BASES_FILE = "base_models.json"
SCORES_FILE = "scores_table12.csv"
OPENAI_FILE = "openai_table12.csv"

# Direction of each metric as labelled in the report.
_METRIC_HIGHER_IS_BETTER = {"rouge": True, "accuracy": True, "humaneval": True, "mae": False}
# Tasks whose printed numbers contradict their metric label: (higher_is_better, note).
_DIRECTION_OVERRIDES = {
    "glue_stsb": (
        True,
        "Labelled 'mae' in the report, but its scores rise with quality (GPT-4 0.773, "
        "fine-tuned up to 0.913): shown here as higher-is-better.",
    ),
}
_SCORE_RANGE = (0.0, 1.0)
_LIFT_TOLERANCE = 0.0015  # printed values have 3 decimals


def _fail(path: Path, where: str, problem: str) -> CatalogDataError:
    return CatalogDataError(f"{path.name}: {where}: {problem}")


def read_json_list(path: Path) -> list[dict[str, Any]]:
    """A JSON file holding a list of objects."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise CatalogDataError(f"{path.name}: file not found at {path}") from e
    except json.JSONDecodeError as e:
        raise _fail(path, f"line {e.lineno} column {e.colno}", f"invalid JSON ({e.msg})") from e
    if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
        raise _fail(path, "top level", "expected a JSON list of objects")
    return data


def read_csv_rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[str, dict[str, str]]]:
    """Yield (`"line N"`, row) for each data row, after checking the header's columns."""
    try:
        handle = path.open(newline="", encoding="utf-8")
    except FileNotFoundError as e:
        raise CatalogDataError(f"{path.name}: file not found at {path}") from e
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise _fail(path, "line 1 (header)", f"missing column(s) {missing}")
        for row in reader:
            where = f"line {reader.line_num}"
            if None in row or any(row[c] is None for c in required):
                raise _fail(path, where, f"expected {len(reader.fieldnames or [])} fields")
            yield where, row


def parse_score(
    path: Path, where: str, column: str, raw: str, lo: float = 0.0, hi: float = 1.0
) -> float:
    """A float in [lo, hi], or `CatalogDataError` naming the column and the limits."""
    try:
        value = float(raw)
    except (TypeError, ValueError) as e:
        raise _fail(path, where, f"{column}={raw!r} is not a number") from e
    if math.isnan(value) or not lo <= value <= hi:
        raise _fail(path, where, f"{column}={raw} is out of range [{lo}, {hi}]")
    return value


def _require(path: Path, where: str, entry: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    missing = [k for k in keys if k not in entry]
    if missing:
        raise _fail(path, where, f"missing field(s) {missing}")


def read_openai(path: Path, task_names: set[str]) -> dict[str, tuple[float, float]]:
    """task -> (GPT-4, GPT-3.5) scores from the Table 12 OpenAI columns."""
    scores: dict[str, tuple[float, float]] = {}
    for where, row in read_csv_rows(path, ("task", "gpt_3_5_turbo", "gpt_4")):
        task = row["task"]
        if task in scores:
            raise _fail(path, where, f"duplicate row for task {task!r}")
        gpt4 = parse_score(path, where, "gpt_4", row["gpt_4"])
        gpt35 = parse_score(path, where, "gpt_3_5_turbo", row["gpt_3_5_turbo"])
        scores[task] = (gpt4, gpt35)
    unknown = sorted(set(scores) - task_names)
    if unknown:
        raise _fail(path, "rows", f"unknown task(s) {unknown} (not in {TASKS_FILE})")
    absent = sorted(task_names - set(scores))
    if absent:
        raise _fail(path, "rows", f"no GPT-4/GPT-3.5 row for task(s) {absent}")
    return scores


_TASK_KEYS = (
    "name",
    "category",
    "ui_name",
    "ui_category",
    "description",
    "dataset_link",
    "metric",
    "metric_fn",
    "prompt_template",
    "target_col",
    "split_used_for_evaluation",
    "num_examples",
)


def read_tasks(path: Path, openai_path: Path) -> dict[str, Task]:
    """The tasks of `tasks.json`, joined with their GPT-4/GPT-3.5 scores."""
    entries = read_json_list(path)
    names: list[str] = []
    for i, entry in enumerate(entries):
        _require(path, f"entry {i}", entry, _TASK_KEYS)
        if entry["name"] in names:
            raise _fail(path, f"entry {i}", f"duplicate task {entry['name']!r}")
        names.append(entry["name"])
    openai = read_openai(openai_path, set(names))
    return {e["name"]: _task(path, i, e, openai[e["name"]]) for i, e in enumerate(entries)}


def _task(path: Path, i: int, e: dict[str, Any], gpt: tuple[float, float]) -> Task:
    where = f"entry {i} ({e['name']})"
    if e["metric"] not in _METRIC_HIGHER_IS_BETTER:
        known = sorted(_METRIC_HIGHER_IS_BETTER)
        raise _fail(path, where, f"unknown metric {e['metric']!r} (known: {known})")
    higher, note = _DIRECTION_OVERRIDES.get(
        e["name"], (_METRIC_HIGHER_IS_BETTER[e["metric"]], None)
    )
    fields = template_fields(e["prompt_template"])
    declared = e.get("template_placeholders")
    if declared is not None and tuple(declared) != fields:
        raise _fail(path, where, f"template_placeholders {declared} != template fields {fields}")
    if not isinstance(e["num_examples"], dict):
        raise _fail(path, where, "num_examples must be an object of split -> count")
    return Task(
        name=e["name"],
        category=e["category"],
        ui_name=e["ui_name"],
        ui_category=e["ui_category"],
        description=e["description"],
        dataset_link=e["dataset_link"],
        metric=e["metric"],
        metric_fn=e["metric_fn"],
        higher_is_better=higher,
        prompt_template=e["prompt_template"],
        fields=fields,
        target_col=e["target_col"],
        eval_split=e["split_used_for_evaluation"],
        num_examples=MappingProxyType(dict(e["num_examples"])),
        hf_adapter_id=e.get("hf_adapter_id"),
        template_note=e.get("template_note"),
        gpt4=gpt[0],
        gpt35=gpt[1],
        metric_note=note,
        eval_prompt_template=e.get("eval_prompt_template"),
    )


def read_bases(path: Path) -> dict[str, BaseModel]:
    """The base models of `base_models.json`, in file order."""
    keys = ("name", "display_name", "creator", "params", "hf_id", "is_instruct")
    bases: dict[str, BaseModel] = {}
    for i, entry in enumerate(read_json_list(path)):
        _require(path, f"entry {i}", entry, keys)
        if entry["name"] in bases:
            raise _fail(path, f"entry {i}", f"duplicate base model {entry['name']!r}")
        if not isinstance(entry["is_instruct"], bool):
            raise _fail(path, f"entry {i}", "is_instruct must be true or false")
        bases[entry["name"]] = BaseModel(**{k: entry[k] for k in keys})
    return bases


def read_scores(
    path: Path, tasks: Mapping[str, Task], bases: Mapping[str, BaseModel]
) -> dict[tuple[str, str], tuple[float, float, float]]:
    """(base, task) -> (finetuned, base score, lift) for every pair, checked for coverage."""
    required = ("category", "task", "metric", "base_model", "finetuned", "delta", "base")
    scores: dict[tuple[str, str], tuple[float, float, float]] = {}
    for where, row in read_csv_rows(path, required):
        task, base = row["task"], row["base_model"]
        if task not in tasks:
            raise _fail(path, where, f"unknown task {task!r} (not in {TASKS_FILE})")
        if base not in bases:
            raise _fail(path, where, f"unknown base model {base!r} (not in {BASES_FILE})")
        if (base, task) in scores:
            raise _fail(path, where, f"duplicate row for base {base!r}, task {task!r}")
        for column, expected in (
            ("category", tasks[task].category),
            ("metric", tasks[task].metric),
        ):
            if row[column] != expected:
                raise _fail(path, where, f"{column}={row[column]!r} but {task} has {expected!r}")
        finetuned = parse_score(path, where, "finetuned", row["finetuned"], *_SCORE_RANGE)
        base_score = parse_score(path, where, "base", row["base"], *_SCORE_RANGE)
        lift = parse_score(path, where, "delta", row["delta"], -1.0, 1.0)
        if abs(finetuned - lift - base_score) > _LIFT_TOLERANCE:
            raise _fail(path, where, f"base {base_score} != finetuned {finetuned} - delta {lift}")
        scores[(base, task)] = (finetuned, base_score, lift)
    absent = [f"{b}/{t}" for b in bases for t in tasks if (b, t) not in scores]
    if absent:
        raise _fail(path, "rows", f"{len(absent)} (base, task) pair(s) missing, e.g. {absent[:3]}")
    return scores
