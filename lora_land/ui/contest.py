"""Pieces the Compare and Arena tabs share: template fields, gold answers, metric scores.

Plain functions returning Gradio updates or text; no per-user state and no model calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import gradio as gr

from lora_land.catalog import Task
from lora_land.ui.playground_run import gold_for  # noqa: F401  (Compare and Arena use it from here)

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
    metric = services.catalog.tasks[battle.task].metric_fn  # what scored the answer
    return f"\n\nScore ({metric}) against the gold answer `{battle.gold}`: **{score:.3f}**"


def max_new_slider(services: Services, default: int, elem_id: str) -> gr.Slider:
    """The "Max new tokens" slider every tab shows, bounded by the server's limit."""
    limit = services.settings.max_new_tokens_limit
    return gr.Slider(
        1, limit, value=min(default, limit), step=1, label="Max new tokens", elem_id=elem_id
    )
