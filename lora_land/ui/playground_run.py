"""One Playground run: the same prompt to the fine-tuned model, the base model and GPT-4.

`plan_run` validates the input (fields, what is served, and every generation limit through
`services.generation.prepare`) and `run_panes` streams the three panes: the two engine panes
run together through `services.generation.stream_many` (one batch) and the reference call in
its own thread, all reporting into one queue, so no pane ever waits for another. Each pane
ends with its timings and, when there is a gold answer, its score under the task's metric.
A `threading.Event` stops the run. No Gradio here, no per-user globals.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from lora_land.catalog import Task
from lora_land.engine.types import GenerationRequest, PreparedRequest, StreamChunk
from lora_land.errors import PromptError, UserError
from lora_land.reference import ReferenceAnswer
from lora_land.ui.playground_view import adapter_id, base_choices, served_base

if TYPE_CHECKING:
    from lora_land.services import Services

log = logging.getLogger(__name__)
PANES = ("finetuned", "base", "reference")
_DONE = object()


@dataclass(frozen=True)
class Pane:
    text: str = ""
    note: str = ""  # status or a message saying what went wrong and what to do
    ttft_s: float | None = None
    tokens_per_s: float | None = None
    tokens: int | None = None
    extra: str = ""  # adapter state or where a reference answer came from
    score: float | None = None
    done: bool = False

    def stats_markdown(self, metric: str) -> str:
        parts = []
        if self.ttft_s is not None:
            parts.append(f"TTFT {self.ttft_s:.2f} s")
        if self.tokens_per_s is not None and (self.tokens or 0) > 1:  # a rate needs 2 tokens
            parts.append(f"{self.tokens_per_s:.1f} tokens/s")
        if self.tokens is not None:
            parts.append(f"{self.tokens} token{'s' if self.tokens != 1 else ''}")
        if self.extra:
            parts.append(self.extra)
        lines = [" · ".join(parts)] if parts else []
        if self.score is not None:
            lines.append(f"**Score ({metric}): {self.score:.3f}**")
        if self.note:
            lines.append(self.note)
        return "\n\n".join(lines) or "…"


@dataclass(frozen=True)
class RunPlan:
    task: Task
    prompt: str
    max_new_tokens: int
    adapter_id: str | None  # None: the fine-tuned pane does not run (see adapter_problem)
    adapter_problem: str | None
    base_problem: str | None  # the base pane does not run (unserved base)
    gold: str | None
    row: Mapping[str, Any] | None
    prepared: Mapping[str, PreparedRequest] = field(default_factory=dict)  # pane -> request


def plan_run(
    services: Services,
    base: str,
    task_name: str,
    values: list[str],
    max_new_tokens: int,
    example: Mapping[str, Any] | None = None,
) -> RunPlan:
    """Check the input and decide what each pane runs; `PromptError` says what is wrong.

    The limits are the generation service's (`services.generation.prepare`); the Playground
    only adds that the new tokens asked for must fit the context (no silent cut)."""
    task = services.catalog.tasks[task_name]
    given = dict(zip(task.fields, values, strict=False))
    prompt = task.render(given)  # raises PromptError naming an empty field
    base_problem = _unserved_base_problem(services, base)
    served = adapter_id(services, base, task_name)
    adapter_problem = base_problem or (
        None
        if served
        else f"No {task_name} adapter is served here (served base: {served_base(services)})."
    )
    prepared: dict[str, PreparedRequest] = {}
    if not base_problem:  # an unserved base runs nothing here: nothing to check
        wanted = {"base": None} if adapter_problem else {"finetuned": served, "base": None}
        for key, adapter in wanted.items():
            request = GenerationRequest(prompt, adapter, max_new_tokens=int(max_new_tokens))
            prepared[key] = _fit(services, services.generation.prepare(request))
    gold, row = gold_for(task, given, example)
    return RunPlan(
        task,
        prompt,
        int(max_new_tokens),
        served,
        adapter_problem,
        base_problem,
        gold,
        row,
        prepared,
    )


def _fit(services: Services, prepared: PreparedRequest) -> PreparedRequest:
    asked = prepared.request.max_new_tokens
    if prepared.max_new_tokens >= asked:
        return prepared
    engine = services.engine
    used = len(prepared.prompt_ids)
    raise PromptError(
        f"the prompt is {used} tokens; with {asked} new tokens that is {used + asked}, past "
        f"the {engine.context_length}-token context of {engine.base_name}. Shorten the fields "
        "or lower max new tokens."
    )


def _unserved_base_problem(services: Services, base: str) -> str | None:
    choice = next((c for c in base_choices(services) if c.name == base), None)
    if choice is None or choice.served:
        return None
    return (
        f"The {base} weights are not served here (this server runs "
        f"{served_base(services)}); get them from https://huggingface.co/{choice.hub_id}."
    )


def gold_for(task: Task, given: Mapping[str, str], example: Mapping[str, Any] | None):
    """The example's gold answer, but only while the fields still hold the example's values."""
    if not example or example.get("target") is None:
        return None, None
    values = example.get("values", {})
    if any(values.get(f) != given.get(f) for f in task.fields):
        return None, None
    return str(example["target"]), dict(example.get("row") or values)


def _engine_worker(services, plan: RunPlan, cancel, events) -> None:
    """Both engine panes through one `stream_many` (one batch), forwarded to the queue."""
    keys = list(plan.prepared)
    try:
        for event in services.generation.stream_many(list(plan.prepared.values()), cancel):
            key = keys[event.index]
            events.put((key, event.error if event.error is not None else event.chunk))
            if event.done:
                events.put((key, _DONE))
    except Exception as e:  # a bug: log it, end the panes that were still running
        log.exception("engine panes failed")
        for key in keys:
            events.put((key, RuntimeError(f"the engine failed ({type(e).__name__}); see the log")))
            events.put((key, _DONE))


def _reference_worker(services, prompt, events) -> None:
    try:
        if services.reference is None:
            raise UserError("GPT-4 reference is not configured on this server.")
        events.put(("reference", services.reference.complete(prompt)))
    except UserError as e:
        events.put(("reference", e))
    except Exception as e:
        log.exception("reference call failed")
        events.put(("reference", RuntimeError(f"the reference failed ({type(e).__name__})")))
    finally:
        events.put(("reference", _DONE))


def _offline_note(plan: RunPlan, error: Exception) -> str:
    known = [f"the report's GPT-4 score on {plan.task.name}: {plan.task.gpt4:.3f}"]
    if plan.gold is not None:
        known.insert(0, f"the gold answer: `{plan.gold}`")
    return f"⚠ {error}\n\nKnown instead: " + "; ".join(known) + "."


def _apply(pane: Pane, item: object) -> Pane:
    """The pane after one event from its worker."""
    if isinstance(item, StreamChunk):
        if item.result is None:
            return replace(pane, text=item.text, tokens=item.completion_tokens)
        r = item.result
        note = "Stopped." if r.finish_reason == "cancelled" else ""
        if not note and r.completion_tokens == 0:
            note = "The model ended its answer at once (end of sequence): an empty answer."
        extra = f"adapter was {r.adapter_state}" if r.adapter_id else ""
        return replace(
            pane,
            text=r.text,
            ttft_s=r.ttft_s,
            tokens_per_s=r.tokens_per_s,
            tokens=r.completion_tokens,
            extra=extra,
            note=note,
        )
    if isinstance(item, Exception):
        return replace(pane, note=f"⚠ {item}")
    if isinstance(item, ReferenceAnswer):
        where = {
            "endpoint": "from the endpoint",
            "cache": "from the cache",
            "recording": "recorded answer",
        }[item.source]
        latency = item.latency_s if item.source == "endpoint" else None
        return replace(
            pane,
            text=item.text,
            ttft_s=latency,
            tokens=item.completion_tokens,
            extra=f"{item.model}, {where}",
        )
    return pane


def _score(pane: Pane, plan: RunPlan) -> Pane:
    if plan.gold is None or pane.note.startswith("⚠") or pane.note == "Stopped.":
        return pane
    from lora_land.evaluation.metrics import get_metric

    try:
        value = get_metric(plan.task.metric_fn).score(pane.text, plan.gold, plan.row)
    except Exception as e:  # a metric that cannot read this output says so, in the pane
        return replace(pane, note=f"{pane.note} Not scored: {e}".strip())
    return replace(pane, score=float(value))


def start_panes(plan: RunPlan) -> dict[str, Pane]:
    """The panes as they look when the run starts."""
    return {
        "finetuned": Pane(note=f"⚠ {plan.adapter_problem}", done=True)
        if plan.adapter_problem
        else Pane(note="Generating…"),
        "base": Pane(note=f"⚠ {plan.base_problem}", done=True)
        if plan.base_problem
        else Pane(note="Generating…"),
        "reference": Pane(note="Asking the reference…"),
    }


def run_panes(
    services: Services, plan: RunPlan, cancel: threading.Event
) -> Iterator[dict[str, Pane]]:
    """Yield the three panes after every event, until all are done (or Stop is pressed)."""
    panes = start_panes(plan)
    events: queue.Queue = queue.Queue()
    threading.Thread(
        target=_reference_worker, args=(services, plan.prompt, events), daemon=True
    ).start()
    if plan.prepared:
        threading.Thread(
            target=_engine_worker, args=(services, plan, cancel, events), daemon=True
        ).start()
    jobs = {"reference", *plan.prepared}
    yield dict(panes)
    waiting = set(jobs)
    while waiting:
        try:
            key, item = events.get(timeout=0.25)
        except queue.Empty:
            if cancel.is_set() and waiting == {"reference"}:
                panes["reference"] = replace(panes["reference"], note="Stopped.", done=True)
                break
            continue
        if item is _DONE:
            waiting.discard(key)
            panes[key] = _score(replace(panes[key], done=True), plan)
            if panes[key].note in ("Generating…", "Asking the reference…"):
                panes[key] = replace(panes[key], note="")
        elif key == "reference" and isinstance(item, Exception):
            panes[key] = replace(panes[key], note=_offline_note(plan, item))
        else:
            panes[key] = _apply(panes[key], item)
        yield dict(panes)
