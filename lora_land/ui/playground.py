"""The Playground tab: pick a base and a task adapter, fill the prompt, run, compare panes.

Layout and wiring only. What is shown comes from `playground_view` (pickers, details, token
count) and `playground_run` (the three streamed panes); the handlers below are plain
functions of their inputs, so tests call them without a browser. Per-user data (the chosen
example, the Stop event of the current run) lives in `gr.State`, never in module globals.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

import gradio as gr

from lora_land.errors import UserError
from lora_land.examples import ExampleLibrary
from lora_land.ui import playground_view as view
from lora_land.ui.contest import max_new_slider
from lora_land.ui.playground_run import PANES, Pane, plan_run, run_panes

if TYPE_CHECKING:
    from lora_land.server.guard import RateLimiter
    from lora_land.services import Services

log = logging.getLogger(__name__)
PANE_TITLES = {
    "finetuned": "Fine-tuned (base + adapter)",
    "base": "Base model (no adapter)",
    "reference": "GPT-4 reference",
}
DEFAULT_NEW_TOKENS = 256


def _field_updates(task, values: list[str] | None = None) -> list[dict]:
    values = values or [""] * len(task.fields)
    updates = []
    for i in range(view.MAX_FIELDS):
        if i < len(task.fields):
            updates.append(gr.update(visible=True, label=task.fields[i], value=values[i]))
        else:
            updates.append(gr.update(visible=False, value=""))
    return updates


def _chips(library: ExampleLibrary, task) -> tuple[Any, str]:
    found = library.for_task(task)
    note = ", ".join(sorted({e.source for e in found})) or "no examples for this task"
    return gr.Dataset(samples=[[e.label] for e in found]), f"Examples: {note}"


def on_task(services: Services, library: ExampleLibrary, base: str, task_name: str, new: int):
    """Everything that follows the task choice: details, template, fields, chips, counts."""
    task = services.catalog.tasks[task_name]
    chips, note = _chips(library, task)
    return (
        view.details_markdown(services, base, task_name),
        task.prompt_template,
        *_field_updates(task),
        chips,
        note,
        view.token_count_markdown(services, task_name, [], new),
        "",
        {"task": task_name, "example": None},
    )


def on_picker(
    services: Services, library: ExampleLibrary, base: str, category: str, session: dict, new: int
):
    """Base or category changed: new task choices (keeping the task when it still fits).

    The current task comes from the session, not from the task dropdown: a picker event
    can be sent with the dropdown's old value while an earlier event is changing its
    choices, and Gradio then refuses the stale value.
    """
    choices = view.task_choices(services, base, category)
    names = [name for _, name in choices]
    task = (session or {}).get("task")
    task = task if task in names else names[0]
    return (gr.update(choices=choices, value=task), *on_task(services, library, base, task, new))


def on_example(services: Services, library: ExampleLibrary, task_name: str, index: int, new: int):
    """A chip was clicked: fill the fields and remember the example (and its gold answer)."""
    task = services.catalog.tasks[task_name]
    example = library.for_task(task)[int(index)]
    values = [example.values[f] for f in task.fields]
    gold = f"**Gold answer:** `{example.target}`" if example.target is not None else ""
    chosen = {"values": example.values, "target": example.target, "row": example.row}
    return (
        *_field_updates(task, values),
        view.token_count_markdown(services, task_name, values, new),
        gold,
        {"task": task_name, "example": chosen},
    )


def pane_outputs(panes: dict[str, Pane], metric: str) -> list[str]:
    out: list[str] = []
    for key in PANES:
        out += [panes[key].text, panes[key].stats_markdown(metric)]
    return out


def new_cancel_event() -> threading.Event:
    return threading.Event()


def stop_run(cancel: threading.Event | None) -> None:
    if cancel is not None:
        cancel.set()


def run(
    services: Services,
    base: str,
    task_name: str,
    new: int,
    session: dict | None,
    cancel: threading.Event | None,
    *values: str,
) -> Iterator[list[str]]:
    """The Run button: yields the three panes (text, stats) and the gold line as they fill."""
    cancel = cancel or threading.Event()
    metric = services.catalog.tasks[task_name].metric_fn  # what scores the answers
    example = (session or {}).get("example")
    try:
        plan = plan_run(services, base, task_name, list(values), int(new), example)
    except UserError as e:
        yield [*pane_outputs(dict.fromkeys(PANES, Pane(note=f"⚠ {e}")), metric), ""]
        return
    gold = f"**Gold answer:** `{plan.gold}`" if plan.gold is not None else ""
    try:
        for panes in run_panes(services, plan, cancel):
            yield [*pane_outputs(panes, metric), gold]
    finally:
        cancel.set()  # a closed generator (Stop, page closed) stops the engine too


def client_of(request: gr.Request | None) -> str:
    """Who is asking, for the rate limit: the client's address (or "local")."""
    client = getattr(request, "client", None)
    return f"ui:{getattr(client, 'host', None) or 'local'}"


