"""Running contestants: one prompt to several contestants at once, or many rows to each.

`stream_outputs` streams one prompt to 2-4 contestants and yields every pane's state after
each event: the engine contestants go to the engine together (one batch) through
`engine_events`, the reference (GPT-4) is asked in a worker thread. One contestant's failure
becomes its pane's message; the others go on. `generate_rows` answers many prompts per
contestant for Compare on rows, in one engine batch per chunk of rows.

`engine_events` is the one place that talks to the engine, through the generation service
(`services.generation`: `prepare` checks each request, `stream_many` runs them together).
No Gradio here.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from lora_land.arena.contestants import Contestant
from lora_land.engine.types import GenerationRequest, StreamChunk
from lora_land.errors import UserError

if TYPE_CHECKING:
    from lora_land.services import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Output:
    text: str = ""
    done: bool = False
    error: str | None = None  # what went wrong for this contestant (shown in its pane)
    ttft_s: float | None = None
    tokens_per_s: float | None = None
    tokens: int | None = None
    source: str = ""  # "adapter was hot", "gpt-4, from the cache", ...

    def stats(self) -> str:
        parts = []
        if self.ttft_s is not None:
            parts.append(f"TTFT {self.ttft_s:.2f} s")
        if self.tokens_per_s is not None and (self.tokens or 0) > 1:
            parts.append(f"{self.tokens_per_s:.1f} tokens/s")
        if self.tokens is not None:
            parts.append(f"{self.tokens} tokens")
        if self.source:
            parts.append(self.source)
        return " · ".join(parts)


def request_for(contestant: Contestant, prompt: str, max_new_tokens: int) -> GenerationRequest:
    return GenerationRequest(prompt, contestant.adapter_id, max_new_tokens=max_new_tokens)


def engine_events(
    services: Services, requests: Sequence[GenerationRequest], cancel: threading.Event
) -> Iterator[tuple[int, StreamChunk | Exception]]:
    """(index, chunk or error) for all requests, run together through the generation
    service's `stream_many` (one engine batch); a request refused by `prepare` fails alone."""
    prepared, at = [], []
    for index, request in enumerate(requests):
        try:
            prepared.append(services.generation.prepare(request))
            at.append(index)
        except UserError as e:
            yield index, e
    if not prepared:
        return
    for event in services.generation.stream_many(prepared, cancel):
        if event.error is not None:
            yield at[event.index], event.error
        elif event.chunk is not None:
            yield at[event.index], event.chunk


def _apply(output: Output, item: StreamChunk | Exception) -> Output:
    if isinstance(item, Exception):
        return replace(output, error=str(item), done=True)
    if item.result is None:
        return replace(output, text=item.text, tokens=item.completion_tokens)
    r = item.result
    source = f"adapter was {r.adapter_state}" if r.adapter_id else ""
    return Output(r.text, True, None, r.ttft_s, r.tokens_per_s, r.completion_tokens, source)


def _ask_reference(services: Services, prompt: str, max_new_tokens: int, put) -> None:
    try:
        answer = services.reference.complete(prompt, max_tokens=max_new_tokens)
        where = {"endpoint": "live", "cache": "from the cache", "recording": "recorded"}
        latency = answer.latency_s if answer.source == "endpoint" else None
        source = f"{answer.model}, {where.get(answer.source, answer.source)}"
        put(Output(answer.text, True, None, latency, None, answer.completion_tokens, source))
    except UserError as e:
        put(Output(done=True, error=str(e)))
    except Exception as e:
        log.exception("reference call failed")
        put(Output(done=True, error=f"the reference failed ({type(e).__name__})"))


def stream_outputs(
    services: Services,
    contestants: Sequence[Contestant],
    prompt: str,
    max_new_tokens: int,
    cancel: threading.Event | None = None,
) -> Iterator[list[Output]]:
    """Every contestant's output after each event, until all are done (or `cancel` is set)."""
    cancel = cancel or threading.Event()
    outputs = [Output() for _ in contestants]
    engine_at = [i for i, c in enumerate(contestants) if c.kind != "reference"]
    reference_box: queue.Queue = queue.Queue()
    for i, c in enumerate(contestants):
        if c.kind == "reference":
            put = lambda out, i=i: reference_box.put((i, out))  # noqa: E731
            args = (services, prompt, max_new_tokens, put)
            threading.Thread(target=_ask_reference, args=args, daemon=True).start()
    yield list(outputs)
    requests = [request_for(contestants[i], prompt, max_new_tokens) for i in engine_at]
    for k, item in engine_events(services, requests, cancel):
        outputs[engine_at[k]] = _apply(outputs[engine_at[k]], item)
        outputs = _drain(reference_box, outputs)
        yield list(outputs)
    while not all(o.done for o in outputs):
        try:
            i, out = reference_box.get(timeout=0.25)
        except queue.Empty:
            if cancel.is_set():
                outputs = [o if o.done else Output(done=True, error="Stopped.") for o in outputs]
            continue
        outputs[i] = out
        yield list(outputs)


def _drain(box: queue.Queue, outputs: list[Output]) -> list[Output]:
    while not box.empty():
        i, out = box.get_nowait()
        outputs[i] = out
    return outputs


def generate_rows(
    services: Services,
    contestants: Sequence[Contestant],
    prompts: Sequence[str],
    max_new_tokens: int,
    on_progress: Callable[[int, int], None] | None = None,
    chunk: int = 8,
) -> list[list[Output]]:
    """outputs[c][r]: contestant c's answer to prompt r. Each chunk of rows goes to the
    engine as one batch for all engine contestants; the reference is asked row by row."""
    total = len(contestants) * len(prompts)
    table = [[Output() for _ in prompts] for _ in contestants]
    done = 0
    for start in range(0, len(prompts), chunk):
        rows = range(start, min(start + chunk, len(prompts)))
        cells = [(c, r) for c in range(len(contestants)) for r in rows]
        engine_cells = [(c, r) for c, r in cells if contestants[c].kind != "reference"]
        requests = [
            request_for(contestants[c], prompts[r], max_new_tokens) for c, r in engine_cells
        ]
        for k, item in engine_events(services, requests, threading.Event()):
            c, r = engine_cells[k]
            table[c][r] = _apply(table[c][r], item)
            if table[c][r].done:
                done += 1
                if on_progress is not None:
                    on_progress(done, total)
        for c, r in cells:
            if contestants[c].kind == "reference":
                got: list[Output] = []
                _ask_reference(services, prompts[r], max_new_tokens, got.append)
                table[c][r] = got[0]
                done += 1
                if on_progress is not None:
                    on_progress(done, total)
    return table
