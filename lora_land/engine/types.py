"""The engine's public vocabulary: requests, results, stream chunks and the `TextEngine` protocol.

Plain dataclasses with no torch import, so the UI, the HTTP API, the evaluation runner and
their tests can speak to the engine (or to a fake of it) without loading torch.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

AdapterState = Literal["base", "hot", "warm", "cold"]
FinishReason = Literal["eos", "stop", "length", "cancelled", "deadline"]


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt to complete. `adapter_id=None` means the bare base model."""

    prompt: str
    adapter_id: str | None = None  # a deployment adapter id, "<base>/<task>"
    max_new_tokens: int = 256  # the report's default
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    seed: int | None = None  # makes sampling reproducible
    stop: tuple[str, ...] = ()  # stop sequences, not included in the output
    truncate: Literal["error", "left"] = "error"  # past the context: refuse, or keep the tail
    top_k: int = 0  # sample among the k likeliest tokens only (0: all)
    repetition_penalty: float = 1.0  # > 1 discourages tokens already in prompt or output


@dataclass(frozen=True)
class GenerationResult:
    text: str
    adapter_id: str | None
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason
    ttft_s: float  # seconds from submission to the first generated token
    total_s: float  # seconds from submission to the end
    tokens_per_s: float  # decode rate: tokens sampled after the first / time since the first
    # where the adapter was when the request came: resident (hot), host memory (warm), disk (cold)
    adapter_state: AdapterState
    token_ids: tuple[int, ...] = ()  # the generated tokens (EOS excluded), when the engine knows
    token_logprobs: tuple[float, ...] = ()  # log-probability of each under the model's softmax
    seed: int | None = None  # the sampling seed used (None: greedy)
    queue_s: float = 0.0  # seconds from submission to the start of its prefill


@dataclass(frozen=True)
class PreparedRequest:
    """A request the generation service has checked: engines take these and trust them.

    `lora_land.generation.GenerationService.prepare` builds them (every limit checked, the
    prompt tokenized once, the adapter id resolved); engines do not validate again."""

    request: GenerationRequest  # normalised (stop as a tuple, limits applied)
    prompt_ids: tuple[int, ...]  # tokenized once
    max_new_tokens: int  # after clamping to limits and the context
    deadline: float | None = None  # time.monotonic() past which the request ends with 504


@dataclass(frozen=True)
class StreamChunk:
    """A streamed step: `text` is everything so far; `result` is set on the last chunk only."""

    delta: str
    text: str
    completion_tokens: int
    result: GenerationResult | None = None
    token_id: int | None = None  # the last token sampled, when the engine knows it
    logprob: float | None = None  # its log-probability

    @property
    def done(self) -> bool:
        return self.result is not None


@dataclass
class EngineStats:
    """Counters for the adapter cache and the engine (see `TextEngine.stats`)."""

    base_loads: int = 0  # how many times the base model was loaded (1 in normal life)
    hits: dict[str, int] = field(default_factory=dict)  # per tier: "device", "host"
    misses: int = 0  # loads from disk or the Hub
    evictions: dict[str, int] = field(default_factory=dict)  # per tier
    load_time_s: float = 0.0  # total time spent loading adapters
    bytes_used: dict[str, int] = field(default_factory=dict)  # per tier
    resident: list[str] = field(default_factory=list)  # adapter ids on the device tier
    queue_depth: int = 0
    running: int = 0  # rows decoding in the batch now


@runtime_checkable
class TextEngine(Protocol):
    """What the UI, the API and the evaluation runner need from an engine.

    Engines take `PreparedRequest`s; a plain `GenerationRequest` is prepared with the same
    rules (`lora_land.generation.prepare_request`) as a convenience for tools and tests."""

    base_name: str  # the deployment's base model name, e.g. "smollm2-135m-instruct"
    context_length: int  # prompt + new tokens must fit in this many tokens

    def generate(
        self, requests: Sequence[PreparedRequest | GenerationRequest]
    ) -> list[GenerationResult]: ...

    def stream(
        self, request: PreparedRequest | GenerationRequest, cancel: threading.Event | None = None
    ) -> Iterator[StreamChunk]:
        """Eager: the request is queued when this returns (the iterator only reads)."""
        ...

    def encode(self, text: str) -> list[int]: ...

    def count_tokens(self, text: str) -> int: ...

    def adapter_state(self, adapter_id: str | None) -> AdapterState: ...

    def served_adapters(self) -> list[str]: ...

    def stats(self) -> EngineStats: ...
