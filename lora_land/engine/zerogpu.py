"""ZeroGPU mode: the engine without a resident worker thread, generating inside `@spaces.GPU`.

Hugging Face ZeroGPU Spaces attach a GPU only while a function decorated with `spaces.GPU`
runs, and they run it in a forked worker process: its arguments and what it yields are
pickled, and nothing it changes (queues, events) reaches the caller otherwise. So in this
mode `InlineScheduler` replaces the threaded `Scheduler`. `submit` queues picklable job specs
and returns; a short-lived driver thread makes one GPU call after another while jobs wait
(calls serialised by a lock; jobs submitted during a call go in the next one). The GPU
function is a generator, which `spaces.GPU` streams (its `generator_function_wrapper`): in
the GPU process it rebuilds the jobs and runs the engine's own `BatchRunner` over them on a
thread of its own (continuous batching among the jobs of that call), in lockstep: at every
decode-step boundary the runner waits while the generator yields that step's events. The
driver forwards each event to its job's queue as it arrives, so `generate` and `stream` work
unchanged and a stream's text arrives step by step while the call runs.

Cancellation: a job's cancel event does not cross into the forked process, and `spaces`
only lets the caller close the whole generator (it sets the worker's stop event; the worker
closes the generator at its next yield). So the driver checks its jobs between yields (the
generator yields at least every `HEARTBEAT_S`, even mid-step): a job that was cancelled or
ran past its deadline ends there for its reader ("cancelled"/"deadline", with the text it
had), and its later events are dropped, while the other jobs of the call go on; its row
keeps decoding on the GPU side (in-process mode too) until it ends, a deadline (checked
there too) passes, or the call is closed: once every job of a call has ended the driver
closes the generator, which cancels the remaining rows and stops the runner.

Where `spaces` is missing or `SPACES_ZERO_GPU` is not set, `spaces.GPU` is a no-op (and so is
`gpu` here): the same code then runs in-process, the generator driven by the driver thread
(never by a reader), which is how it is tested.

This module moves jobs; it does not run the model itself (the runner does).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import pickle
import queue
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass

from lora_land.engine.runner import job_result
from lora_land.engine.scheduler import Job, Runner
from lora_land.engine.types import (
    AdapterState,
    GenerationRequest,
    GenerationResult,
    StreamChunk,
)
from lora_land.errors import QueueFullError

log = logging.getLogger(__name__)

GPU_DURATION_S = 120  # what one call may ask ZeroGPU for
HEARTBEAT_S = 0.5  # longest the GPU generator goes without yielding (so a call can be stopped)

JobEvent = tuple[str, object]  # ("delta" | "done" | "dropped" | "error", payload), as in Job.events
Step = list[tuple[int, JobEvent]]  # what the GPU generator yields: (job index in the call, event)


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


def _run_on_gpu(key: int, specs: list[JobSpec]) -> Generator[Step, None, None]:
    """Module-level (so `spaces.GPU` registers it once) and a generator function (so
    `spaces.GPU` streams it): run the jobs, yield their events step by step."""
    yield from _SCHEDULERS[key].drive(specs)


_run_on_gpu_wrapped: Callable[[int, list[JobSpec]], Generator[Step, None, None]] | None = None


class _OneCall:
    """The runner's job source for one call: the call's jobs, then None (the runner returns).
    `boundary` is called at every `take`, i.e. at every decode-step boundary."""

    def __init__(
        self, jobs: list[Job], max_batch: int, boundary: Callable[[], None] | None = None
    ) -> None:
        self._waiting = list(jobs)
        self.max_batch = max_batch
        self._boundary = boundary

    def take(
        self,
        room: int,
        wait: bool,
        skip=None,
        quota=None,
        tokens=None,
        held=None,
        fit_first=False,
    ) -> list[Job] | None:
        if fit_first:  # a top-up within a step: not a step boundary, and the call's jobs
            return []  # were all offered at its first take
        if self._boundary is not None:
            self._boundary()
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


_STEP, _END = "step", "end"  # marks from the runner's thread to the generator


class _GpuCall:
    """In the GPU process: one call's jobs, run by the runner on a thread of its own in
    lockstep with `events()`: at each step boundary the runner waits until the generator has
    yielded that step's events and been asked for more."""

    def __init__(self, specs: list[JobSpec], max_batch: int) -> None:
        self.jobs = [spec.job() for spec in specs]
        self.source = _OneCall(self.jobs, max_batch, boundary=self._boundary)
        self._marks: queue.Queue[str] = queue.Queue()
        self._go = threading.Semaphore(0)
        self._closed = False

    def _boundary(self) -> None:  # the runner's thread
        self._marks.put(_STEP)
        if not self._closed:
            self._go.acquire()

    def _run(self, runner: Runner) -> None:  # the runner's thread
        try:
            runner(self.source)  # type: ignore[arg-type]  # _OneCall has the runner's side
        except BaseException as e:  # a bug in the runner: fail the call's jobs, not the worker
            log.exception("engine runner failed in a GPU call")
            for job in self.jobs:
                job.events.put(("error", e))
        finally:
            self._marks.put(_END)

    def events(self, runner: Runner) -> Generator[Step, None, None]:
        """Start the runner; yield each step's events (an empty list when a step takes longer
        than `HEARTBEAT_S`). Closing this generator cancels the jobs and waits for the
        runner to return."""
        thread = threading.Thread(
            target=self._run, args=(runner,), name="lora-land-gpu-call", daemon=True
        )
        thread.start()
        try:
            while True:
                try:
                    mark = self._marks.get(timeout=HEARTBEAT_S)
                except queue.Empty:
                    yield []  # the caller may stop the call here
                    continue
                step = self._drain()
                if step:
                    yield step
                if mark == _END:
                    return
                self._go.release()  # the runner takes its next step
        finally:
            self._closed = True
            for job in self.jobs:  # closed early: the runner stops their rows (no-op at the end)
                job.cancel.set()
            self._go.release()
            thread.join()

    def _drain(self) -> Step:
        step: Step = []
        for index, job in enumerate(self.jobs):
            while True:
                try:
                    kind, payload = job.events.get_nowait()
                except queue.Empty:
                    break
                if kind == "error":
                    payload = _picklable(payload)
                step.append((index, (kind, payload)))
        return step


