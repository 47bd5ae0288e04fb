"""`leaderboards/measured_here.csv`: the scores this project measured, one row per
(task, base_model, adapter); re-running an evaluation replaces its row.

Columns (read by `lora_land.catalog`): date,task,base_model,adapter,metric,score,n,data,model.
This module reads and writes the file; it measures nothing.
"""

from __future__ import annotations

import csv
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from lora_land.config import PROJECT_ROOT

MEASURED_PATH = PROJECT_ROOT / "leaderboards" / "measured_here.csv"
COLUMNS = ("date", "task", "base_model", "adapter", "metric", "score", "n", "data", "model")


@dataclass(frozen=True)
class MeasuredRow:
    date: str  # ISO date of the run
    task: str
    base_model: str  # e.g. "smollm2-135m-instruct"
    adapter: str  # adapter id, "" for the bare base
    metric: str
    score: float
    n: int  # rows evaluated
    data: str  # evaluated file, e.g. shared/data/samples/glue_sst2.jsonl
    model: str  # the base's Hub id

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.task, self.base_model, self.adapter)


def read_measured(path: Path = MEASURED_PATH) -> list[MeasuredRow]:
    if not Path(path).is_file():
        return []
    with open(path, newline="") as f:
        return [
            MeasuredRow(**{**r, "score": float(r["score"]), "n": int(r["n"])})
            for r in csv.DictReader(f)
        ]


def upsert_measured(row: MeasuredRow, path: Path = MEASURED_PATH) -> None:
    """Replace the row with the same (task, base_model, adapter) or add it; atomic write."""
    rows = [r for r in read_measured(path) if r.key != row.key] + [row]
    rows.sort(key=lambda r: (r.task, r.base_model, r.adapter))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".csv.tmp")
    with os.fdopen(fd, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({**asdict(r), "score": f"{r.score:.4f}"})
    os.replace(tmp, path)
