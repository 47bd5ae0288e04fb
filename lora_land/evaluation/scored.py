"""Per-row scores of one model on one row set, kept so paired intervals can be recomputed.

A `ScoredRun` stores, for each row, only its index in the data file, its score and the
model's prediction: never the row's inputs or target (those stay in `shared/data`, read again
by index when a second measure needs them). `score_rows` produces one through any
`TextEngine` with the report's decoding (greedy, at most 256 new tokens); rows that render to
the same prompt (e2e_nlg repeats inputs with several references) are generated once.
This module scores and stores; it loads no model itself and imports no torch.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from lora_land.catalog import Task
from lora_land.engine.types import GenerationRequest, TextEngine
from lora_land.evaluation.metrics import get_metric
from lora_land.evaluation.runner import MAX_NEW_TOKENS  # the report's decoding: one figure
from lora_land.evaluation.stats import Interval, bootstrap_mean, paired_difference


@dataclass
class ScoredRun:
    task: str
    adapter: str  # adapter id, "" for the bare base
    data: str  # the file the rows came from, e.g. shared/data/samples/train/glue_sst2.jsonl
    part: str  # "dev" (a split part of the training rows) or "eval" (the evaluation rows)
    metric: str
    index: list[int] = field(default_factory=list)  # row positions in `data`
    scores: list[float] = field(default_factory=list)
    predictions: list[str] = field(default_factory=list)
    date: str = ""
    # per row, the position of the first row with the same prompt (rows sharing an input are
    # resampled together); empty in runs saved before it was kept: every row its own input
    groups: list[int] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.scores)

    def interval(self) -> Interval:
        return bootstrap_mean(self.scores, groups=self.groups or None)

    def save(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".json.tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(self), f, indent=1)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> ScoredRun:
        return cls(**json.loads(Path(path).read_text()))


def paired_lift(adapter: ScoredRun, base: ScoredRun) -> Interval:
    """The adapter's lift over the base on the same rows (refuses runs over different rows)."""
    if adapter.index != base.index or adapter.data != base.data:
        raise ValueError(f"{adapter.task}: the two runs did not score the same rows")
    return paired_difference(adapter.scores, base.scores, groups=adapter.groups or None)


def prompt_groups(task: Task, rows: Sequence[Mapping]) -> list[int]:
    """Per row, the position of the first row that renders to the same prompt: the unit a
    bootstrap resamples (a greedy model answers one prompt once, whatever its references)."""
    first: dict[str, int] = {}
    return [first.setdefault(task.render_eval(row), i) for i, row in enumerate(rows)]


def score_rows(
    engine: TextEngine,
    task: Task,
    rows: Sequence[Mapping[str, str]],
    index: Sequence[int],
    *,
    adapter_id: str | None,
    data: str,
    part: str,
    max_new_tokens: int = MAX_NEW_TOKENS,
    progress: bool = True,
) -> ScoredRun:
    """Generate greedily for `rows[i]` for each i in `index` and score against its target."""
    spec = get_metric(task.metric_fn)
    prompts = [task.render_eval(rows[i]) for i in index]
    unique = list(dict.fromkeys(prompts))
    texts: dict[str, str] = {}
    chunk = 16
    bar = tqdm(
        total=len(unique),
        desc=f"{part} {task.name} {adapter_id or 'base'}",
        unit="row",
        disable=not progress,
    )
    for start in range(0, len(unique), chunk):
        batch = unique[start : start + chunk]
        requests = [
            GenerationRequest(
                prompt=p,
                adapter_id=adapter_id,
                max_new_tokens=max_new_tokens,
                temperature=0.0,
                truncate="left",
            )
            for p in batch
        ]
        for p, result in zip(batch, engine.generate(requests), strict=True):
            texts[p] = result.text
        bar.update(len(batch))
    bar.close()
    run = ScoredRun(task.name, adapter_id or "", data, part, spec.name, date=_today())
    first: dict[str, int] = {}
    for position, (i, prompt) in enumerate(zip(index, prompts, strict=True)):
        run.groups.append(first.setdefault(prompt, position))
        run.index.append(int(i))
        run.predictions.append(texts[prompt])
        run.scores.append(spec.score(texts[prompt], str(rows[i]["target"]), rows[i]))
    return run


def _today() -> str:
    return dt.date.today().isoformat()
