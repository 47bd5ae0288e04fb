"""The scheduler: one thread owns the model; callers queue jobs; the runner takes them.

A bounded queue (`max_queue` jobs; `QueueFullError` beyond) feeds a single worker thread
running the engine's runner, which calls `take` at every decode-step boundary for as many
jobs as its batch has room for (continuous batching). The queue is one FIFO per adapter
(LoRAX's fairness idea): `take` admits round-robin, one job per adapter per round, rounds
ordered by the age of each adapter's oldest waiting job, so a flood of requests for one
adapter cannot starve the others. Rows already running count as rounds already served
(`held`): an adapter holding twelve rows gets its next job after every adapter holding fewer
has had one, so a request for a quiet adapter goes ahead of a flood's queued jobs and is not
left for the next step by the token budget. A `quota` per adapter (the runner's cap on rows
one adapter may hold) bounds what a round may give it. A short admission window lets jobs
submitted a few milliseconds apart start in the same step: once a job waits, `take` holds on
until the oldest waiting job has waited `admit_window_s` or enough jobs wait to fill the
room, so a lone request waits at most that long. Jobs the runner cannot start yet (their
adapter does not fit the device tier while other adapters are held) stay in the queue, in
order (`skip`), or are put back at its front. Every event for a job (text deltas, the final
result, an error) goes through its own `events` queue, which is what `generate` and `stream`
read.

The scheduler knows nothing about models or adapters: it moves jobs.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from lora_land.engine.types import AdapterState, GenerationRequest
from lora_land.engine.validation import HostAdapter
from lora_land.errors import QueueFullError

log = logging.getLogger(__name__)


@dataclass
class Job:
    """A validated request waiting for (or running in) a batch."""

    request: GenerationRequest
    prompt_ids: list[int]
    max_new_tokens: int
    adapter_state: AdapterState
    host: HostAdapter | None  # the host copy when the adapter was not resident at submit
    cancel: threading.Event = field(default_factory=threading.Event)
    submitted_at: float = field(default_factory=time.perf_counter)
    events: queue.Queue = field(default_factory=queue.Queue)  # ("delta"|"done"|"error", ...)
    queued_at: float = 0.0  # when it entered the scheduler's queue (the scheduler's clock)
    seq: int = 0  # order of arrival in the scheduler (ties of `queued_at`)
    group: object = None  # jobs of one group start together (see `Scheduler.submit`)
    stop: threading.Event | None = None  # the caller's cancel (may be shared by several jobs)
    deadline: float | None = None  # time.monotonic() past which the job is stopped
    timed_out: bool = False
    seed: int | None = None  # the sampling seed used (drawn when the request gave none)
    started_at: float = 0.0  # when its prefill began (perf_counter)

    def abandoned(self) -> bool:
        """Nobody waits for it any more (cancelled), or it ran past its deadline."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.timed_out = True
            return True
        return self.cancel.is_set() or (self.stop is not None and self.stop.is_set())


Runner = Callable[["Scheduler"], None]  # loops on `take` until it returns None


