"""The Compare tab: 2-4 named contestants on one prompt, or on N rows of the task.

One prompt: the panes stream together, each with TTFT, tokens/s and (when the example has a
gold answer) its metric score, the best marked ★. "Share" makes a URL whose query parameters
(task, contestants, fields) restore the comparison on page load. Compare on rows runs in the
background with a progress bar and shows scores with 95% intervals, the paired difference to
the first contestant, and the rows side by side with disagreement filters.

Handlers are plain functions (tested without a browser); per-user data lives in `gr.State`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import gradio as gr
import pandas as pd

from lora_land.arena import contestants as cs
from lora_land.arena import rows as rw
from lora_land.arena.run import stream_outputs
from lora_land.errors import UserError
from lora_land.evaluation.scored import MAX_NEW_TOKENS as REPORT_NEW_TOKENS
from lora_land.evaluation.stats import Interval
from lora_land.examples import ExampleLibrary
from lora_land.generation import check_new_tokens
from lora_land.ui.contest import (
    MAX_FIELDS,
    field_updates,
    gold_for,
    max_new_slider,
    score_outputs,
)
from lora_land.ui.playground import rate_limited, refusal

if TYPE_CHECKING:
    from lora_land.services import Services

MAX_PANES = 4
DEFAULT_NEW_TOKENS = 64
# distinct inputs a "better"/"worse" verdict on rows needs (rows sharing an input count once:
# e2e_nlg's first 9 evaluation rows are 4 meaning representations)
MIN_VERDICT_INPUTS = 10
FILTERS = [
    ("All rows", "all"),
    ("Where they disagree", "disagree"),
    ("One right, another wrong", "split"),
]


def task_choices(services: Services) -> list[tuple[str, str]]:
    served = set(services.deployment.served_tasks)
    tasks = sorted(services.catalog.tasks.values(), key=lambda t: (t.name not in served, t.name))
    return [(f"{'● ' if t.name in served else ''}{t.ui_name} ({t.name})", t.name) for t in tasks]


def contestant_choices(services: Services, task: str) -> list[tuple[str, str]]:
    return [(c.label, c.id) for c in cs.pool(services, task)]


def default_contestants(services: Services, task: str) -> list[str]:
    """The first adapter, the base and GPT-4 (when in the pool): the report's comparison."""
    found = cs.pool(services, task)
    adapters = [c.id for c in found if c.kind == "adapter"][:1]
    return (adapters + [c.id for c in found if c.kind != "adapter"])[:MAX_PANES]


def on_task(services: Services, library: ExampleLibrary, task_name: str, chosen=None):
    task = services.catalog.tasks[task_name]
    ids = chosen or default_contestants(services, task_name)
    return (
        gr.update(choices=contestant_choices(services, task_name), value=ids),
        *field_updates(task),
        gr.Dataset(samples=[[e.label] for e in library.for_task(task)]),
        "",
        {"task": task_name, "example": None},
    )


def on_example(services: Services, library: ExampleLibrary, task_name: str, index: int):
    task = services.catalog.tasks[task_name]
    example = library.for_task(task)[int(index)]
    chosen = {"values": example.values, "target": example.target, "row": example.row}
    gold = f"**Gold answer:** `{example.target}`" if example.target is not None else ""
    values = [example.values[f] for f in task.fields]
    return (*field_updates(task, values), gold, {"task": task_name, "example": chosen})


def _panes(titles: list[str], texts: list[str], stats: list[str]) -> list[Any]:
    out: list[Any] = []
    for i in range(MAX_PANES):
        shown = i < len(titles)
        out += [
            gr.update(visible=shown),
            f"#### {titles[i]}" if shown else "",
            texts[i] if shown else "",
            stats[i] if shown else "",
        ]
    return out


