"""The Leaderboard tab: the report's 310 fine-tunes, charts, headline numbers, our measurements.

`build_leaderboard_tab(services)` lays the tab out inside the caller's Blocks/Tab context
(it only uses `services.catalog`). The handlers are plain functions of a `Catalog` and the
widget values, so tests call them directly. It keeps no state: every view is a pure query.
"""

from __future__ import annotations

import html
from functools import partial
from typing import Any

import gradio as gr
import pandas as pd
from pandas.io.formats.style import Styler

from lora_land.catalog import Catalog, HeadlineStats
from lora_land.catalog.measured import MEASURED_FILE, read_measured
from lora_land.config import PROJECT_ROOT
from lora_land.errors import CatalogDataError
from lora_land.ui.charts import HEATMAP_VALUES, heatmap_figure, task_figure

ALL = "(all)"  # dropdown value meaning "no filter"
TROPHY = "🏆"
# Catalog column -> table header, in display order.
TABLE_COLUMNS = {
    "beats_gpt4": TROPHY,
    "task": "Task",
    "category": "Category",
    "base_display": "Base model",
    "metric": "Metric",
    "finetuned": "Fine-tuned",
    "base_score": "Base",
    "lift": "Lift",
    "gpt4": "GPT-4",
    "gpt35": "GPT-3.5",
    "vs_gpt4": "FT − GPT-4",
    "hf_adapter_id": "Hub adapter",
}
SCORE_HEADERS = ["Fine-tuned", "Base", "Lift", "GPT-4", "GPT-3.5", "FT − GPT-4"]
SORT_CHOICES = [
    ("Lift over base", "lift"),
    ("Fine-tuned score", "finetuned"),
    ("Fine-tuned − GPT-4", "vs_gpt4"),
    ("Base score", "base_score"),
    ("GPT-4 score", "gpt4"),
    ("Task", "task"),
    ("Base model", "base"),
]
MEASURED_HEADERS = [
    "Task",
    "Base model",
    "Adapter",
    "Metric",
    "Measured",
    "n",
    "Report: best fine-tune",
    "Report: GPT-4",
    "Data",
    "Date",
]
LOGO = PROJECT_ROOT / "assets" / "logo.svg"


def _or_none(value: str | None) -> str | None:
    return None if value in (None, "", ALL) else value


def leaderboard_view(
    catalog: Catalog,
    search: str = "",
    category: str | None = ALL,
    task: str | None = ALL,
    base: str | None = ALL,
    beats_gpt4: bool = False,
    sort_by: str = "lift",
    descending: bool = True,
) -> tuple[Styler, str]:
    """The filtered, sorted table (FT > GPT-4 marked and coloured) and a one-line summary."""
    frame = catalog.leaderboard(
        search=search or "",
        category=_or_none(category),
        task=_or_none(task),
        base=_or_none(base),
        beats_gpt4=bool(beats_gpt4),
        sort_by=sort_by,
        descending=bool(descending),
    )
    table = frame[list(TABLE_COLUMNS)].rename(columns=TABLE_COLUMNS)
    table[TROPHY] = table[TROPHY].map({True: TROPHY, False: ""})
    styler = table.style.hide(axis="index").format("{:.3f}", subset=SCORE_HEADERS)
    styler = styler.apply(_cell_styles, axis=None)
    return styler, _summary(frame)


def _cell_styles(table: pd.DataFrame) -> pd.DataFrame:
    """CSS per cell, computed for the whole table at once (one call, no per-row Python)."""
    styles = pd.DataFrame("", index=table.index, columns=table.columns)
    beats = table[TROPHY] != ""
    styles.loc[beats, TROPHY] = "color:#047857;font-weight:600"
    styles.loc[beats, "Fine-tuned"] = "background-color:#d1fae5;font-weight:600"
    styles.loc[table["Lift"] < 0, "Lift"] = "color:#b91c1c"
    return styles


