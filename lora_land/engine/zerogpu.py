"""ZeroGPU mode: the engine without a resident worker thread, generating inside `@spaces.GPU`.

Hugging Face ZeroGPU Spaces attach a GPU only while a function decorated with `spaces.GPU`
runs, and they run it in a forked worker process: its arguments and results are pickled, and
nothing it changes (queues, events) reaches the caller except what it returns. So in this mode
`InlineScheduler` replaces the threaded `Scheduler`: `submit` hands picklable job specs to one
module-level function wrapped by `spaces.GPU`, which rebuilds the jobs there, runs the
engine's own `BatchRunner` over them (continuous batching among the jobs of that call) to
the end, and returns every job's events; the caller then replays them into each job's queue,
so `generate` and `stream` work unchanged (a stream's text arrives when the call ends).
Calls are serialised by a lock; jobs submitted while a call runs go in the next call.

Where `spaces` is missing or `SPACES_ZERO_GPU` is not set, `spaces.GPU` is a no-op (and so is
`gpu` here): the same code then runs in the caller's thread, which is how it is tested.

This module moves jobs; it does not run the model itself (the runner does).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from lora_land.engine.scheduler import Job, Runner
from lora_land.engine.types import AdapterState, GenerationRequest
from lora_land.errors import QueueFullError

log = logging.getLogger(__name__)

GPU_DURATION_S = 120  # what one call may ask ZeroGPU for


def zerogpu_active() -> bool:
    """Whether this process runs on a ZeroGPU Space (spaces importable, SPACES_ZERO_GPU set)."""
    try:
        from spaces.config import Config
    except ImportError:
        return False
    return bool(Config.zero_gpu)


def use_inline_scheduler(mode: str) -> bool:
    """`LORA_LAND_ZEROGPU`: "on", "off", or "auto" (on exactly when on a ZeroGPU Space)."""
    if mode not in ("auto", "on", "off"):
        from lora_land.errors import ConfigError

        raise ConfigError(f"LORA_LAND_ZEROGPU must be auto, on or off, got {mode!r}")
    return mode == "on" or (mode == "auto" and zerogpu_active())


def gpu(fn: Callable, duration: int = GPU_DURATION_S) -> Callable:
    """`fn` wrapped by `spaces.GPU(duration=...)`, or `fn` itself without `spaces`."""
    try:
        import spaces
    except ImportError:
        return fn
    return spaces.GPU(duration=duration)(fn)


@dataclass(frozen=True)
class JobSpec:
    """What the GPU process needs to rebuild a job (picklable: no events, locks or queues)."""

    request: GenerationRequest
    prompt_ids: tuple[int, ...]
    max_new_tokens: int
    adapter_state: AdapterState
    seed: int | None
    submitted_at: float
    deadline: float | None  # time.monotonic(), the same clock in the forked process

    @classmethod
    def of(cls, job: Job) -> JobSpec:
        return cls(
            job.request,
            tuple(job.prompt_ids),
            job.max_new_tokens,
            job.adapter_state,
            job.seed,
            job.submitted_at,
            job.deadline,
        )

    def job(self) -> Job:
        return Job(
            request=self.request,
            prompt_ids=list(self.prompt_ids),
            max_new_tokens=self.max_new_tokens,
            adapter_state=self.adapter_state,
            host=None,  # the store reloads it in the GPU process when it is not resident
            submitted_at=self.submitted_at,
            seed=self.seed,
            deadline=self.deadline,
        )


_SCHEDULERS: dict[int, InlineScheduler] = {}  # inherited by ZeroGPU's forked process
_ids = itertools.count()


def _run_on_gpu(key: int, specs: list[JobSpec]) -> list[list[tuple[str, object]]]:
    """Module-level (so `spaces.GPU` registers it once): run the jobs, return their events."""
    return _SCHEDULERS[key].drive(specs)


_run_on_gpu_wrapped: Callable | None = None


class _OneCall:
    """The runner's job source for one call: the call's jobs, then None (the runner returns)."""

    def __init__(self, jobs: list[Job], max_batch: int) -> None:
        self._waiting = list(jobs)
        self.max_batch = max_batch

    def take(self, room: int, wait: bool, skip=None, quota=None, tokens=None) -> list[Job] | None:
        if not self._waiting:
            return None if wait else []
        jobs: list[Job] = []
        given: dict[str | None, int] = {}
        for job in self._waiting:
            adapter_id = job.request.adapter_id
            if len(jobs) >= room or (skip is not None and skip(job)):
                continue
            limit = quota(adapter_id) if quota is not None else None
            if limit is not None and given.get(adapter_id, 0) >= limit:
                continue
            given[adapter_id] = given.get(adapter_id, 0) + 1
            jobs.append(job)
        self._waiting = [j for j in self._waiting if all(j is not t for t in jobs)]
        return jobs

    def put_back(self, jobs: list[Job]) -> None:
        self._waiting = list(jobs) + self._waiting


class InlineScheduler:
    """The `Scheduler` interface with no thread: `submit` runs its jobs through `runner`
    inside one `spaces.GPU` call (see the module docstring)."""

    def __init__(
        self, runner: Runner, max_queue: int, max_batch: int, admit_window_s: float = 0.0
    ) -> None:
        global _run_on_gpu_wrapped
        self._runner = runner
        self.max_queue = max_queue
        self.max_batch = max(1, max_batch)
        self.admit_window_s = admit_window_s
        self._call_lock = threading.Lock()
        self._waiting = 0
        self._count_lock = threading.Lock()
        self._closed = False
        self.calls = 0  # GPU calls made
        self._key = next(_ids)
        _SCHEDULERS[self._key] = self
        if _run_on_gpu_wrapped is None:
            _run_on_gpu_wrapped = gpu(_run_on_gpu)

    def depth(self) -> int:
        return self._waiting

    def submit(self, jobs: list[Job]) -> None:
        """Run `jobs` to the end in one GPU call; their events are in their queues after."""
        if self._closed:
            raise RuntimeError("the engine is closed")
        with self._count_lock:
            if self._waiting + len(jobs) > self.max_queue:
                raise QueueFullError(
                    f"the engine queue is full ({self._waiting} waiting, limit "
                    f"{self.max_queue}); try again shortly"
                )
            self._waiting += len(jobs)
        try:
            with self._call_lock:
                live = [job for job in jobs if not job.abandoned()]
                for job in jobs:
                    if all(job is not j for j in live):
                        job.events.put(("dropped", None))
                if not live:
                    return
                self.calls += 1
                events = _run_on_gpu_wrapped(self._key, [JobSpec.of(job) for job in live])
        except Exception as e:
            for job in jobs:
                job.events.put(("error", e))
            return
        finally:
            with self._count_lock:
                self._waiting -= len(jobs)
        for job, job_events in zip(live, events, strict=True):
            for event in job_events:
                job.events.put(event)

    def drive(self, specs: list[JobSpec]) -> list[list[tuple[str, object]]]:
        """In the GPU process: rebuild the jobs, run them all, drain their events."""
        jobs = [spec.job() for spec in specs]
        self._runner(_OneCall(jobs, self.max_batch))  # type: ignore[arg-type]
        drained = []
        for job in jobs:
            events = []
            while not job.events.empty():
                events.append(job.events.get_nowait())
            drained.append(events)
        return drained

    def close(self) -> None:
        self._closed = True
        _SCHEDULERS.pop(self._key, None)