def run_compare(
    services: Services,
    task_name: str,
    ids: list[str],
    new: int,
    session: dict | None,
    *values: str,
) -> Iterator[list[Any]]:
    """The Compare button: yields every pane (group, title, text, stats) and a note."""
    task = services.catalog.tasks[task_name]
    given = dict(zip(task.fields, values, strict=False))
    try:
        if not 2 <= len(ids or []) <= MAX_PANES:
            raise UserError(f"choose 2 to {MAX_PANES} contestants, got {len(ids or [])}")
        chosen = cs.find(services, task_name, list(ids))
        prompt = task.render(given)
        if len(prompt) > services.settings.max_prompt_chars:
            raise UserError(
                f"the prompt has {len(prompt)} characters; the limit is "
                f"{services.settings.max_prompt_chars}"
            )
    except UserError as e:
        yield [*_panes([], [], []), f"⚠ {e}"]
        return
    example = (session or {}).get("example")
    gold, row = gold_for(task, given, example)
    titles = [c.label for c in chosen]
    cancel = threading.Event()
    try:
        for outputs in stream_outputs(services, chosen, prompt, int(new), cancel):
            texts = [o.text if o.error is None else f"⚠ {o.error}" for o in outputs]
            stats = [o.stats() or ("…" if not o.done else "") for o in outputs]
            yield [*_panes(titles, texts, stats), "Generating…"]
    finally:
        cancel.set()
    ok = [o.text if o.error is None else "" for o in outputs]
    scores = score_outputs(task_name, gold, row, ok, services)
    scores = [s if o.error is None else None for s, o in zip(scores, outputs, strict=True)]
    known = [s for s in scores if s is not None]
    best = max(known) if known else None
    for i, s in enumerate(scores):
        if s is not None:
            star = " ★ best" if s == best and known.count(best) < len(known) else ""
            stats[i] += f"\n\n**Score ({task.metric_fn}): {s:.3f}**{star}"
    note = f"Gold answer: `{gold}`" if gold is not None else "No gold answer: not scored."
    yield [*_panes(titles, texts, stats), note]


def share_url(
    task: str, ids: list[str], f0: str, f1: str, f2: str, f3: str, request: gr.Request
) -> str:
    """A URL that reopens this comparison (task, contestants, fields) for someone else."""
    values = [f0, f1, f2, f3]
    page = ""
    if request is not None:
        page = request.headers.get("referer") or str(getattr(request, "url", ""))
    parts = urlsplit(page)
    params = {"tab": "compare", "task": task, "c": ",".join(ids or [])}
    params |= {f"f{i}": v for i, v in enumerate(values) if v}
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", urlencode(params), ""))


def restore(services: Services, library: ExampleLibrary, request: gr.Request):
    """Page load: a shared URL's query parameters restore task, contestants and fields."""
    params = dict(request.query_params) if request is not None else {}
    task_name = params.get("task")
    if task_name not in services.catalog.tasks:
        return [gr.skip()] * (MAX_FIELDS + 4)
    pool_ids = [c.id for c in cs.pool(services, task_name)]
    ids = [i for i in params.get("c", "").split(",") if i in pool_ids]  # never arbitrary ids
    task = services.catalog.tasks[task_name]
    values = [params.get(f"f{i}", "") for i in range(len(task.fields))]
    choices, *_rest, chips, _gold, session = on_task(services, library, task_name, ids or None)
    return [task_name, choices, *field_updates(task, values), chips, session]


def rows_report(
    services: Services,
    cache: rw.RowsCache,
    task_name: str,
    ids: list[str],
    new: int,
    n: int,
    source: str = "eval",
    upload: str | None = None,
    tick: Any = None,
) -> rw.RowsReport:
    """The contestants on N rows (evaluation rows or an uploaded JSONL); `UserError` names
    what is wrong with the request and its limit."""
    if task_name not in services.catalog.tasks:
        raise UserError(f"unknown task {str(task_name)[:200]!r}; the Leaderboard lists the tasks")
    task = services.catalog.tasks[task_name]
    if not 2 <= len(ids or []) <= MAX_PANES:
        raise UserError(f"choose 2 to {MAX_PANES} contestants, got {len(ids or [])}")
    chosen = cs.find(services, task_name, list(ids))
    n = _whole("n", n)
    new = check_new_tokens(_whole("max_new_tokens", new), services.settings.max_new_tokens_limit)
    if source == "upload":
        if not upload:
            raise UserError("choose a JSONL file to upload first")
        rows = rw.parse_upload(task, Path(upload).read_text(encoding="utf-8"), n)
    else:
        hub_cache = services.settings.cache_dir / "rows" / f"first-{n}"
        rows = rw.eval_rows(task, n, hub_cache=hub_cache)
    return rw.run_rows(services, task, chosen, rows, new, cache, tick)


