"""The engine: one base model serving many LoRA adapters, batched, streamed, thread-safe.

`Engine.from_settings(settings, deployment)` loads the base once, wires the adapter store
(device / host / disk tiers) and starts the scheduler thread. `generate` and `stream` validate
a request in the caller's thread (prompt limits, truncation, adapter id; a cold adapter is
read and validated there too, once however many callers ask), then queue it; the runner
admits waiting requests into the running batch at every decode step (continuous batching),
whatever their adapters. It implements `TextEngine`.

The engine does not render prompts (the catalog's templates do) and does not know tasks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence

import torch

from lora_land.config import Settings
from lora_land.deployment import Deployment
from lora_land.engine.batch import Row, can_merge_rows, prefill_logits
from lora_land.engine.lora import LoraContext, attach_lora, linear_shapes
from lora_land.engine.runner import BatchRunner
from lora_land.engine.sampling import make_generator
from lora_land.engine.scheduler import Job, Scheduler
from lora_land.engine.store import AdapterStore, make_loader, make_promoter
from lora_land.engine.types import (
    AdapterState,
    EngineStats,
    GenerationRequest,
    GenerationResult,
    StreamChunk,
)
from lora_land.errors import PromptError

log = logging.getLogger(__name__)

ADMIT_WINDOW_S = 0.005  # jobs submitted this close together start in the same decode step


class Engine:
    """Implements `TextEngine` on a transformers causal LM plus multi-LoRA layers."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        *,
        settings: Settings,
        deployment: Deployment,
        device: torch.device,
        dtype: torch.dtype,
        context_length: int,
        continuous: bool = True,
        admit_window_s: float = ADMIT_WINDOW_S,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.settings = settings
        self.deployment = deployment
        self.device = device
        self.base_name = deployment.base.name
        self.context_length = context_length
        self.base_loads = 1
        self.lora_context = LoraContext()
        self._tokenizer_lock = threading.Lock()  # fast tokenizers are not re-entrant
        self._model_lock = threading.Lock()  # the scheduler and `logits` take turns
        self.pad_id = _pad_id(tokenizer)
        self.eos_ids = _eos_ids(tokenizer, model)
        loader = make_loader(
            linear_shapes(model),
            settings.max_lora_rank,
            settings.allow_pickle_adapters,
            settings.cache_dir / "adapters",
        )
        promote = make_promoter(device, dtype, self._attach)
        self.store = AdapterStore(
            deployment, loader, promote, settings.device_cache_bytes, settings.host_cache_bytes
        )
        self.store.preload_pinned()
        if continuous and not can_merge_rows(model):
            log.warning("this model's cache cannot take rows mid-batch: no continuous batching")
            continuous = False
        self.continuous = continuous
        self.runner = runner = BatchRunner(
            model=model,
            context=self.lora_context,
            store=self.store,
            make_row=self._row,
            pad_id=self.pad_id,
            device=device,
            max_batch=settings.max_batch_size,
            lock=self._model_lock,
            continuous=continuous,
        )
        self.scheduler = Scheduler(
            runner, settings.max_queue, settings.max_batch_size, admit_window_s
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, deployment: Deployment, **options: float | bool
    ) -> Engine:
        """Load the deployment's base (embedded, Hub id or directory) and start serving.

        `options`: `continuous` (default True) and `admit_window_s`, as for the constructor."""
        from lora_land.engine.loading import load_base

        base = load_base(deployment.base, settings)
        return cls(
            base.model,
            base.tokenizer,
            settings=settings,
            deployment=deployment,
            device=base.device,
            dtype=base.dtype,
            context_length=base.context_length,
            **options,  # type: ignore[arg-type]  # checked by the constructor's signature
        )

    def _attach(self, names: list[str]) -> None:
        with self._model_lock:  # the runner holds the lock for one forward at a time
            attach_lora(self.model, names, self.lora_context)

    # -- TextEngine --------------------------------------------------------------------------
    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Complete every request (rows may use different adapters); results in order."""
        results: list[GenerationResult] = []
        step = self.scheduler.max_batch
        for start in range(0, len(requests), step):
            jobs = [self._prepare(r) for r in requests[start : start + step]]
            self.scheduler.submit(jobs)
            results.extend(_wait(job) for job in jobs)
        return results

    def stream(
        self, request: GenerationRequest, cancel: threading.Event | None = None
    ) -> Iterator[StreamChunk]:
        """Yield a chunk per newly visible piece of text, then one carrying the result.

        Validation errors are raised here, before anything is yielded."""
        job = self._prepare(request, cancel)
        self.scheduler.submit([job])
        return _follow(job)

    def count_tokens(self, text: str) -> int:
        return len(self._encode(text))

    def adapter_state(self, adapter_id: str | None) -> AdapterState:
        return self.store.state(adapter_id)

    def served_adapters(self) -> list[str]:
        return sorted(self.deployment.adapters)

    def stats(self) -> EngineStats:
        store = self.store
        with store._lock:
            return EngineStats(
                base_loads=self.base_loads,
                hits=dict(store.hits),
                misses=store.misses,
                evictions={"device": store.device.evictions, "host": store.host.evictions},
                load_time_s=store.load_time_s,
                bytes_used={"device": store.device.bytes_used, "host": store.host.bytes_used},
                resident=[str(k) for k in store.device.lru_order()],
                queue_depth=self.scheduler.depth(),
            )

    def close(self) -> None:
        self.scheduler.close()

    # -- extras for tests and benchmarks -----------------------------------------------------
    def logits(self, prompts: Sequence[str], adapter_ids: Sequence[str | None]) -> torch.Tensor:
        """Next-token logits [B, V] after each prompt, each row with its adapter (one batch)."""
        jobs = [
            self._prepare(GenerationRequest(p, a))
            for p, a in zip(prompts, adapter_ids, strict=True)
        ]
        held = [j.request.adapter_id for j in jobs if j.request.adapter_id]
        adapters = [
            self.store.acquire(j.request.adapter_id, j.host) if j.request.adapter_id else None
            for j in jobs
        ]
        try:
            rows = [self._row(job, adapter) for job, adapter in zip(jobs, adapters, strict=True)]
            with self._model_lock:
                try:
                    return prefill_logits(
                        self.model, self.lora_context, rows, self.pad_id, self.device
                    )
                finally:
                    self.lora_context.clear()  # under the lock: the runner sets it per forward
        finally:
            for adapter_id in held:
                self.store.release(adapter_id)

    # -- validation (caller's thread) --------------------------------------------------------
    def _encode(self, text: str) -> list[int]:
        with self._tokenizer_lock:
            return list(self.tokenizer(text, add_special_tokens=True)["input_ids"])

    def _decode(self, ids: list[int]) -> str:
        with self._tokenizer_lock:
            return self.tokenizer.decode(ids, skip_special_tokens=False)

    def _prepare(self, request: GenerationRequest, cancel: threading.Event | None = None) -> Job:
        submitted = time.perf_counter()
        max_new, ids = self._check_prompt(request)
        state, host = ("base", None)
        if request.adapter_id is not None:
            state, host = self.store.prepare(request.adapter_id)
        return Job(
            request=request,
            prompt_ids=ids,
            max_new_tokens=max_new,
            adapter_state=state,
            host=host,
            cancel=cancel or threading.Event(),
            submitted_at=submitted,
        )

    def _check_prompt(self, request: GenerationRequest) -> tuple[int, list[int]]:
        limit = self.settings.max_prompt_chars
        if not request.prompt or not request.prompt.strip():
            raise PromptError("the prompt is empty")
        if len(request.prompt) > limit:
            raise PromptError(
                f"the prompt has {len(request.prompt)} characters; the limit is "
                f"{limit} (LORA_LAND_MAX_PROMPT_CHARS)"
            )
        if request.max_new_tokens < 1:
            raise PromptError(f"max_new_tokens must be at least 1, got {request.max_new_tokens}")
        if request.temperature < 0 or not 0 < request.top_p <= 1:
            raise PromptError(
                f"temperature must be >= 0 and top_p in (0, 1], got "
                f"{request.temperature} and {request.top_p}"
            )
        max_new = min(
            request.max_new_tokens, self.settings.max_new_tokens_limit, self.context_length - 1
        )
        ids = self._encode(request.prompt)
        if len(ids) + max_new <= self.context_length:
            return max_new, ids
        if request.truncate == "left":  # keep the tail, leave room for every new token
            return max_new, ids[len(ids) - (self.context_length - max_new) :]
        if len(ids) >= self.context_length:
            raise PromptError(
                f"the prompt is {len(ids)} tokens; the model's context is {self.context_length} "
                "tokens (prompt plus new tokens); shorten the prompt or allow truncation"
            )
        return self.context_length - len(ids), ids  # fewer new tokens, finishing on "length"

    # -- the scheduler's side ----------------------------------------------------------------
    def _row(self, job: Job, adapter) -> Row:
        request = job.request
        generator = None
        if request.temperature > 0:
            generator = make_generator(request.seed, self.device)
        return Row(
            prompt_ids=job.prompt_ids,
            adapter=adapter,
            max_new_tokens=job.max_new_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            stop=request.stop,
            eos_ids=self.eos_ids,
            decode=self._decode,
            generator=generator,
            cancel=job.cancel,
        )


def _pad_id(tokenizer) -> int:
    for value in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if value is not None:
            return int(value)
    return 0


def _eos_ids(tokenizer, model: torch.nn.Module) -> frozenset[int]:
    ids: set[int] = set()
    generation = getattr(model, "generation_config", None)
    for value in (tokenizer.eos_token_id, getattr(generation, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(int(v) for v in value)
    return frozenset(ids)


def _wait(job: Job) -> GenerationResult:
    while True:
        kind, payload = job.events.get()
        if kind == "done":
            return payload
        if kind == "error":
            raise payload


def _follow(job: Job) -> Iterator[StreamChunk]:
    done = False
    try:
        while True:
            kind, payload = job.events.get()
            if kind == "delta":
                yield payload
            elif kind == "done":
                done = True
                yield StreamChunk(
                    delta="",
                    text=payload.text,
                    completion_tokens=payload.completion_tokens,
                    result=payload,
                )
                return
            else:
                done = True
                raise payload
    finally:
        if not done:
            job.cancel.set()  # a consumer that stops reading stops the generation
