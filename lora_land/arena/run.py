"""Running contestants: one prompt to several contestants at once, or many rows to each.

`stream_outputs` streams one prompt to 2-4 contestants and yields every pane's state after
each event: the engine contestants go to the engine together (one batch) through
`engine_events`, the reference (GPT-4) is asked in a worker thread. One contestant's failure
becomes its pane's message; the others go on. `generate_rows` answers many prompts per
contestant for Compare on rows, in one engine batch per chunk of rows.

`engine_events` is the one place that talks to the engine; it will become a call of the
generation service's `stream_many` once that service exists. No Gradio here.
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
from lora_land.errors import GenerationCancelled, UserError

if TYPE_CHECKING:
    from lora_land.services import Services

log = logging.getLogger(__name__)
_DONE = object()


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
    """(index, chunk or error) for all requests streamed at once; ends when all are done.

    Today: one `engine.stream` per request in worker threads (the engine's admission window
    puts requests sent together into one batch). To become `generation.stream_many`.
    """
    events: queue.Queue = queue.Queue()

    def worker(index: int, request: GenerationRequest) -> None:
        try:
            for chunk in services.engine.stream(request, cancel):
                events.put((index, chunk))
        except UserError as e:
            events.put((index, e))
        except GenerationCancelled:
            events.put((index, UserError("Stopped.")))
        except Exception as e:  # a bug: log it, show a short message
            log.exception("engine stream failed for %s", request.adapter_id)
            events.put((index, UserError(f"the engine failed ({type(e).__name__}); see the log")))
        finally:
            events.put((index, _DONE))

    for index, request in enumerate(requests):
        threading.Thread(target=worker, args=(index, request), daemon=True).start()
    waiting = set(range(len(requests)))
    while waiting:
        index, item = events.get()
        if item is _DONE:
            waiting.discard(index)
        else:
            yield index, item


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
    """outputs[c][r]: contestant c's answer to prompt r (engine rows batched per chunk)."""
    total = len(contestants) * len(prompts)
    done = 0
    table: list[list[Output]] = []
    for contestant in contestants:
        answers: list[Output] = []
        for start in range(0, len(prompts), chunk):
            part = prompts[start : start + chunk]
            answers += _answer_many(services, contestant, part, max_new_tokens)
            done += len(part)
            if on_progress is not None:
                on_progress(done, total)
        table.append(answers)
    return table


def _answer_many(
    services: Services, contestant: Contestant, prompts: Sequence[str], max_new_tokens: int
) -> list[Output]:
    if contestant.kind == "reference":
        got: list[Output] = []
        for prompt in prompts:
            _ask_reference(services, prompt, max_new_tokens, got.append)
        return got
    requests = [request_for(contestant, p, max_new_tokens) for p in prompts]
    try:
        results = services.engine.generate(requests)
    except UserError as e:
        return [Output(done=True, error=str(e)) for _ in prompts]
    return [
        Output(r.text, True, None, r.ttft_s, r.tokens_per_s, r.completion_tokens) for r in results
    ]