def _whole(name: str, value: Any) -> int:
    """A whole number from a slider (float) or an API client; anything else is refused."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value != int(value):
        raise UserError(f"{name} must be a whole number, got {str(value)[:50]!r}")
    return int(value)


def rows_note(services: Services, report: rw.RowsReport, new: int) -> str:
    task = services.catalog.tasks[report.task]
    metric = f"`{task.metric_fn}`"  # what scored the rows (as in the cards and measured here)
    if task.metric_fn != task.metric:
        metric += f" (the report's `{task.metric}`)"
    return (
        f"{len(report.rows)} rows of {report.task}, metric {metric}, at most {int(new)} "
        f"new tokens (the leaderboard's measured-here figures allow {REPORT_NEW_TOKENS}: a "
        "model that rambles scores differently there); 95% bootstrap intervals."
    )


def run_on_rows(
    services: Services,
    cache: rw.RowsCache,
    task_name: str,
    ids: list[str],
    new: int,
    n: int,
    source: str,
    upload: str | None,
    progress: gr.Progress | None = None,
) -> list[Any]:
    """Compare on rows: summary (score, 95% CI, paired difference), rows, note, report."""

    def tick(done: int, total: int) -> None:
        if progress is not None:
            progress(done / total, desc=f"{done} of {total} answers")

    try:
        report = rows_report(services, cache, task_name, ids, new, n, source, upload, tick)
    except UserError as e:
        return [pd.DataFrame(), pd.DataFrame(), f"⚠ {e}", None]
    note = rows_note(services, report, new)
    return [summary_frame(services, task_name, report), rows_frame(report, "all"), note, report]


def verdict(diff: Interval | None) -> str:
    """What a paired difference to the first contestant lets one say."""
    if diff is None:
        return "(reference point)"
    if (units := diff.inputs or diff.n) < MIN_VERDICT_INPUTS:  # a few units claim too much
        return f"too few inputs ({units}) to tell: run {MIN_VERDICT_INPUTS} or more"
    if diff.low > 0:
        return "better"
    if diff.high < 0:
        return "worse"
    return "no clear difference"


def summary_frame(services: Services, task_name: str, report: rw.RowsReport) -> pd.DataFrame:
    labels = {c.id: c.label for c in cs.pool(services, task_name)}
    first = labels.get(report.contestants[0], report.contestants[0])
    records = []
    for cid, mean, diff in zip(report.contestants, report.means, report.diffs, strict=True):
        records.append(
            {
                "Contestant": labels.get(cid, cid),
                "Score [95% CI]": mean.text(),
                "n": mean.n,
                f"This − {first} [95% CI]": diff.text(signed=True) if diff else "—",
                "Verdict": verdict(diff),
            }
        )
    return pd.DataFrame(records)


def compare_on_rows_api(
    services: Services,
    limiter: Any,
    cache: rw.RowsCache,
    task: str,
    contestants: list[str],
    n: int = 20,
    max_new_tokens: int = 64,
    request: gr.Request | None = None,
) -> dict[str, Any]:
    """API: 2-4 contestants (ids as the Compare tab lists them) on the task's first `n`
    evaluation rows, in one call: each one's score with its 95% interval, the paired
    difference to the first with a verdict, and every row's answers and scores."""
    message = rate_limited(limiter, request)
    if message:
        raise refusal(message)
    try:
        report = rows_report(services, cache, task, list(contestants or []), max_new_tokens, n)
    except UserError as e:
        raise refusal(str(e)) from None
    labels = {c.id: c.label for c in cs.pool(services, task)}
    return {
        "task": report.task,
        "metric": services.catalog.tasks[task].metric_fn,  # what scored the rows
        "note": rows_note(services, report, max_new_tokens),
        "contestants": [
            {
                "id": cid,
                "label": labels.get(cid, cid),
                "score": mean.as_dict(),
                "vs_first": diff.as_dict() if diff else None,
                "verdict": verdict(diff),
            }
            for cid, mean, diff in zip(report.contestants, report.means, report.diffs, strict=True)
        ],
        "rows": [
            {
                "row": r + 1,
                "gold": row.get("target"),
                "answers": {cid: report.outputs[c][r] for c, cid in enumerate(report.contestants)},
                "scores": {
                    cid: round(report.scores[c][r], 4) for c, cid in enumerate(report.contestants)
                },
            }
            for r, row in enumerate(report.rows)
        ],
    }


def rows_frame(report: rw.RowsReport | None, kind: str) -> pd.DataFrame:
    if report is None:
        return pd.DataFrame()
    records = []
    for r in rw.disagreements(report, kind):
        record: dict[str, Any] = {"#": r + 1, "gold": report.rows[r].get("target")}
        for c, cid in enumerate(report.contestants):
            record[cid] = report.outputs[c][r]
            record[f"{cid} score"] = round(report.scores[c][r], 3)
        records.append(record)
    return pd.DataFrame(records)


