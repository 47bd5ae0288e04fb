"""`leaderboards/measured_here.csv`: the scores this project measured, read and written here only.

One row per (task, base_model, adapter); writing a row replaces the earlier one for that key.
Every figure carries n and its 95% bootstrap interval (`low`, `high`); an adapter's row also
carries its paired lift over the base on the same rows (`lift`, `lift_low`, `lift_high`) and,
where the task has one, a second measure (`second_*`, see `lora_land.evaluation.measures`).
Rows measured before intervals were kept (zoo v1) leave those columns empty. The catalog
reads this file (`Catalog.measured`); the evaluation tools write it. No torch, no models.
"""

from __future__ import annotations

import csv
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from lora_land.catalog.loader import parse_score, read_csv_rows
from lora_land.config import PROJECT_ROOT
from lora_land.errors import CatalogDataError

MEASURED_FILE = "measured_here.csv"
MEASURED_PATH = PROJECT_ROOT / "leaderboards" / MEASURED_FILE
REQUIRED = ("date", "task", "base_model", "adapter", "metric", "score", "n", "data", "model")
OPTIONAL_FLOATS = (
    "low",
    "high",
    "lift",
    "lift_low",
    "lift_high",
    "second_score",
    "second_low",
    "second_high",
    "second_lift",
    "second_lift_low",
    "second_lift_high",
)
COLUMNS = (*REQUIRED, *OPTIONAL_FLOATS[:5], "second_metric", *OPTIONAL_FLOATS[5:])


@dataclass(frozen=True)
class MeasuredRow:
    """A score measured by this project, with its interval and (adapters) its paired lift."""

    date: str  # ISO date of the run
    task: str
    base_model: str  # e.g. "smollm2-135m-instruct" (not necessarily one of the 10)
    adapter: str  # adapter id; "" for the bare base model
    metric: str
    score: float
    n: int  # rows evaluated
    data: str  # evaluated file, relative to the workspace (shared/data/samples/<task>.jsonl)
    model: str  # the base's Hub id
    low: float | None = None  # 95% bootstrap interval of `score`
    high: float | None = None
    lift: float | None = None  # adapter rows: mean paired difference to the base, same rows
    lift_low: float | None = None
    lift_high: float | None = None
    second_metric: str = ""  # e.g. "entity_f1"; "" when the task has none or it was not kept
    second_score: float | None = None
    second_low: float | None = None
    second_high: float | None = None
    second_lift: float | None = None
    second_lift_low: float | None = None
    second_lift_high: float | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.task, self.base_model, self.adapter)

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None


def _fail(path: Path, where: str, problem: str) -> CatalogDataError:
    return CatalogDataError(f"{Path(path).name}: {where}: {problem}")


def read_measured(
    path: Path = MEASURED_PATH, task_names: set[str] | None = None
) -> list[MeasuredRow]:
    """The rows of the file (none if it is missing); `CatalogDataError` names a bad row."""
    path = Path(path)
    if not path.is_file():
        return []
    seen: set[tuple[str, str, str]] = set()
    return [
        _parse(path, where, raw, task_names, seen) for where, raw in read_csv_rows(path, REQUIRED)
    ]


def _parse(path, where, raw, task_names, seen) -> MeasuredRow:
    if task_names is not None and raw["task"] not in task_names:
        raise _fail(path, where, f"unknown task {raw['task']!r} (not in tasks.json)")
    key = (raw["task"], raw["base_model"], raw["adapter"])
    if key in seen:
        raise _fail(path, where, f"duplicate row for task/base_model/adapter {key}")
    seen.add(key)
    try:
        n = int(raw["n"])
    except ValueError as e:
        raise _fail(path, where, f"n={raw['n']!r} is not an integer") from e
    if n < 1:
        raise _fail(path, where, f"n={n} must be at least 1")
    values: dict = {c: raw[c] for c in REQUIRED} | {"n": n}
    values["score"] = parse_score(path, where, "score", raw["score"], 0.0, 1.0)
    for column in OPTIONAL_FLOATS:
        text = (raw.get(column) or "").strip()
        if text:
            lo = -1.0 if "lift" in column else 0.0
            values[column] = parse_score(path, where, column, text, lo, 1.0)
    values["second_metric"] = (raw.get("second_metric") or "").strip()
    return MeasuredRow(**values)


def _cell(value: object) -> str:
    if value is None:
        return ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def write_measured(rows: list[MeasuredRow], path: Path = MEASURED_PATH) -> None:
    """Write `rows` sorted by key, atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = sorted(rows, key=lambda r: r.key)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".csv.tmp")
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _cell(v) for k, v in asdict(r).items()})
    os.replace(tmp, path)


def upsert_measured(row: MeasuredRow, path: Path = MEASURED_PATH) -> None:
    """Replace the row with the same (task, base_model, adapter) or add it."""
    write_measured([r for r in read_measured(path) if r.key != row.key] + [row], path)