def rate_limited(limiter: RateLimiter | None, request: gr.Request | None) -> str | None:
    """The message to show when this client has used up its runs for the minute."""
    wait = limiter.check(client_of(request)) if limiter is not None else None
    if wait is None:
        return None
    return (
        f"Rate limit: {limiter.per_minute} runs a minute per client (LORA_LAND_RATE_LIMIT); "
        f"try again in {wait:.0f} s."
    )


def refusal(message: str) -> gr.Error:
    """The error an API handler raises for a request it refuses (bad input, rate limit): shown
    to the caller as `message`, logged as one line (repr: a newline in the caller's input
    cannot forge another), with no traceback (a refusal is not a server fault)."""
    log.info("refused: %r", message[:300])
    return gr.Error(message, print_exception=False)


def run_comparison(
    services: Services,
    limiter: RateLimiter | None,
    task: str,
    fields: list[str],
    max_new_tokens: int = 64,
    request: gr.Request | None = None,
) -> dict[str, Any]:
    """API: the task's fine-tuned adapter and the bare base on the same prompt, one batch.

    `fields` fill the task's prompt template in order. Returns the adapter id, the prompt and
    both answers (no GPT-4 call: the reference pane is the UI's)."""
    message = rate_limited(limiter, request)
    if message:
        raise refusal(message)
    if task not in services.catalog.tasks:
        raise refusal(f"unknown task {task[:200]!r}; the Leaderboard lists the tasks")
    try:
        plan = plan_run(
            services, view.served_base(services), task, list(fields), int(max_new_tokens)
        )
    except UserError as e:
        raise refusal(str(e)) from None
    keys = list(plan.prepared)
    answers: dict[str, Any] = {"adapter_id": plan.adapter_id, "prompt": plan.prompt}
    for event in services.generation.stream_many(list(plan.prepared.values())):
        if event.done:
            key = keys[event.index]
            answers[key] = f"⚠ {event.error}" if event.error else event.chunk.result.text
    answers.setdefault("finetuned", f"⚠ {plan.adapter_problem}")
    return answers


