"""The scheduler: one thread owns the model; callers queue jobs; waiting jobs run as a batch.

A bounded queue (`max_queue` jobs; `QueueFullError` beyond) feeds a single worker thread
that takes up to `max_batch` waiting jobs at a time (any mix of adapters) and hands them to
the engine's batch runner. Jobs the runner cannot start yet (their adapter does not fit the
device tier while other adapters are held) are put back at the front of the queue.
Every event for a job (text deltas, the final result, an error) goes through its own
`events` queue, which is what `generate` and `stream` read.

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


Runner = Callable[[list[Job]], list[Job]]  # runs a batch; returns jobs to retry later


class Scheduler:
    def __init__(self, runner: Runner, max_queue: int, max_batch: int) -> None:
        self._runner = runner
        self.max_queue = max_queue
        self.max_batch = max(1, max_batch)
        self._queue: deque[Job] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="lora-land-engine", daemon=True)
        self._thread.start()

    def depth(self) -> int:
        with self._cond:
            return len(self._queue)

    def submit(self, jobs: list[Job]) -> None:
        """Queue `jobs` together (they will share a batch when they fit), or refuse them all."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the engine is closed")
            if len(self._queue) + len(jobs) > self.max_queue:
                raise QueueFullError(
                    f"the engine queue is full ({len(self._queue)} waiting, limit "
                    f"{self.max_queue}); try again shortly"
                )
            self._queue.extend(jobs)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=10)

    def _take(self) -> list[Job] | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            return [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]

    def _loop(self) -> None:
        while (batch := self._take()) is not None:
            try:
                retry = self._runner(batch)
            except BaseException as e:  # a bug in the runner must not kill the worker
                log.exception("engine batch failed")
                for job in batch:
                    job.events.put(("error", e))
                continue
            if retry:
                with self._cond:
                    self._queue.extendleft(reversed(retry))
                if len(retry) == len(batch):
                    time.sleep(0.01)  # nothing could start: let held adapters drain
