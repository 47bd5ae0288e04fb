"""The engine: one base model serving many LoRA adapters, batched, streamed, thread-safe.

`Engine.from_settings(settings, deployment)` loads the base once, wires the adapter store
(device / host / disk tiers) and starts the scheduler thread. `generate` and `stream` take
`PreparedRequest`s (checked and tokenized by `lora_land.generation`; a plain request is
prepared with the same rules) and queue them eagerly; a cold adapter is read and validated
in the caller's thread, once however many callers ask. The runner
admits waiting requests into the running batch at every decode step (continuous batching),
whatever their adapters. It implements `TextEngine`.

The engine does not render prompts (the catalog's templates do) and does not know tasks.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import torch

from lora_land.config import Settings
from lora_land.deployment import Deployment
from lora_land.engine.batch import Row, can_merge_rows, prefill_budget, prefill_logits
from lora_land.engine.lora import LoraContext, attach_lora, linear_shapes
from lora_land.engine.runner import BatchRunner, job_result
from lora_land.engine.sampling import make_generator
from lora_land.engine.scheduler import Job, Scheduler
from lora_land.engine.store import AdapterStore, make_loader, make_promoter
from lora_land.engine.types import (
    AdapterState,
    EngineStats,
    GenerationRequest,
    GenerationResult,
    PreparedRequest,
    StreamChunk,
)
from lora_land.engine.zerogpu import InlineScheduler, use_inline_scheduler

log = logging.getLogger(__name__)
T = TypeVar("T")

ADMIT_WINDOW_S = 0.005  # jobs submitted this close together start in the same decode step
WARM_UP_SWITCH_INTERVAL_S = 1e-5  # the GIL's switch interval while compiling (see warm-up)


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
        self._warm_up: threading.Thread | None = None
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
            prefill_chunk_tokens=prefill_budget(settings.prefill_chunk_tokens, device),
            max_rows_per_adapter=settings.max_rows_per_adapter,
        )
        scheduler_class = Scheduler
        if use_inline_scheduler(settings.zerogpu):  # ZeroGPU: no resident worker thread
            scheduler_class = InlineScheduler
        self.scheduler = scheduler_class(
            runner, settings.max_queue, settings.max_batch_size, admit_window_s
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, deployment: Deployment, **options: float | bool
    ) -> Engine:
        """Load the deployment's base (embedded, Hub id or directory) and start serving.

        `options`: `continuous` (default True) and `admit_window_s`, as for the constructor."""
        from lora_land.engine.loading import load_base

        def build() -> Engine:
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

        engine = in_passing_thread(build)
        if settings.compile != "off":
            engine._warm_up = threading.Thread(
                target=engine.warm_up_compiled, name="lora-land-compile", daemon=True
            )
            engine._warm_up.start()
        return engine

    def warm_up_compiled(self) -> bool:
        """Compile the decode step (`engine/compiled.py`) where it serves the model, then
        serve it: the layouts users make most (`CompiledDecoder.warm_up`, with the
        deployment's first adapter that loads) compile now; later steps of other shapes run
        eagerly, and nothing compiles while a request waits. Until it returns, the engine
        serves the eager step (`from_settings` runs this in a thread of its own). Returns
        whether the compiled step is now served."""
        from lora_land.engine import compiled
        from lora_land.engine.decoder import install_step, lean_decoder

        lean = lean_decoder(self.model)
        if not compiled.supported(lean):
            return False
        if not compiled.cxx_available():
            log.info("no C++ compiler (g++, c++, clang++ or $CXX): serving the eager decode step")
            return False
        step = compiled.CompiledDecoder(lean)
        adapter_id, adapter = self._warm_up_adapter()
        # Dynamo traces in Python: with the default 5 ms switch interval the worker waited for
        # the GIL at each of its ~1,000 ops a step (0.3-0.7 tokens/s while compiling, against
        # ~24 eager); at 10 us it kept 3-6 (2 cores, Inductor's C++ compiles beside it)
        interval = sys.getswitchinterval()
        sys.setswitchinterval(WARM_UP_SWITCH_INTERVAL_S)
        try:
            step.warm_up(adapter, before_each=self._wait_until_idle, exclusive=self._model_lock)
        except _ClosedDuringWarmUp:
            return False
        except Exception:  # the eager step serves as before
            log.exception("compiling the decode step failed: serving the eager step")
            return False
        finally:
            sys.setswitchinterval(interval)
            if adapter_id is not None:
                self.store.release(adapter_id)
        compiled.settle()
        install_step(self.model, step)
        log.info("decode step compiled in %.1f s (%d graphs)", step.compile_s, step.compiles())
        return True

    @property
    def decode_step(self) -> str:
        """What decode steps run now: "compiled" (`engine/compiled.py`) or "eager"."""
        from lora_land.engine.compiled import CompiledDecoder
        from lora_land.engine.decoder import lean_decoder

        return "compiled" if isinstance(lean_decoder(self.model), CompiledDecoder) else "eager"

    def wait_compiled(self, timeout: float | None = None) -> str:
        """Wait for the background compile `from_settings` started (if any); returns the
        decode step served now: "compiled" or "eager"."""
        if self._warm_up is not None:
            self._warm_up.join(timeout)
        return self.decode_step

    def _wait_until_idle(self) -> None:
        """Before each graph of the warm-up: wait while requests run or wait (each graph
        takes 10-40 s on 2 cores and slows whatever runs meanwhile); stop if closed."""
        while self.scheduler.depth() or self.runner._jobs:
            time.sleep(0.1)
        if getattr(self.scheduler, "_closed", False):
            raise _ClosedDuringWarmUp

    def _warm_up_adapter(self):
        for adapter_id in self.deployment.adapters:
            try:
                _, host = self.store.prepare(adapter_id)
                return adapter_id, self.store.acquire(adapter_id, host)
            except Exception:  # the next one may load; warming is best effort
                log.warning("warm-up: adapter %s did not load", adapter_id)
        return None, None

    def _attach(self, names: list[str]) -> None:
        with self._model_lock:  # the runner holds the lock for one forward at a time
            attach_lora(self.model, names, self.lora_context)

    # -- TextEngine --------------------------------------------------------------------------
    def generate(
        self, requests: Sequence[PreparedRequest | GenerationRequest]
    ) -> list[GenerationResult]:
        """Complete every request (rows may use different adapters); results in order."""
        results: list[GenerationResult] = []
        step = self.scheduler.max_batch
        for start in range(0, len(requests), step):
            jobs = [self._job(r) for r in requests[start : start + step]]
            self.scheduler.submit(jobs)
            results.extend(_wait(job) for job in jobs)
        return results

    def stream(
        self, request: PreparedRequest | GenerationRequest, cancel: threading.Event | None = None
    ) -> Iterator[StreamChunk]:
        """Queue the request now; the iterator yields a chunk per newly visible piece of text,
        then one carrying the result. Refusals (full queue) are raised here."""
        job = self._job(request, cancel)
        self.scheduler.submit([job])
        return _follow(job)

    def encode(self, text: str) -> list[int]:
        return self._encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self._decode(list(ids))

    def chat_prompt(self, messages: Sequence[dict], adapter_id: str | None) -> str:
        """`messages` through the adapter's chat template if it ships one, else the base's
        (as LoRAX does), ending with the assistant's turn."""
        template = _adapter_chat_template(self.deployment, adapter_id)
        with self._tokenizer_lock:
            return self.tokenizer.apply_chat_template(
                list(messages), chat_template=template, tokenize=False, add_generation_prompt=True
            )

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
                running=len(self.runner._jobs),
            )

    def close(self) -> None:
        self.scheduler.close()

    # -- extras for tests and benchmarks -----------------------------------------------------
    def logits(self, prompts: Sequence[str], adapter_ids: Sequence[str | None]) -> torch.Tensor:
        """Next-token logits [B, V] after each prompt, each row with its adapter (one batch)."""
        jobs = [
            self._job(GenerationRequest(p, a)) for p, a in zip(prompts, adapter_ids, strict=True)
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

    def _prepared(self, request: PreparedRequest | GenerationRequest) -> PreparedRequest:
        if isinstance(request, PreparedRequest):
            return request
        from lora_land.generation import prepare_request  # the service's rules, no torch

        return prepare_request(
            request,
            settings=self.settings,
            deployment=self.deployment,
            encode=self._encode,
            context_length=self.context_length,
        )

    def _job(
        self, request: PreparedRequest | GenerationRequest, cancel: threading.Event | None = None
    ) -> Job:
        """A job for a prepared request; a cold adapter is read and validated here (once)."""
        submitted = time.perf_counter()
        prepared = self._prepared(request)
        request = prepared.request
        state, host = ("base", None)
        if request.adapter_id is not None:
            state, host = self.store.prepare(request.adapter_id)
        seed = request.seed
        if request.temperature > 0 and seed is None:
            seed = random.randrange(2**63)
        return Job(
            request=request,
            prompt_ids=list(prepared.prompt_ids),
            max_new_tokens=prepared.max_new_tokens,
            adapter_state=state,
            host=host,
            submitted_at=submitted,
            stop=cancel,
            deadline=prepared.deadline,
            seed=seed,
        )

    # -- the scheduler's side ----------------------------------------------------------------
    def _row(self, job: Job, adapter) -> Row:
        request = job.request
        generator = None
        if request.temperature > 0:
            generator = make_generator(job.seed, self.device)
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
            adjust=_adjuster(request.top_k, request.repetition_penalty),
        )


