"""The generation service: the one place where a generation request is checked and run.

`GenerationService.prepare(request)` checks every limit (prompt text and length, new tokens,
temperature, top-p, seed, stop strings, adapter id), tokenizes the prompt once and returns a
`PreparedRequest` that engines trust. `generate` runs prepared requests to the end;
`stream_many` runs several together (they share the engine's batch) and yields typed
`StreamEvent`s, so one request's failure is that request's event and the others go on.

Every `UserError` raised here names the value and the limit, echoing at most
`ECHO_CHARS` characters of what the caller sent. This module imports no torch; it does not
render prompts (the catalog does) or speak HTTP (`lora_land.server` does).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from lora_land.engine.types import (
    GenerationRequest,
    GenerationResult,
    PreparedRequest,
    StreamChunk,
    TextEngine,
)
from lora_land.errors import (
    DeadlineExceededError,
    GenerationFailedError,
    PromptError,
    UnknownAdapterError,
    UserError,
)

if TYPE_CHECKING:
    from lora_land.config import Settings
    from lora_land.deployment import Deployment

__all__ = [
    "GenerationService",
    "PreparedRequest",
    "StreamEvent",
    "prepare_request",
    "short",
]

log = logging.getLogger(__name__)

ECHO_CHARS = 200  # longest piece of a caller's value quoted back in a message
MAX_TEMPERATURE = 5.0
MIN_TEMPERATURE = 1e-3  # below this (and above 0) the softmax under/overflows: use 0 for greedy
MAX_SEED = 2**63 - 1
MAX_STOP = 8  # stop strings per request
MAX_STOP_CHARS = 256  # characters per stop string
MAX_TOP_K = 1000
MIN_PENALTY, MAX_PENALTY = 0.01, 10.0


def short(value: object, limit: int = ECHO_CHARS) -> str:
    """`repr(value)`, cut to `limit` characters with a note of how long it was."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


def check_text(name: str, text: object, max_chars: int, setting: str | None = None) -> str:
    """A non-empty str of at most `max_chars` characters that UTF-8 can encode."""
    if not isinstance(text, str):
        raise PromptError(f"{name} must be a string, got {type(text).__name__}")
    if not text.strip():
        raise PromptError(f"the {name} is empty")
    if len(text) > max_chars:
        where = f" ({setting})" if setting else ""
        raise PromptError(f"the {name} has {len(text)} characters; the limit is {max_chars}{where}")
    _check_encodable(name, text)
    return text