def _summary(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "No fine-tune matches these filters."
    beats = int(frame["beats_gpt4"].sum())
    return (
        f"**{len(frame)}** of 310 fine-tunes shown · {TROPHY} **{beats}** beat GPT-4 · "
        f"mean lift **{frame['lift'].mean():+.3f}**"
    )


def stats_html(stats: HeadlineStats, catalog: Catalog) -> str:
    """Headline numbers as cards; every figure comes from `stats`."""
    ahead = ", ".join(stats.gpt4_ahead_tasks)
    best = catalog.bases[stats.best_base].display_name
    cards = [
        (
            f"{stats.mean_lift:+.3f}",
            f"mean lift of the {stats.n_adapters} fine-tunes over their base models",
            f"The abstract says {stats.abstract_lift_claim * 100:.0f} points; the mean of the "
            f"{stats.n_adapters} printed deltas is {stats.mean_lift * 100:.1f} points.",
        ),
        (
            f"{stats.mean_best_vs_gpt4:+.3f}",
            "best fine-tune per task vs GPT-4 (mean over 31 tasks)",
            f"Best fine-tune ahead on {stats.tasks_best_beats_gpt4} tasks; GPT-4 stays ahead "
            f"on {ahead}.",
        ),
        (
            f"{stats.n_beat_gpt4}",
            f"(base, task) pairs whose fine-tune beats GPT-4, of {stats.n_adapters}",
            "Strictly higher score than GPT-4 on the same task.",
        ),
        (
            best,
            "best base model for fine-tuning",
            f"Highest mean fine-tuned score over the 31 tasks: {stats.best_base_mean:.3f}.",
        ),
    ]
    body = "".join(
        f"<div class='ll-card'><div class='ll-card-value'>{html.escape(v)}</div>"
        f"<div class='ll-card-label'>{html.escape(label)}</div>"
        f"<div class='ll-card-note'>{html.escape(note)}</div></div>"
        for v, label, note in cards
    )
    return f"<div class='ll-cards' id='ll-headline'>{body}</div>"


def task_note(catalog: Catalog, task: str) -> str:
    """What the per-task chart shows, with the task's metric and any caveat."""
    spec = catalog.tasks[task]
    lines = [
        f"**{spec.ui_name}** (`{spec.name}`, {spec.category}): {spec.description}. "
        f"Metric: {spec.metric}, higher is better; evaluated on the {spec.eval_split} split."
    ]
    if spec.metric_note:
        lines.append(f"⚠️ {spec.metric_note}")
    return "\n\n".join(lines)


def task_view(catalog: Catalog, task: str) -> tuple[Any, str]:
    """The per-task chart and its note."""
    return task_figure(catalog, task), task_note(catalog, task)


def measured_view(catalog: Catalog) -> tuple[pd.DataFrame, str]:
    """This project's measurements beside the report's numbers for the same task."""
    try:
        rows = read_measured(catalog.source_dir / MEASURED_FILE, set(catalog.tasks))
    except CatalogDataError as e:
        return pd.DataFrame(columns=MEASURED_HEADERS), f"⚠️ Could not read the measurements: {e}"
    if not rows:
        note = (
            "No measurements yet. The evaluation tool writes them to "
            "`leaderboards/measured_here.csv`; they appear here on the next page load."
        )
        return pd.DataFrame(columns=MEASURED_HEADERS), note
    records: list[dict[str, Any]] = []
    for m in rows:
        spec = catalog.tasks[m.task]
        best = catalog.per_task(m.task)["finetuned"].max()
        records.append(
            {
                "Task": m.task,
                "Base model": m.base_model,
                "Adapter": m.adapter or "(base model, no adapter)",
                "Metric": m.metric,
                "Measured": round(m.score, 3),
                "n": m.n,
                "Report: best fine-tune": best,
                "Report: GPT-4": spec.gpt4,
                "Data": m.data,
                "Date": m.date,
            }
        )
    note = f"{len(rows)} measurement(s) on this machine's models, next to the report's figures."
    return pd.DataFrame.from_records(records, columns=MEASURED_HEADERS), note


def intro_html() -> str:
    """Tab header: logo, title and a short introduction."""
    logo = LOGO.read_text() if LOGO.is_file() else ""
    return (
        f"<div class='ll-hero'><div class='ll-logo'>{logo}</div><div>"
        "<h2>The LoRA Land leaderboard</h2>"
        "<p>Predibase fine-tuned 10 open base models on 31 tasks with LoRA (rank 8, 4-bit base): "
        "310 adapters, scored against GPT-4 and GPT-3.5-Turbo. Scores are Table 12 of "
        "<a href='https://arxiv.org/abs/2405.00732' target='_blank'>Zhao et al., 2024</a>; "
        f"{TROPHY} marks a fine-tune that beats GPT-4 on its task.</p></div></div>"
    )


def _choices(values: dict[str, str], all_label: str) -> list[tuple[str, str]]:
    return [(all_label, ALL), *((label, value) for value, label in values.items())]


def build_leaderboard_tab(services: Any) -> None:
    """Lay out the tab in the current Blocks context; uses only `services.catalog`."""
    catalog: Catalog = services.catalog
    task_labels = {n: f"{n} — {t.ui_name}" for n, t in catalog.tasks.items()}
    gr.HTML(intro_html())
    gr.HTML(stats_html(catalog.headline_stats(), catalog))
    with gr.Row(elem_classes="ll-filters"):
        search = gr.Textbox(
            label="Search", placeholder="task, model, category…", scale=2, elem_id="ll-lb-search"
        )
        category = gr.Dropdown(
            _choices({c: c for c in catalog.categories}, "All categories"),
            value=ALL,
            label="Category",
            elem_id="ll-lb-category",
        )
        task = gr.Dropdown(
            _choices(task_labels, "All tasks"), value=ALL, label="Task", elem_id="ll-lb-task"
        )
        bases = {n: b.display_name for n, b in catalog.bases.items()}
        base = gr.Dropdown(
            _choices(bases, "All base models"), value=ALL, label="Base model", elem_id="ll-lb-base"
        )
    with gr.Row(equal_height=True):
        beats = gr.Checkbox(
            label=f"{TROPHY} Only fine-tunes that beat GPT-4", elem_id="ll-lb-beats"
        )
        sort_by = gr.Dropdown(SORT_CHOICES, value="lift", label="Sort by", elem_id="ll-lb-sort")
        descending = gr.Checkbox(value=True, label="Descending", elem_id="ll-lb-desc")
    styler, summary_text = leaderboard_view(catalog)
    summary = gr.Markdown(summary_text, elem_id="ll-lb-summary")
    table = gr.Dataframe(
        styler,
        interactive=False,
        max_height=620,
        pinned_columns=2,
        elem_id="ll-lb-table",
        buttons=["fullscreen", "copy"],
    )
    gr.Markdown(
        "Lift = fine-tuned − base score. Every metric is higher-is-better. "
        f"Note on `glue_stsb`: {catalog.tasks['glue_stsb'].metric_note} "
        "Click a column header to sort in the page, or use *Sort by* above.",
        elem_classes="ll-note",
    )
    filters = [search, category, task, base, beats, sort_by, descending]
    gr.on(
        [search.submit, search.change, *(c.change for c in filters[1:])],
        partial(leaderboard_view, catalog),
        inputs=filters,
        outputs=[table, summary],
        api_name="leaderboard_filter",
        show_progress="hidden",
    )
    _build_charts(catalog, task_labels)
    _build_measured(catalog)


def _build_charts(catalog: Catalog, task_labels: dict[str, str]) -> None:
    gr.Markdown("### Tasks x base models")
    value = gr.Radio(
        [(label, v) for v, (label, _, _) in HEATMAP_VALUES.items()],
        value="finetuned",
        label="Colour by",
        elem_id="ll-heat-value",
    )
    heat = gr.Plot(heatmap_figure(catalog, "finetuned"), elem_id="ll-heatmap", show_label=False)
    value.change(partial(heatmap_figure, catalog), value, heat, api_name="leaderboard_heatmap")
    gr.Markdown("### One task: fine-tuned and base scores against GPT-4 and GPT-3.5")
    first = "glue_sst2" if "glue_sst2" in catalog.tasks else next(iter(catalog.tasks))
    choice = gr.Dropdown(
        [(label, n) for n, label in task_labels.items()],
        value=first,
        label="Task",
        elem_id="ll-chart-task",
    )
    chart = gr.Plot(task_figure(catalog, first), elem_id="ll-task-chart", show_label=False)
    note = gr.Markdown(task_note(catalog, first))
    choice.change(
        partial(task_view, catalog),
        choice,
        [chart, note],
        api_name="leaderboard_task_chart",
    )


def _build_measured(catalog: Catalog) -> None:
    gr.Markdown("### Measured here")
    frame, text = measured_view(catalog)
    note = gr.Markdown(text, elem_id="ll-measured-note")
    table = gr.Dataframe(frame, interactive=False, elem_id="ll-measured", max_height=400)
    refresh = gr.Button("Reload measurements", size="sm", elem_id="ll-measured-reload")
    refresh.click(
        lambda: measured_view(catalog), None, [table, note], api_name="leaderboard_measured"
    )
