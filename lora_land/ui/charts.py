"""Plotly figures for the leaderboard tab: tasks x bases heatmap, one task's bar chart, and
the measured adapters' paired lifts with their intervals.

Pure functions of a `Catalog` (or its measured rows): they build figures and do not know
about Gradio events or read files.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from lora_land.catalog import Catalog, MeasuredRow

# What the heatmap can show: column -> (label, colour scale, centred at zero).
HEATMAP_VALUES = {
    "finetuned": ("Fine-tuned score", "Viridis", False),
    "lift": ("Lift over the base model", "RdBu", True),
    "vs_gpt4": ("Fine-tuned − GPT-4", "RdBu", True),
}
_FONT = {"family": "Inter, system-ui, sans-serif", "size": 12}
FT_COLOUR = "#10b981"  # emerald: fine-tuned
BASE_COLOUR = "#94a3b8"  # slate: base model
GPT4_COLOUR = "#7c3aed"  # violet: GPT-4
GPT35_COLOUR = "#f59e0b"  # amber: GPT-3.5


def heatmap_figure(catalog: Catalog, value: str = "finetuned") -> go.Figure:
    """Tasks (rows) x base models (columns) coloured by `value` (see HEATMAP_VALUES)."""
    label, scale, centred = HEATMAP_VALUES[value]
    table = catalog.pivot(value)
    names = [catalog.bases[b].display_name for b in table.columns]
    tasks = [f"{t} *" if catalog.tasks[t].metric_note else t for t in table.index]
    heat = go.Heatmap(
        z=table.to_numpy(),
        x=names,
        y=tasks,
        colorscale=scale,
        zmid=0 if centred else None,
        zmin=None if centred else 0,
        zmax=None if centred else 1,
        texttemplate="%{z:.2f}",
        textfont={"size": 10},
        hovertemplate="%{y} on %{x}<br>" + label + ": %{z:.3f}<extra></extra>",
        colorbar={"title": {"text": label, "side": "right"}},
    )
    fig = go.Figure(heat)
    fig.update_layout(
        title={"text": f"{label}: 31 tasks x 10 base models"},
        height=880,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        yaxis={"autorange": "reversed", "tickfont": {"size": 11}},
        xaxis={"side": "top", "tickangle": -30},
        font=_FONT,
        paper_bgcolor="rgba(0,0,0,0)",
    )
    return fig


def task_figure(catalog: Catalog, task: str) -> go.Figure:
    """Each base model's fine-tuned and base score on `task`, against GPT-4 and GPT-3.5."""
    spec = catalog.tasks[task]
    rows = catalog.per_task(task)
    names = [catalog.bases[b].display_name for b in rows.index]
    fig = go.Figure(
        [
            go.Bar(name="Fine-tuned (LoRA)", x=names, y=rows["finetuned"], marker_color=FT_COLOUR),
            go.Bar(name="Base model", x=names, y=rows["base_score"], marker_color=BASE_COLOUR),
        ]
    )
    for name, score, colour in (
        ("GPT-4", spec.gpt4, GPT4_COLOUR),
        ("GPT-3.5", spec.gpt35, GPT35_COLOUR),
    ):
        fig.add_hline(
            y=score,
            line={"color": colour, "dash": "dash", "width": 2},
            annotation={"text": f"{name} {score:.3f}", "font": {"color": colour}},
            annotation_position="top left" if name == "GPT-4" else "bottom right",
        )
    direction = "higher is better" + (" (labelled 'mae', see note)" if spec.metric_note else "")
    fig.update_layout(
        title={"text": f"{spec.ui_name} · {spec.metric}, {direction}"},
        barmode="group",
        height=420,
        yaxis={"range": [0, 1.08], "title": {"text": spec.metric}},
        legend={"orientation": "h", "y": -0.25},
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        font=_FONT,
        paper_bgcolor="rgba(0,0,0,0)",
    )
    return fig


def lift_figure(rows: Sequence[MeasuredRow]) -> go.Figure:
    """Paired lift of each measured adapter over its base, with its 95% interval, against 0.

    Only rows that carry a paired interval appear (zoo v1 figures have none)."""
    paired = sorted((r for r in rows if r.lift is not None), key=lambda r: r.lift or 0.0)
    labels = [f"{r.task} (n={r.n})" for r in paired]
    lifts = [r.lift or 0.0 for r in paired]
    colours = [FT_COLOUR if (r.lift_low or 0.0) > 0 else BASE_COLOUR for r in paired]
    fig = go.Figure(
        go.Scatter(
            x=lifts,
            y=labels,
            mode="markers",
            marker={"color": colours, "size": 10},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": [(r.lift_high or 0.0) - (r.lift or 0.0) for r in paired],
                "arrayminus": [(r.lift or 0.0) - (r.lift_low or 0.0) for r in paired],
                "color": "#475569",
            },
            hovertemplate="%{y}: lift %{x:+.3f}<extra></extra>",
        )
    )
    fig.add_vline(x=0, line={"color": "#b91c1c", "dash": "dash"})
    fig.update_layout(
        title={"text": "Paired lift over the base, 95% bootstrap interval (green: above zero)"},
        height=max(220, 60 + 32 * len(paired)),
        xaxis={"title": {"text": "adapter − base, same rows"}, "zeroline": False},
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        font=_FONT,
        paper_bgcolor="rgba(0,0,0,0)",
    )
    return fig
