"""Fakes for unit tests only (the app and the browser tests use the real engine).

`FakeEngine` implements the `TextEngine` protocol: it streams a scripted reply word by word
per adapter id, counts tokens as whitespace-separated words (`encode`), takes prepared or
plain requests like the real engines, and can be told to fail an
adapter, to be busy, or to hold a stream until released (to test Stop).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from lora_land.engine.types import (
    AdapterState,
    EngineStats,
    GenerationRequest,
    GenerationResult,
    PreparedRequest,
    StreamChunk,
)
from lora_land.errors import QueueFullError, UnknownAdapterError


@dataclass
class FakeEngine:
    base_name: str = "smollm2-135m-instruct"
    context_length: int = 2048
    adapters: list[str] = field(default_factory=list)  # served adapter ids
    replies: dict[str | None, str] = field(default_factory=dict)  # adapter id -> reply
    failures: dict[str | None, Exception] = field(default_factory=dict)  # raised by stream
    busy: bool = False  # every request raises QueueFullError
    hold: threading.Event | None = None  # when set to an unset Event, streams wait on it
    requests: list[GenerationRequest] = field(default_factory=list)
    _used: set[str] = field(default_factory=set)

    def reply_for(self, adapter_id: str | None) -> str:
        return self.replies.get(adapter_id, "1" if adapter_id else "The sentence is positive")

    def stream(
        self, request: PreparedRequest | GenerationRequest, cancel: threading.Event | None = None
    ) -> Iterator[StreamChunk]:
        """Eager like the real engines: refusals are raised here, before any chunk."""
        max_new = request.max_new_tokens
        if isinstance(request, PreparedRequest):
            request = request.request
        self.requests.append(request)
        if self.busy:
            raise QueueFullError("the engine has 32 requests waiting (the limit); try again")
        if request.adapter_id is not None and request.adapter_id not in self.adapters:
            raise UnknownAdapterError(f"adapter {request.adapter_id!r} is not served")
        if request.adapter_id in self.failures:
            raise self.failures[request.adapter_id]
        state = self.adapter_state(request.adapter_id)
        if request.adapter_id:
            self._used.add(request.adapter_id)
        return self._chunks(request, max_new, state, cancel)

    def _chunks(self, request, max_new, state, cancel) -> Iterator[StreamChunk]:
        words = self.reply_for(request.adapter_id).split(" ")[:max_new]
        text, reason = "", "eos"
        for i, word in enumerate(words):
            if self.hold is not None:
                self.hold.wait(5)
            if cancel is not None and cancel.is_set():
                reason = "cancelled"
                break
            delta = word if i == 0 else " " + word
            text += delta
            yield StreamChunk(delta=delta, text=text, completion_tokens=i + 1)
        n = len(text.split())
        result = GenerationResult(
            text=text,
            adapter_id=request.adapter_id,
            prompt_tokens=self.count_tokens(request.prompt),
            completion_tokens=n,
            finish_reason=reason,
            ttft_s=0.01,
            total_s=0.01 + 0.02 * n,
            tokens_per_s=50.0,
            adapter_state=state,
            token_ids=tuple(range(1, n + 1)),
            token_logprobs=tuple(-0.5 for _ in range(n)),
            seed=request.seed,
        )
        yield StreamChunk(delta="", text=text, completion_tokens=n, result=result)

    def generate(
        self, requests: Sequence[PreparedRequest | GenerationRequest]
    ) -> list[GenerationResult]:
        return [list(self.stream(r))[-1].result for r in requests]  # type: ignore[misc]

    def encode(self, text: str) -> list[int]:
        """One id per whitespace-separated word (its length, so ids are deterministic)."""
        return [len(word) for word in text.split()]

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def adapter_state(self, adapter_id: str | None) -> AdapterState:
        if adapter_id is None:
            return "base"
        return "hot" if adapter_id in self._used else "cold"

    def served_adapters(self) -> list[str]:
        return sorted(self.adapters)

    def stats(self) -> EngineStats:
        return EngineStats(base_loads=1, resident=sorted(self._used))