def build_playground_tab(
    services: Services,
    examples: ExampleLibrary | None = None,
    limiter: RateLimiter | None = None,
) -> None:
    """Build the tab inside the caller's Blocks/Tab context (`limiter`: runs per client)."""
    library = examples or ExampleLibrary.from_settings(services.settings)
    base0 = view.served_base(services)
    task0 = view.default_task(services, base0, view.ALL)
    task = services.catalog.tasks[task0]
    # per user: the current task, the chosen example and its gold answer
    session = gr.State({"task": task0, "example": None})
    cancel = gr.State(None)  # per user: the threading.Event that stops the current run
    with gr.Row():
        base_dd = gr.Dropdown(
            [(c.label, c.name) for c in view.base_choices(services)],
            value=base0,
            label="Base model",
            elem_id="pg-base",
        )
        cat_dd = gr.Dropdown(
            view.categories(services), value=view.ALL, label="Category", elem_id="pg-category"
        )
        task_dd = gr.Dropdown(
            view.task_choices(services, base0, view.ALL),
            value=task0,
            label="Task adapter",
            elem_id="pg-task",
        )
    details = gr.Markdown(view.details_markdown(services, base0, task0), elem_id="pg-details")
    with gr.Row():
        with gr.Column():
            chips = gr.Dataset(
                components=["textbox"],
                samples=[[e.label] for e in library.for_task(task)],
                type="index",
                label="Example prompts",
                elem_id="pg-examples",
            )
            chips_note = gr.Markdown(_chips(library, task)[1])
            fields = [
                gr.Textbox(lines=2, elem_id=f"pg-field-{i}", **_field_kwargs(task, i))
                for i in range(view.MAX_FIELDS)
            ]
            tokens = gr.Markdown(
                view.token_count_markdown(services, task0, [], DEFAULT_NEW_TOKENS),
                elem_id="pg-tokens",
            )
            new = max_new_slider(services, DEFAULT_NEW_TOKENS, "pg-max-new")
            with gr.Row():
                run_btn = gr.Button("Run", variant="primary", elem_id="pg-run")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="pg-stop")
        with gr.Column():
            template = gr.Textbox(
                task.prompt_template,
                lines=14,
                interactive=False,
                label="Prompt template (read-only)",
                elem_id="pg-template",
            )
    gold = gr.Markdown(elem_id="pg-gold")
    outputs = []
    with gr.Row(equal_height=True):
        for key in PANES:
            with gr.Column():
                gr.Markdown(f"#### {PANE_TITLES[key]}")
                outputs.append(
                    gr.Textbox(
                        lines=8, interactive=False, show_label=False, elem_id=f"pg-{key}-text"
                    )
                )
                outputs.append(gr.Markdown(elem_id=f"pg-{key}-stats"))

    task_outputs = [details, template, *fields, chips, chips_note, tokens, gold, session]
    picker_inputs = [base_dd, cat_dd, session, new]
    internal = {"api_visibility": "private"}  # UI plumbing, not part of the public API
    for picker in (base_dd, cat_dd):
        picker.input(
            partial(on_picker, services, library),
            picker_inputs,
            [task_dd, *task_outputs],
            **internal,
        )
    task_dd.input(
        partial(on_task, services, library), [base_dd, task_dd, new], task_outputs, **internal
    )
    chips.click(
        partial(on_example, services, library),
        [task_dd, chips, new],
        [*fields, tokens, gold, session],
        **internal,
    )
    count = partial(_count, services)
    for box in [*fields, new]:
        box.input(count, [task_dd, new, *fields], tokens, **internal)

    def run_playground(base, task_name, new, session, cancel, request: gr.Request, *values):
        """The Run button (three panes and the gold line), rate-limited per client."""
        message = rate_limited(limiter, request)
        if message:
            yield [*pane_outputs(dict.fromkeys(PANES, Pane(note=f"⚠ {message}")), "-"), ""]
            return
        yield from run(services, base, task_name, new, session, cancel, *values)

    started = run_btn.click(new_cancel_event, None, cancel, **internal).then(
        run_playground,
        [base_dd, task_dd, new, session, cancel, *fields],
        [*outputs, gold],
        api_name="run_playground",
    )
    # the run may have loaded the adapter: show its new cache state (cold -> hot)
    started.then(partial(view.details_markdown, services), [base_dd, task_dd], details, **internal)
    stop_btn.click(stop_run, cancel, None, cancels=[started], **internal)

    def compare(
        task: str, fields: list[str], max_new_tokens: int = 64, request: gr.Request = None
    ) -> dict:
        """Fine-tuned vs base on one prompt: {adapter_id, prompt, finetuned, base}."""
        return run_comparison(services, limiter, task, fields, max_new_tokens, request)

    gr.api(compare, api_name="run_comparison")


def _field_kwargs(task, i: int) -> dict:
    if i < len(task.fields):
        return {"label": task.fields[i], "visible": True}
    return {"label": f"field {i + 1}", "visible": False}


def _count(services: Services, task_name: str, new: int, *values: str) -> str:
    return view.token_count_markdown(services, task_name, list(values), new)
