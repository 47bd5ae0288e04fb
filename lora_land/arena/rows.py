"""Compare on rows: the same contestants on N evaluation rows, scored with intervals.

Rows come from the task's evaluation split (local sample files when present, else the Hub
through `ExampleLibrary`, cached) or from an uploaded JSONL with the template's fields and
`target`, validated with one message per bad row. `run_rows` answers every row with every
contestant (engine rows batched), scores them with the task's metric and reports each
contestant's mean with a 95% bootstrap interval and the paired difference to the first
contestant with its interval (rows that repeat a prompt are resampled as one input).
Results are cached by (contestants, task, rows, max tokens).

No Gradio here; the Compare tab shows what this returns.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lora_land.arena.contestants import Contestant
from lora_land.arena.run import generate_rows
from lora_land.config import PROJECT_ROOT
from lora_land.errors import UserError
from lora_land.evaluation.stats import Interval, bootstrap_mean, paired_difference

if TYPE_CHECKING:
    from lora_land.catalog import Task
    from lora_land.services import Services

MAX_ROWS = 200  # the most rows one comparison may run
MAX_BAD_ROWS_SHOWN = 10
LOCAL_SAMPLES = PROJECT_ROOT.parent / "shared" / "data" / "samples"


@dataclass(frozen=True)
class RowsReport:
    task: str
    contestants: tuple[str, ...]
    rows: tuple[Mapping[str, Any], ...]
    outputs: tuple[tuple[str, ...], ...]  # outputs[c][r]
    scores: tuple[tuple[float, ...], ...]  # scores[c][r]
    means: tuple[Interval, ...]
    diffs: tuple[Interval | None, ...]  # paired difference to the first contestant


def eval_rows(
    task: Task, n: int, samples_dir: Path | None = None, hub_cache: Path | None = None
) -> list[dict]:
    """The first `n` rows of the task's evaluation split: local samples, else the Hub."""
    _check_n(n)
    directory = samples_dir or LOCAL_SAMPLES
    path = directory / f"{task.name}.jsonl"
    if path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in lines if line.strip()][:n]
    else:
        from lora_land.examples import ExampleLibrary

        library = ExampleLibrary(Path("/nonexistent"), None, hub_cache, per_source=n)
        rows = [dict(e.row) for e in library.for_task(task)][:n]
    if not rows:
        raise UserError(
            f"no evaluation rows for {task.name} here (looked in {directory} and the Hub); "
            "upload a JSONL file instead"
        )
    return [_normalise(task, row) for row in rows]


def _check_n(n: int) -> None:
    if not 1 <= int(n) <= MAX_ROWS:
        raise UserError(f"the number of rows must be between 1 and {MAX_ROWS}, got {n}")


def _normalise(task: Task, row: Mapping[str, Any]) -> dict:
    target = row.get("target", row.get(task.target_col))
    return {**row, "target": None if target is None else str(target)}


def parse_upload(task: Task, text: str, n: int) -> list[dict]:
    """Rows of an uploaded JSONL: each a JSON object with the template's fields and `target`."""
    _check_n(n)
    rows, problems = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"line {number}: not JSON ({e.msg})")
            continue
        if not isinstance(row, dict):
            problems.append(f"line {number}: expected a JSON object, got {type(row).__name__}")
            continue
        missing = [f for f in (*task.fields, "target") if f not in row]
        empty = [f for f in task.fields if f in row and not str(row[f]).strip()]
        if missing or empty:
            what = [f"missing {', '.join(missing)}"] if missing else []
            what += [f"empty {', '.join(empty)}"] if empty else []
            problems.append(f"line {number}: {'; '.join(what)}")
            continue
        rows.append(_normalise(task, row))
    if problems:
        shown = problems[:MAX_BAD_ROWS_SHOWN]
        more = len(problems) - len(shown)
        raise UserError(
            f"{len(problems)} bad row(s) in the upload; each needs "
            f"{', '.join((*task.fields, 'target'))}: "
            + "; ".join(shown)
            + (f" (and {more} more)" if more else "")
        )
    if not rows:
        raise UserError("the uploaded file holds no rows")
    return rows[: int(n)]


class RowsCache:
    """Finished comparisons keyed by (contestants, task, rows, max tokens); thread-safe."""

    def __init__(self, capacity: int = 32) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._items: dict[str, RowsReport] = {}

    @staticmethod
    def key(task: str, ids: Sequence[str], rows: Sequence[Mapping], max_new: int) -> str:
        blob = json.dumps([task, list(ids), list(rows), max_new], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def get(self, key: str) -> RowsReport | None:
        with self._lock:
            return self._items.get(key)

    def put(self, key: str, report: RowsReport) -> None:
        with self._lock:
            if len(self._items) >= self.capacity:
                self._items.pop(next(iter(self._items)))
            self._items[key] = report


def run_rows(
    services: Services,
    task: Task,
    contestants: Sequence[Contestant],
    rows: Sequence[Mapping[str, Any]],
    max_new_tokens: int,
    cache: RowsCache | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> RowsReport:
    """Answer and score every row with every contestant (cached)."""
    from lora_land.evaluation.metrics import get_metric
    from lora_land.evaluation.scored import prompt_groups

    ids = [c.id for c in contestants]
    key = RowsCache.key(task.name, ids, rows, max_new_tokens)
    if cache is not None and (hit := cache.get(key)) is not None:
        return hit
    prompts = [task.render_eval(row) for row in rows]
    table = generate_rows(services, contestants, prompts, max_new_tokens, on_progress)
    metric = get_metric(task.metric_fn)
    scores = []
    for outputs in table:
        scores.append(
            tuple(
                0.0 if o.error else metric.score(o.text, row["target"] or "", row)
                for o, row in zip(outputs, rows, strict=True)
            )
        )
    groups = prompt_groups(task, rows)  # rows sharing a prompt are one input: resampled together
    means = tuple(bootstrap_mean(s, groups=groups) for s in scores)
    diffs = (None, *(paired_difference(s, scores[0], groups=groups) for s in scores[1:]))
    report = RowsReport(
        task.name,
        tuple(ids),
        tuple(dict(r) for r in rows),
        tuple(tuple(f"⚠ {o.error}" if o.error else o.text for o in out) for out in table),
        tuple(scores),
        means,
        diffs,
    )
    if cache is not None:
        cache.put(key, report)
    return report


def disagreements(report: RowsReport, kind: str) -> list[int]:
    """Row indexes to show: "all", "disagree" (scores differ), "split" (one right, one wrong)."""
    picked = []
    for r in range(len(report.rows)):
        values = [report.scores[c][r] for c in range(len(report.contestants))]
        if (
            kind == "all"
            or (kind == "disagree" and len(set(values)) > 1)
            or (kind == "split" and max(values) >= 1.0 and min(values) <= 0.0)
        ):
            picked.append(r)
    return picked