def _adjuster(top_k: int, penalty: float):
    """LoRAX/transformers' top-k and repetition penalty on one row's logits, or None."""
    if top_k <= 0 and penalty == 1.0:
        return None

    def adjust(logits: torch.Tensor, row: Row) -> torch.Tensor:
        logits = logits.float().clone()
        if penalty != 1.0:
            seen = torch.tensor(
                sorted({*row.prompt_ids, *row.ids}), dtype=torch.long, device=logits.device
            )
            picked = logits[seen]
            logits[seen] = torch.where(picked > 0, picked / penalty, picked * penalty)
        if 0 < top_k < logits.shape[-1]:
            floor = torch.topk(logits, top_k).values[-1]
            logits = logits.masked_fill(logits < floor, float("-inf"))
        return logits

    return adjust


def _adapter_chat_template(deployment: Deployment, adapter_id: str | None) -> str | None:
    if adapter_id is None or adapter_id not in deployment.adapters:
        return None
    path = deployment.adapters[adapter_id].path
    if path is None:
        return None
    jinja = path / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    config = path / "tokenizer_config.json"
    if config.is_file():
        try:
            template = json.loads(config.read_text()).get("chat_template")
        except (OSError, ValueError):
            return None
        return template if isinstance(template, str) else None
    return None


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