def build_compare_tab(
    services: Services, examples: ExampleLibrary | None = None, limiter: Any = None
) -> None:
    """Build the tab inside the caller's Blocks/Tab context (`limiter`: the per-client
    `RateLimiter` the Playground and the API use, or None)."""
    library = examples or ExampleLibrary.from_settings(services.settings)
    task0 = task_choices(services)[0][1]
    task = services.catalog.tasks[task0]
    session = gr.State({"task": task0, "example": None})
    with gr.Row():
        task_dd = gr.Dropdown(task_choices(services), value=task0, label="Task", elem_id="cmp-task")
        picked = gr.CheckboxGroup(
            contestant_choices(services, task0),
            value=default_contestants(services, task0),
            label=f"Contestants (2 to {MAX_PANES})",
            elem_id="cmp-contestants",
        )
    chips = gr.Dataset(
        components=["textbox"],
        type="index",
        label="Example prompts",
        samples=[[e.label] for e in library.for_task(task)],
        elem_id="cmp-examples",
    )
    fields = [
        gr.Textbox(lines=2, elem_id=f"cmp-field-{i}", **kw)
        for i, kw in enumerate(field_updates(task, None, as_kwargs=True))
    ]
    new = max_new_slider(services, DEFAULT_NEW_TOKENS, "cmp-max-new")
    with gr.Row():
        run_btn = gr.Button("Compare", variant="primary", elem_id="cmp-run")
        share_btn = gr.Button("Share", elem_id="cmp-share-btn")
    share = gr.Textbox(label="Share this comparison", interactive=False, elem_id="cmp-share")
    gold = gr.Markdown(elem_id="cmp-gold")
    pane_parts: list[Any] = []
    with gr.Row(equal_height=True):
        for i in range(MAX_PANES):
            with gr.Column(visible=False, elem_id=f"cmp-pane-{i}") as column:
                title = gr.Markdown(elem_id=f"cmp-title-{i}")
                text = gr.Textbox(
                    lines=8, interactive=False, show_label=False, elem_id=f"cmp-text-{i}"
                )
                stats = gr.Markdown(elem_id=f"cmp-stats-{i}")
            pane_parts += [column, title, text, stats]
    with gr.Accordion("Compare on rows", open=False, elem_id="cmp-rows"):
        with gr.Row():
            n = gr.Slider(1, rw.MAX_ROWS, value=20, step=1, label="Rows (N)", elem_id="cmp-n")
            source = gr.Radio(
                [("Evaluation rows", "eval"), ("Uploaded JSONL", "upload")],
                value="eval",
                label="Rows from",
            )
            upload = gr.File(
                file_types=[".jsonl"], type="filepath", label="JSONL (fields + target)"
            )
        rows_btn = gr.Button("Run on rows", elem_id="cmp-rows-run")
        rows_note = gr.Markdown(elem_id="cmp-rows-note")
        summary = gr.Dataframe(interactive=False, elem_id="cmp-rows-summary")
        shown = gr.Radio(FILTERS, value="all", label="Show", elem_id="cmp-rows-filter")
        rows_table = gr.Dataframe(interactive=False, wrap=True, elem_id="cmp-rows-table")
    report = gr.State(None)
    cache = rw.RowsCache()

    task_dd.input(
        partial(on_task, services, library),
        [task_dd],
        [picked, *fields, chips, gold, session],
        api_name="compare_task",
    )
    chips.click(
        partial(on_example, services, library),
        [task_dd, chips],
        [*fields, gold, session],
        api_visibility="private",
    )

    def compare(task_name, ids, new_tokens, state, f0, f1, f2, f3, request: gr.Request):
        message = rate_limited(limiter, request)
        if message:
            yield [*_panes([], [], []), f"⚠ {message}"]
            return
        yield from run_compare(services, task_name, ids, new_tokens, state, f0, f1, f2, f3)

    run_btn.click(
        compare,
        [task_dd, picked, new, session, *fields],
        [*pane_parts, gold],
        api_name="compare",
    )
    share_btn.click(share_url, [task_dd, picked, *fields], share, api_name="compare_share")

    def on_rows(task_name, ids, new_tokens, count, src, path, progress=gr.Progress()):  # noqa: B008
        return run_on_rows(services, cache, task_name, ids, new_tokens, count, src, path, progress)

    rows_btn.click(
        on_rows,
        [task_dd, picked, new, n, source, upload],
        [summary, rows_table, rows_note, report],
        api_name="compare_rows",
    )
    shown.input(rows_frame, [report, shown], rows_table, api_visibility="private")

    def compare_on_rows(
        task: str,
        contestants: list[str],
        n: int = 20,
        max_new_tokens: int = 64,
        request: gr.Request = None,
    ) -> dict:
        """Contestants on the task's first n evaluation rows: scores with 95% intervals, the
        paired difference to the first, and each row's answers (no UI state needed)."""
        return compare_on_rows_api(
            services, limiter, cache, task, contestants, n, max_new_tokens, request
        )

    gr.api(compare_on_rows, api_name="compare_on_rows")

    def on_load(request: gr.Request):  # a shared URL's query parameters
        return restore(services, library, request)

    gr.on(None, on_load, None, [task_dd, picked, *fields, chips, session], api_visibility="private")
