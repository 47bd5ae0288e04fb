"""The evaluation runner: a task's rows through a `TextEngine`, scored with the task's metric.

Decoding is the report's: greedy, at most 256 new tokens. Rows go to the engine in batches
(the engine batches them further); a progress bar shows the running score. The runner knows
nothing about torch or adapters' files: it speaks the `TextEngine` protocol, so tests hand it
a fake and the CLI hands it the real `Engine`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from lora_land.catalog import Task
from lora_land.catalog.measured import MeasuredRow, upsert_measured
from lora_land.engine.types import GenerationRequest, TextEngine
from lora_land.evaluation.metrics import get_metric
from lora_land.evaluation.stats import bootstrap_mean

MAX_NEW_TOKENS = 256  # the report's decoding


@dataclass
class EvalReport:
    task: str
    adapter_id: str | None
    metric: str
    score: float
    n: int
    # prompt-free: input (the first record with the same prompt), prediction, target, score
    records: list[dict] = field(default_factory=list)


def evaluate_rows(
    engine: TextEngine,
    task: Task,
    rows: Sequence[Mapping[str, str]],
    adapter_id: str | None = None,
    *,
    batch_size: int = 8,
    max_new_tokens: int = MAX_NEW_TOKENS,
    progress: bool = True,
) -> EvalReport:
    """Generate greedily for every row and score each prediction against its `target`."""
    spec = get_metric(task.metric_fn)
    records: list[dict] = []
    inputs: dict[str, int] = {}  # prompt -> the first record with it (its bootstrap group)
    total = 0.0
    bar = tqdm(total=len(rows), desc=f"eval {task.name}", unit="row", disable=not progress)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        requests = [
            GenerationRequest(
                prompt=task.render_eval(row),
                adapter_id=adapter_id,
                max_new_tokens=max_new_tokens,
                temperature=0.0,
                truncate="left",
            )
            for row in chunk
        ]
        for row, request, result in zip(chunk, requests, engine.generate(requests), strict=True):
            value = spec.score(result.text, str(row["target"]), row)
            total += value
            records.append(
                {
                    "input": inputs.setdefault(request.prompt, len(records)),
                    "prediction": result.text,
                    "target": str(row["target"]),
                    "score": value,
                    "finish_reason": result.finish_reason,
                }
            )
        bar.update(len(chunk))
        bar.set_postfix(score=f"{total / len(records):.3f}")
    bar.close()
    score = total / len(records) if records else 0.0
    return EvalReport(task.name, adapter_id, spec.name, score, len(records), records)


def measured_row(
    report: EvalReport, base_model: str, model_hub_id: str, data: str, adapter: str = ""
) -> MeasuredRow:
    """The "measured here" row of a report, with the 95% bootstrap interval of its score."""
    groups = [r.get("input") for r in report.records]
    ci = (
        bootstrap_mean(
            [r["score"] for r in report.records],
            groups=groups if None not in groups else None,  # rows sharing an input: together
        )
        if report.records
        else None
    )
    return MeasuredRow(
        low=ci.low if ci else None,
        high=ci.high if ci else None,
        date=dt.date.today().isoformat(),
        task=report.task,
        base_model=base_model,
        adapter=adapter,
        metric=report.metric,
        score=report.score,
        n=report.n,
        data=data,
        model=model_hub_id,
    )


def record(report: EvalReport, row: MeasuredRow, path: Path | None = None) -> None:
    """Write the "measured here" row (replacing an earlier one for the same key)."""
    if path is None:
        upsert_measured(row)
    else:
        upsert_measured(row, path)