def _picklable(error: object) -> object:
    """`error`, or a RuntimeError naming it when it would not survive the trip to the caller
    (an exception that fails to unpickle there would stall the call)."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


class _Forwarding:
    """The caller's side of one call: hands each event to its job, ends jobs whose reader left."""

    def __init__(self, jobs: list[Job]) -> None:
        self.jobs = jobs
        self.ended = [False] * len(jobs)
        self._last: list[StreamChunk | None] = [None] * len(jobs)

    def forward(self, step: Step) -> bool:
        """Stop cancelled jobs, pass on the others' events; True once every job has ended."""
        for index, job in enumerate(self.jobs):
            if not self.ended[index] and job.abandoned():
                self._end(index, ("done", _stopped(job, self._last[index])))
        for index, (kind, payload) in step:
            if self.ended[index]:
                continue  # a job ended here (cancelled): its row's later events are dropped
            if kind == "delta":
                self._last[index] = payload  # type: ignore[assignment]
                self.jobs[index].events.put((kind, payload))
            else:
                self._end(index, (kind, payload))
        return all(self.ended)

    def fail(self, error: BaseException) -> None:
        for index in range(len(self.jobs)):
            if not self.ended[index]:
                self._end(index, ("error", error))

    def _end(self, index: int, event: JobEvent) -> None:
        self.ended[index] = True
        self.jobs[index].events.put(event)


def _stopped(job: Job, last: StreamChunk | None) -> GenerationResult:
    """The result of a job the caller stopped: the text it had streamed so far."""
    result = job_result(job, None)  # "cancelled", or "deadline" when it timed out
    if last is None:
        return result
    return dataclasses.replace(result, text=last.text, completion_tokens=last.completion_tokens)