class Scheduler:
    def __init__(
        self,
        runner: Runner,
        max_queue: int,
        max_batch: int,
        admit_window_s: float = 0.005,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._runner = runner
        self.max_queue = max_queue
        self.max_batch = max(1, max_batch)
        self.admit_window_s = admit_window_s
        self._clock = clock
        self._queues: dict[str | None, deque[Job]] = {}  # per adapter id, oldest first
        self._arrivals = 0
        self._submits = 0
        self._cond = threading.Condition()
        self._closed = False
        self._taken: list[Job] = []  # handed to the runner since it was last idle
        self._thread = threading.Thread(target=self._loop, name="lora-land-engine", daemon=True)
        self._thread.start()

    def depth(self) -> int:
        with self._cond:
            self._cull()
            return self._waiting()

    def _waiting(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def _cull(self) -> None:
        """Drop queued jobs nobody waits for (under the lock); each gets a "dropped" event."""
        for key, waiting in list(self._queues.items()):
            dead = [job.abandoned() for job in waiting]
            if not any(dead):
                continue
            dropped = [job for job, d in zip(waiting, dead, strict=True) if d]
            self._queues[key] = deque(job for job, d in zip(waiting, dead, strict=True) if not d)
            for job in dropped:
                job.events.put(("dropped", None))
        self._queues = {key: q for key, q in self._queues.items() if q}

    def submit(self, jobs: list[Job]) -> None:
        """Queue `jobs` together (they will share a step when they fit), or refuse them all."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the engine is closed")
            self._cull()
            waiting = self._waiting()
            if waiting + len(jobs) > self.max_queue:
                raise QueueFullError(
                    f"the engine queue is full ({waiting} waiting, limit "
                    f"{self.max_queue}); try again shortly"
                )
            now = self._clock()
            self._submits += 1
            for job in jobs:
                # one group: the jobs of one `submit` call, and jobs that share the caller's
                # cancel event (`GenerationService.stream_many`: the panes of one Compare)
                job.group = ("stop", id(job.stop)) if job.stop is not None else self._submits
                job.queued_at = now
                job.seq = self._arrivals
                self._arrivals += 1
                self._queues.setdefault(job.request.adapter_id, deque()).append(job)
            self._cond.notify()

    def close(self) -> None:
        """Stop admitting; running rows finish, jobs still queued get an error."""
        with self._cond:
            self._closed = True
            left = [job for waiting in self._queues.values() for job in waiting]
            self._queues.clear()
            self._cond.notify_all()
        for job in left:
            job.events.put(("error", RuntimeError("the engine was closed before this request ran")))
        self._thread.join(timeout=10)

    # -- the runner's side -------------------------------------------------------------------
    def take(
        self,
        room: int,
        wait: bool,
        skip: Callable[[Job], bool] | None = None,
        quota: Callable[[str | None], int | None] | None = None,
        tokens: int | None = None,
        held: Callable[[str | None], int] | None = None,
        fit_first: bool = False,
    ) -> list[Job] | None:
        """Up to `room` waiting jobs, round-robin over adapters (see `admission_order`),
        leaving those `skip` names in place and giving adapter `a` at most `quota(a)` jobs
        (None: no limit); `held(a)` is the rows adapter `a` already runs. With a `tokens`
        budget (the runner's prefill budget per step, like vLLM's max_num_batched_tokens),
        the jobs taken make a prefill of at most that many positions (rows x the longest
        prompt: they are left-padded), except that the first job and the jobs submitted
        with a taken one (the panes of one Compare, a request's `n` choices) always go: a
        burst of arrivals joins over a few steps instead of stalling running rows, and a
        request arriving during it, for one big prefill; a long prompt is then prefilled
        in chunks (`RunningBatch`). With `fit_first` the first job must fit the budget too
        (the runner topping up a step's budget: nothing if it does not fit).

        With `wait` (the runner is idle), block until a job waits; None once closed (the
        runner should return). Without it, return at once unless a job arrived less than
        `admit_window_s` ago and there is room for more."""
        with self._cond:
            if wait:
                self._taken.clear()
                while not self._queues and not self._closed:
                    self._cond.wait()
            if self._closed:
                return None if wait else []
            if room <= 0:
                return []
            self._cull()
            ready = self.admission_order(skip, quota, held)
            if ready:
                deadline = min(job.queued_at for job in ready) + self.admit_window_s
                while len(ready) < room and not self._closed:
                    remaining = deadline - self._clock()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                    ready = self.admission_order(skip, quota, held)
                if self._closed:  # `close` has failed what waited
                    return None if wait else []
            jobs = _within_budget(ready[:room], tokens, fit_first)
            chosen = {id(job) for job in jobs}
            for key in {job.request.adapter_id for job in jobs}:
                self._queues[key] = deque(j for j in self._queues[key] if id(j) not in chosen)
            self._queues = {key: q for key, q in self._queues.items() if q}
            self._taken.extend(jobs)
            return jobs

    def admission_order(
        self,
        skip: Callable[[Job], bool] | None = None,
        quota: Callable[[str | None], int | None] | None = None,
        held: Callable[[str | None], int] | None = None,
    ) -> list[Job]:
        """Every job that may start now, in the order `take` admits them: the k-th ready job
        of adapter `a` is in round `held(a) + k` (its running rows count as rounds served),
        rounds in order, each round oldest first."""
        ranked: list[tuple[int, float, int, Job]] = []
        for key, waiting in self._queues.items():
            ready = [job for job in waiting if skip is None or not skip(job)]
            limit = quota(key) if quota is not None else None
            if limit is not None:
                ready = ready[: max(0, limit)]
            served = held(key) if held is not None else 0
            ranked += [(served + k, job.queued_at, job.seq, job) for k, job in enumerate(ready)]
        ranked.sort(key=lambda item: item[:3])
        return [job for *_, job in ranked]

    def put_back(self, jobs: list[Job]) -> None:
        """Return jobs the runner could not start to the front of their queues, in order."""
        with self._cond:
            for job in reversed(jobs):
                self._queues.setdefault(job.request.adapter_id, deque()).appendleft(job)
            back = {id(job) for job in jobs}
            self._taken = [job for job in self._taken if id(job) not in back]
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            try:
                self._runner(self)
                return
            except BaseException as e:  # a bug in the runner must not kill the worker
                log.exception("engine runner failed")
                with self._cond:
                    taken, self._taken = self._taken, []
                    closed = self._closed
                for job in taken:  # finished jobs have stopped reading: harmless for them
                    job.events.put(("error", e))
                if closed:
                    return


def prefill_positions(jobs: list[Job]) -> int:
    """Positions one prefill of `jobs` computes: rows x the longest prompt (left-padded)."""
    return len(jobs) * max((len(job.prompt_ids) for job in jobs), default=0)


def _within_budget(jobs: list[Job], tokens: int | None, fit_first: bool = False) -> list[Job]:
    """The longest prefix of `jobs` whose prefill fits `tokens` (at least the first job), plus
    the jobs of the same `submit` calls as those taken. Rows prefilled together are
    left-padded to the longest, so a prefill costs rows x longest prompt, not the sum: a
    6-token prompt admitted with a 21-token one is a 42-position forward (on a 2-core CPU
    129 ms instead of 65 ms alone, all of it in the shorter request's time to first token)."""
    if tokens is None or tokens <= 0:
        return jobs
    taken = 0
    while taken < len(jobs) and (
        (not taken and not fit_first) or prefill_positions(jobs[: taken + 1]) <= tokens
    ):
        taken += 1
    groups = {job.group for job in jobs[:taken]}
    return jobs[:taken] + [job for job in jobs[taken:] if job.group in groups]