class _ClosedDuringWarmUp(Exception):
    """The engine closed while its decode step compiled: nothing left to serve."""


def in_passing_thread(fn: Callable[[], T]) -> T:
    """`fn()` run in a thread that ends when it returns; its result or exception comes back.

    PyTorch's OpenMP backend (libgomp) gives every thread that runs a parallel region its
    own pool of worker threads, kept for as long as that thread lives. Once a process holds
    more pool threads than CPUs, libgomp cuts their spinning short and every parallel region
    (a decode step runs hundreds) pays futex wake-ups. Measured on a 2-core CPU in bf16:
    batch-1 decode steps of ~27 ms in the one thread that had run torch took ~57 ms in a
    second thread. Loading the model here (the caller may be the main thread, which lives
    on) leaves the engine's worker the only long-lived pool; torch work a caller does in its
    own thread still costs the worker."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["result"] = fn()
        except BaseException as e:  # re-raised in the caller
            box["error"] = e

    thread = threading.Thread(target=run, name="lora-land-load")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["result"]  # type: ignore[return-value]


def _wait(job: Job) -> GenerationResult:
    while True:
        kind, payload = job.events.get()
        if kind == "done":
            return payload
        if kind == "dropped":
            return job_result(job, None)
        if kind == "error":
            raise payload


def _follow(job: Job) -> Iterator[StreamChunk]:
    done = False
    try:
        while True:
            kind, payload = job.events.get()
            if kind == "delta":
                yield payload
            elif kind in ("done", "dropped"):
                done = True
                payload = payload if kind == "done" else job_result(job, None)
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