class InlineScheduler:
    """The `Scheduler` interface with no resident thread: jobs run through `runner` inside
    `spaces.GPU` calls made by a driver thread while jobs wait (see the module docstring)."""

    def __init__(
        self, runner: Runner, max_queue: int, max_batch: int, admit_window_s: float = 0.0
    ) -> None:
        global _run_on_gpu_wrapped
        self._runner = runner
        self.max_queue = max_queue
        self.max_batch = max(1, max_batch)
        self.admit_window_s = admit_window_s
        self._call_lock = threading.Lock()  # one GPU call at a time
        self._cond = threading.Condition()  # guards the fields below
        self._pending: list[Job] = []  # submitted, waiting for the next call
        self._first_at = 0.0  # when the oldest of them was submitted (perf_counter)
        self._driver: threading.Thread | None = None
        self._closed = False
        self.calls = 0  # GPU calls made
        self._key = next(_ids)
        _SCHEDULERS[self._key] = self
        if _run_on_gpu_wrapped is None:
            _run_on_gpu_wrapped = gpu(_run_on_gpu)

    def depth(self) -> int:
        with self._cond:
            return len(self._pending)

    def submit(self, jobs: list[Job]) -> None:
        """Queue `jobs` for the next GPU call (together), or refuse them all; returns at once."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the engine is closed")
            waiting = len(self._pending)
            if waiting + len(jobs) > self.max_queue:
                raise QueueFullError(
                    f"the engine queue is full ({waiting} waiting, limit "
                    f"{self.max_queue}); try again shortly"
                )
            if not self._pending:
                self._first_at = time.perf_counter()
            self._pending.extend(jobs)
            self._cond.notify_all()
            if self._driver is None:
                self._driver = threading.Thread(
                    target=self._drive_calls, name="lora-land-zerogpu", daemon=True
                )
                self._driver.start()

    def close(self) -> None:
        """Stop admitting; a running call finishes, jobs still waiting get an error."""
        with self._cond:
            self._closed = True
            left, self._pending = self._pending, []
            driver = self._driver
            self._cond.notify_all()
        for job in left:
            job.events.put(("error", RuntimeError("the engine was closed before this request ran")))
        if driver is not None:
            driver.join(timeout=10)
        _SCHEDULERS.pop(self._key, None)

    # -- the driver thread -------------------------------------------------------------------
    def _drive_calls(self) -> None:
        """One GPU call after another while jobs wait; then the thread ends."""
        while jobs := self._next_jobs():
            with self._call_lock:
                self._call(jobs)

    def _next_jobs(self) -> list[Job]:
        """Every waiting job, once the oldest has waited `admit_window_s` (or a batch's worth
        waits); an empty list ends the driver."""
        with self._cond:
            while self._pending and len(self._pending) < self.max_batch and not self._closed:
                remaining = self._first_at + self.admit_window_s - time.perf_counter()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            jobs, self._pending = self._pending, []
            if not jobs:
                self._driver = None
            return jobs

    def _call(self, jobs: list[Job]) -> None:
        """1. drop jobs nobody waits for; 2. start the GPU generator; 3. forward its events
        until every job has ended; 4. close it (stopping the GPU side), fail what is left."""
        live = []
        for job in jobs:
            if job.abandoned():
                job.events.put(("dropped", None))
            else:
                live.append(job)
        if not live:
            return
        self.calls += 1
        forwarding = _Forwarding(live)
        steps = None
        try:
            steps = _run_on_gpu_wrapped(self._key, [JobSpec.of(job) for job in live])
            for step in steps:
                if forwarding.forward(step):
                    break
        except BaseException as e:  # the GPU call failed (ZeroGPU raises gr.Error): its jobs too
            forwarding.fail(e)
        finally:
            if steps is not None:
                try:
                    steps.close()
                except Exception:
                    log.exception("closing a GPU call failed")
        forwarding.fail(RuntimeError("the GPU call ended before this request did"))

    def drive(self, specs: list[JobSpec]) -> Generator[Step, None, None]:
        """In the GPU process: rebuild the jobs and run them, yielding events step by step."""
        return _GpuCall(specs, self.max_batch).events(self._runner)
