"""Pieces the Compare and Arena tabs share: template fields, gold answers, metric scores.

Plain functions returning Gradio updates or text; no per-user state and no model calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import gradio as gr

from lora_land.catalog import Task

if TYPE_CHECKING:
    from lora_land.services import Services

MAX_FIELDS = 4  # input boxes built once; the 31 tasks use at most 3


def field_updates(task: Task, values: Sequence[str] | None = None, as_kwargs: bool = False):
    """One update per input box: the task's fields shown (with values), the rest hidden."""
    values = list(values or [""] * len(task.fields))
    out: list[Any] = []
    for i in range(MAX_FIELDS):
        shown = i < len(task.fields)
        kwargs = {
            "visible": shown,
            "label": task.fields[i] if shown else f"field {i + 1}",
            "value": values[i] if shown and i < len(values) else "",
        }
        out.append(kwargs if as_kwargs else gr.update(**kwargs))
    return out


def gold_for(task: Task, given: Mapping[str, str], example: Mapping[str, Any] | None):
    """(gold answer, row) of the chosen example while the fields still hold its values."""
    if not example or example.get("target") is None:
        return None, None
    values = example.get("values", {})
    if any(values.get(f) != given.get(f) for f in task.fields):
        return None, None
    return str(example["target"]), dict(example.get("row") or values)


def score_outputs(
    task_name: str,
    gold: str | None,
    row: Mapping[str, Any] | None,
    outputs: Sequence[str],
    services: Services,
) -> list[float | None]:
    """Each output's score under the task's metric against the gold answer (None: no gold)."""
    if gold is None:
        return [None] * len(outputs)
    from lora_land.evaluation.metrics import get_metric

    metric = get_metric(services.catalog.tasks[task_name].metric_fn)
    scores: list[float | None] = []
    for text in outputs:
        try:
            scores.append(float(metric.score(text, gold, row)))
        except Exception:  # a metric that cannot read this output: not scored
            scores.append(None)
    return scores


def metric_line(services: Services, battle: Any, score: float | None) -> str:
    if score is None:
        return ""
    metric = services.catalog.tasks[battle.task].metric
    return f"\n\nScore ({metric}) against the gold answer `{battle.gold}`: **{score:.3f}**"
