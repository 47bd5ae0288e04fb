"""What the Arena shows about votes: the ratings table, its chart and the note under it.

Plain functions of (services, store, scope) returning a DataFrame, a Plotly figure or text;
no Gradio events, no per-user data. The ratings come from `lora_land.arena.ratings`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import plotly.graph_objects as go

from lora_land.arena.ratings import rate
from lora_land.arena.store import VoteStore

if TYPE_CHECKING:
    from lora_land.services import Services

OVERALL = "overall"
RATING_COLUMNS = [
    "Rank",
    "Contestant",
    "Rating",
    "95% CI",
    "Votes",
    "W / L / T",
    "Metric score",
    "Metric rank",
]
_FONT = {"family": "Inter, system-ui, sans-serif", "size": 12}


def ratings_frame(services: Services, store: VoteStore, scope: str) -> pd.DataFrame:
    """Bradley-Terry ratings (95% CI, votes) beside the metric ranking on the task's rows."""
    task = None if scope == OVERALL else scope
    ratings = rate(store.battles(task), resamples=100)
    metrics = {r.contestant: contest_metric(services, task, r.contestant) for r in ratings}
    known = sorted((m[0], c) for c, m in metrics.items() if m is not None)
    metric_rank = {c: i + 1 for i, (_, c) in enumerate(sorted(known, key=lambda x: -x[0]))}
    rows = []
    for rank, r in enumerate(ratings, 1):
        m = metrics[r.contestant]
        rows.append(
            [
                rank,
                r.contestant,
                round(r.rating),
                f"{r.low:.0f} – {r.high:.0f}",
                r.votes,
                f"{r.wins} / {r.losses} / {r.ties}",
                f"{m[0]:.3f} ({m[1]})" if m else "—",
                metric_rank.get(r.contestant, "—"),
            ]
        )
    return pd.DataFrame(rows, columns=RATING_COLUMNS)


def contest_metric(services: Services, task: str | None, contestant: str):
    """(score, where it comes from) of a contestant on the task's evaluation rows, if known."""
    if task is None:
        return None
    spec = services.catalog.tasks[task]
    if contestant.startswith("reference:"):
        return (spec.gpt4, "report's GPT-4") if spec.gpt4 is not None else None
    base = services.deployment.base.name
    adapter = "" if contestant == base else contestant
    for m in services.catalog.measured:
        if (m.task, m.base_model, m.adapter) == (task, base, adapter):
            return (m.score, f"n={m.n}")
    return None


def ratings_note(store: VoteStore) -> str:
    total, counted = store.count(), len(store.battles())
    return (
        f"{counted} of {total} votes counted (too-fast votes are kept but left out). "
        "Ratings: Bradley-Terry by maximum likelihood, Elo-like scale (400 points = 10:1 odds, "
        "mean 1000), 95% bootstrap intervals (100 resamples); ties and both-bad count as half "
        "a win each. Metric score: the task metric on its evaluation rows (measured here; "
        "GPT-4 from the report)."
    )


def ratings_figure(frame: pd.DataFrame) -> go.Figure:
    """Each contestant's rating as a dot with its 95% interval as a bar, best on top."""
    fig = go.Figure()
    if not frame.empty:
        bounds = [tuple(float(x) for x in ci.split(" – ")) for ci in frame["95% CI"]]
        ratings = frame["Rating"].astype(float).tolist()
        fig.add_trace(
            go.Scatter(
                x=ratings,
                y=frame["Contestant"],
                mode="markers",
                marker={"size": 11, "color": "#10b981"},
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": [hi - r for (_, hi), r in zip(bounds, ratings, strict=True)],
                    "arrayminus": [r - lo for (lo, _), r in zip(bounds, ratings, strict=True)],
                    "color": "#64748b",
                },
                text=[f"{v} votes" for v in frame["Votes"]],
                hovertemplate="%{y}: %{x:.0f} (%{text})<extra></extra>",
            )
        )
    fig.update_layout(
        title="Arena rating with 95% interval",
        xaxis_title="Rating (Bradley-Terry, Elo-like scale)",
        yaxis={"autorange": "reversed"},
        height=120 + 40 * max(len(frame), 1),
        margin={"l": 10, "r": 10, "t": 40, "b": 40},
        font=_FONT,
        plot_bgcolor="white",
    )
    fig.add_vline(x=1000, line_dash="dot", line_color="#cbd5e1")
    return fig