def _check_encodable(name: str, text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise PromptError(
            f"the {name} holds a character UTF-8 cannot encode at position {e.start} "
            f"({short(text[e.start : e.end])}: a lone UTF-16 surrogate); send valid Unicode"
        ) from None


def _check_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PromptError(f"{name} must be a number, got {short(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise PromptError(f"{name} must be a finite number, got {value}")
    return value


def check_new_tokens(new: object, max_new_tokens_limit: int) -> int:
    """`max_new_tokens` an integer within 1..the limit; returns it."""
    if isinstance(new, bool) or not isinstance(new, int):
        raise PromptError(f"max_new_tokens must be an integer, got {short(new)}")
    if not 1 <= new <= max_new_tokens_limit:
        raise PromptError(
            f"max_new_tokens is {new}; it must be between 1 and {max_new_tokens_limit} "
            "(LORA_LAND_MAX_NEW_TOKENS)"
        )
    return new


def check_sampling(request: GenerationRequest, max_new_tokens_limit: int) -> None:
    """New tokens, temperature, top-p, seed and stop strings within their limits."""
    check_new_tokens(request.max_new_tokens, max_new_tokens_limit)
    temperature = _check_number("temperature", request.temperature)
    if temperature != 0 and not MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE:
        raise PromptError(
            f"temperature is {temperature:g}; it must be 0 (greedy) or between "
            f"{MIN_TEMPERATURE:g} and {MAX_TEMPERATURE:g}"
        )
    top_p = _check_number("top_p", request.top_p)
    if not 0 < top_p <= 1:
        raise PromptError(f"top_p is {top_p:g}; it must be in (0, 1]")
    seed = request.seed
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise PromptError(f"seed must be an integer, got {short(seed)}")
        if not 0 <= seed <= MAX_SEED:
            raise PromptError(f"seed is {short(seed)}; it must be between 0 and 2**63-1")
    if len(request.stop) > MAX_STOP:
        raise PromptError(f"{len(request.stop)} stop strings given; the limit is {MAX_STOP}")
    for i, stop in enumerate(request.stop):
        if not isinstance(stop, str):
            raise PromptError(f"stop[{i}] must be a string, got {short(stop)}")
        if stop == "":
            raise PromptError(f"stop[{i}] is empty; an empty stop string would end at once")
        if len(stop) > MAX_STOP_CHARS:
            raise PromptError(
                f"stop[{i}] has {len(stop)} characters; the limit is {MAX_STOP_CHARS}"
            )
        _check_encodable(f"stop[{i}]", stop)
    top_k = request.top_k
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 0 <= top_k <= MAX_TOP_K:
        raise PromptError(f"top_k is {short(top_k)}; it must be an integer from 0 to {MAX_TOP_K}")
    penalty = _check_number("repetition_penalty", request.repetition_penalty)
    if not MIN_PENALTY <= penalty <= MAX_PENALTY:
        raise PromptError(
            f"repetition_penalty is {penalty:g}; it must be between {MIN_PENALTY:g} and "
            f"{MAX_PENALTY:g} (1 is none)"
        )
    if request.truncate not in ("error", "left"):
        raise PromptError(f"truncate must be 'error' or 'left', got {short(request.truncate)}")


def check_adapter(adapter_id: str | None, deployment: Deployment) -> None:
    """A served adapter id (or a path/repo the operator allows); None is the base."""
    if adapter_id is None:
        return
    if not isinstance(adapter_id, str) or not adapter_id:
        raise UnknownAdapterError(f"adapter id must be a non-empty string, got {short(adapter_id)}")
    if adapter_id in deployment.adapters:
        return
    if deployment.allow_arbitrary and len(adapter_id) <= 1000:
        deployment.resolve(adapter_id)  # raises with the served list when it is not usable
        return
    served = sorted(deployment.adapters)
    listed = ", ".join(served[:8]) or "none"
    more = f" (and {len(served) - 8} more)" if len(served) > 8 else ""
    raise UnknownAdapterError(
        f"adapter {short(adapter_id)} is not served by deployment {deployment.name!r}; "
        f"served adapters: {listed}{more}"
    )


def prepare_request(
    request: GenerationRequest,
    *,
    settings: Settings,
    deployment: Deployment,
    encode: Callable[[str], list[int]],
    context_length: int,
    timeout_s: float | None = None,
) -> PreparedRequest:
    """Check `request`, tokenize its prompt once and fit it to the context (see module doc)."""
    check_text("prompt", request.prompt, settings.max_prompt_chars, "LORA_LAND_MAX_PROMPT_CHARS")
    check_sampling(request, settings.max_new_tokens_limit)
    check_adapter(request.adapter_id, deployment)
    request = replace(request, stop=tuple(request.stop))
    max_new = min(request.max_new_tokens, context_length - 1)
    ids = encode(request.prompt)
    if len(ids) + max_new > context_length:
        if request.truncate == "left":  # keep the tail, leave room for every new token
            ids = ids[len(ids) - (context_length - max_new) :]
        elif len(ids) >= context_length:
            raise PromptError(
                f"the prompt is {len(ids)} tokens; the model's context is {context_length} "
                "tokens (prompt plus new tokens); shorten the prompt or allow truncation"
            )
        else:
            max_new = context_length - len(ids)  # fewer new tokens, finishing on "length"
    deadline = time.monotonic() + timeout_s if timeout_s else None
    return PreparedRequest(request, tuple(ids), max_new, deadline)


@dataclass(frozen=True)
class StreamEvent:
    """One step of one of the requests given to `stream_many`."""

    index: int  # position of the request in the sequence given
    chunk: StreamChunk | None = None  # chunk.result is set on that request's last event
    error: UserError | None = None  # that request failed; the others go on

    @property
    def done(self) -> bool:
        return self.error is not None or (self.chunk is not None and self.chunk.done)


class GenerationService:
    """Validation at the edge, then the engine (ours or a remote one), which trusts it."""

    def __init__(self, engine: TextEngine, settings: Settings, deployment: Deployment) -> None:
        self.engine = engine
        self.settings = settings
        self.deployment = deployment

    def prepare(self, request: GenerationRequest) -> PreparedRequest:
        """Check every limit and tokenize once; raises `UserError` naming value and limit."""
        return prepare_request(
            request,
            settings=self.settings,
            deployment=self.deployment,
            encode=self.engine.encode,
            context_length=self.engine.context_length,
            timeout_s=getattr(self.settings, "request_timeout_s", None),
        )

    def tokenize(self, text: str) -> list[int]:
        """Token ids of `text`, capped like prompts (so no caller holds the tokenizer long)."""
        check_text("text", text, self.settings.max_prompt_chars, "LORA_LAND_MAX_PROMPT_CHARS")
        return self.engine.encode(text)

    def chat_prompt(self, messages: Sequence[dict], adapter_id: str | None) -> str:
        """The prompt for chat `messages`: the adapter's chat template if it has one, else
        the base's (engines without templates get plain "role: content" lines)."""
        render = getattr(self.engine, "chat_prompt", None)
        if render is not None:
            return render(messages, adapter_id)
        lines = [f"{m['role']}: {m['content']}" for m in messages]
        return "\n".join([*lines, "assistant:"])

    def token_texts(self, ids: Sequence[int]) -> list[str]:
        """The text of each token id (empty strings when the engine cannot say)."""
        decode = getattr(self.engine, "decode", None)
        return [decode([i]) if decode else "" for i in ids]

    def generate(self, prepared: Sequence[PreparedRequest]) -> list[GenerationResult]:
        """Run every request to its end (together); results in order. The first failure is
        raised (after every request has ended); use `stream_many` to see each one's fate."""
        results: list[GenerationResult | None] = [None] * len(prepared)
        failure: UserError | None = None
        for event in self.stream_many(prepared):
            if event.error is not None:
                failure = failure or event.error
            elif event.chunk is not None and event.chunk.result is not None:
                results[event.index] = event.chunk.result
        if failure is not None:
            raise failure
        return [r for r in results if r is not None]

    def stream_many(
        self, prepared: Sequence[PreparedRequest], cancel: threading.Event | None = None
    ) -> Iterator[StreamEvent]:
        """Start every request now (one engine batch) and yield their events as they come.

        Each request ends with exactly one done event (its result or its error). Setting
        `cancel`, or closing this iterator, stops every request that is still running."""
        stop = cancel if cancel is not None else threading.Event()
        events: queue.Queue = queue.Queue()
        streams: list[tuple[int, Iterator[StreamChunk]]] = []
        for index, item in enumerate(prepared):
            try:
                streams.append((index, self.engine.stream(item, stop)))
            except UserError as e:  # refused at submission: this one ends here
                events.put(StreamEvent(index, error=e))
            except Exception as e:
                events.put(StreamEvent(index, error=_failure(e, item)))
        for index, chunks in streams:
            threading.Thread(
                target=_pump, args=(index, chunks, prepared[index], events), daemon=True
            ).start()
        left = len(prepared)
        try:
            while left:
                event = events.get()
                if event.done:
                    left -= 1
                yield event
        finally:
            if left:
                stop.set()  # a consumer that stops reading stops the generation


def _pump(
    index: int, chunks: Iterator[StreamChunk], item: PreparedRequest, events: queue.Queue
) -> None:
    try:
        for chunk in chunks:
            if chunk.result is not None and chunk.result.finish_reason == "deadline":
                events.put(StreamEvent(index, error=_deadline(item)))
                return
            events.put(StreamEvent(index, chunk=chunk))
            if chunk.done:
                return
        events.put(StreamEvent(index, error=GenerationFailedError("the stream ended early")))
    except UserError as e:
        events.put(StreamEvent(index, error=e))
    except Exception as e:
        events.put(StreamEvent(index, error=_failure(e, item)))


def _deadline(item: PreparedRequest) -> DeadlineExceededError:
    return DeadlineExceededError(
        "the request ran past its deadline and was stopped "
        "(LORA_LAND_REQUEST_TIMEOUT); ask for fewer new tokens or try again"
    )


def _failure(error: Exception, item: PreparedRequest) -> GenerationFailedError:
    adapter = short(item.request.adapter_id)
    log.error("generation failed for adapter %s: %r", adapter, error, exc_info=error)
    return GenerationFailedError(
        f"the engine failed on this request ({type(error).__name__}); other requests were "
        "not affected"
    )
