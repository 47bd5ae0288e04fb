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

from lora_land.catalog import Catalog, HeadlineStats, MeasuredRow
from lora_land.catalog.measured import MEASURED_FILE, read_measured
from lora_land.config import PROJECT_ROOT
from lora_land.errors import CatalogDataError
from lora_land.ui.charts import HEATMAP_VALUES, heatmap_figure, lift_figure, task_figure

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
    "n",
    "Base [95% CI]",
    "Adapter [95% CI]",
    "Paired lift [95% CI]",
    "Second measure: base → adapter, lift [95% CI]",
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


def _score_text(row: MeasuredRow) -> str:
    if row.has_interval:
        return f"{row.score:.3f} [{row.low:.3f}, {row.high:.3f}]"
    return f"{row.score:.3f} (no interval: v1)"


def _lift_text(tuned: MeasuredRow, base: MeasuredRow | None) -> str:
    if tuned.lift is not None and tuned.lift_low is not None and tuned.lift_high is not None:
        return f"{tuned.lift:+.3f} [{tuned.lift_low:+.3f}, {tuned.lift_high:+.3f}]"
    if base is None:
        return "—"
    return f"{tuned.score - base.score:+.3f} (not paired: other runs, no interval)"


def _second_text(tuned: MeasuredRow, base: MeasuredRow | None) -> str:
    if not tuned.second_metric or tuned.second_score is None:
        return ""
    before = f"{base.second_score:.3f}" if base and base.second_score is not None else "?"
    text = f"{tuned.second_metric}: {before} → {tuned.second_score:.3f}"
    if tuned.second_lift is not None:
        text += (
            f", {tuned.second_lift:+.3f} [{tuned.second_lift_low or 0.0:+.3f}, "
            f"{tuned.second_lift_high or 0.0:+.3f}]"
        )
    return text


def read_measured_rows(catalog: Catalog) -> list[MeasuredRow]:
    """The measured rows as the file holds them now (re-read: the file changes while serving)."""
    return read_measured(catalog.source_dir / MEASURED_FILE, set(catalog.tasks))


def measured_view(catalog: Catalog) -> tuple[pd.DataFrame, str]:
    """This project's measurements: per adapter, base and adapter scores on the same rows, the
    paired lift, each with n and its 95% interval, beside the report's numbers for the task."""
    try:
        rows = read_measured_rows(catalog)
    except CatalogDataError as e:
        return pd.DataFrame(columns=MEASURED_HEADERS), f"⚠️ Could not read the measurements: {e}"
    if not rows:
        note = (
            "No measurements yet. The evaluation tool writes them to "
            "`leaderboards/measured_here.csv`; they appear here on the next page load."
        )
        return pd.DataFrame(columns=MEASURED_HEADERS), note
    bases = {(r.task, r.base_model, r.data): r for r in rows if not r.adapter}
    with_adapter = {(r.task, r.base_model, r.data) for r in rows if r.adapter}
    records: list[dict[str, Any]] = []
    for m in rows:
        key = (m.task, m.base_model, m.data)
        if not m.adapter and key in with_adapter:
            continue  # shown on its adapter's line
        base = bases.get(key) if m.adapter else m
        spec = catalog.tasks[m.task]
        records.append(
            {
                "Task": m.task,
                "Base model": m.base_model,
                "Adapter": m.adapter or "(base model, no adapter)",
                "Metric": m.metric,
                "n": m.n,
                "Base [95% CI]": _score_text(base) if base else "—",
                "Adapter [95% CI]": _score_text(m) if m.adapter else "—",
                "Paired lift [95% CI]": _lift_text(m, base) if m.adapter else "—",
                "Second measure: base → adapter, lift [95% CI]": _second_text(m, base),
                "Report: best fine-tune": catalog.per_task(m.task)["finetuned"].max(),
                "Report: GPT-4": spec.gpt4,
                "Data": m.data,
                "Date": m.date,
            }
        )
    paired = [r for r in rows if r.adapter and r.lift is not None]
    above = sum(1 for r in paired if (r.lift_low or 0.0) > 0)
    note = (
        f"{len(rows)} measurement(s) on this machine's models. {len(paired)} adapter(s) carry a "
        f"paired lift (same rows as the base; percentile bootstrap, 95%), {above} of them with "
        "an interval above zero, the rule for shipping an adapter in the mini zoo. Rows marked "
        "v1 were measured before intervals were kept, on the rows that also chose them."
    )
    return pd.DataFrame.from_records(records, columns=MEASURED_HEADERS), note


def measured_outputs(catalog: Catalog) -> tuple[pd.DataFrame, str, Any]:
    """Table, note and the lift chart, for the reload button."""
    frame, note = measured_view(catalog)
    try:
        rows = read_measured_rows(catalog)
    except CatalogDataError:
        rows = []
    return frame, note, lift_figure(rows)


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
    frame, text, figure = measured_outputs(catalog)
    note = gr.Markdown(text, elem_id="ll-measured-note")
    table = gr.Dataframe(frame, interactive=False, elem_id="ll-measured", max_height=400)
    chart = gr.Plot(figure, elem_id="ll-measured-lifts", show_label=False)
    refresh = gr.Button("Reload measurements", size="sm", elem_id="ll-measured-reload")
    refresh.click(
        partial(measured_outputs, catalog),
        None,
        [table, note, chart],
        api_name="leaderboard_measured",
    )
