"""The scheduler's runner: continuous (iteration-level) batching over one model and its adapters.

At every decode-step boundary the runner takes waiting jobs from the scheduler (up to
`max_batch` rows in all, any mix of adapters), acquires their adapters on the device tier,
prefills them and merges them into the running batch, then runs one decode step for every
row. A row's adapter is released as soon as the row finishes, so its device budget is free
for the next boundary. A job whose adapter does not fit the device tier while this batch
holds other adapters stays in the queue, in order, until a row finishes; with nothing held
(only pinned adapters fill the tier) it fails with `AdapterValidationError`.

`continuous=False` keeps the old behaviour for comparison: jobs are only admitted when the
batch is empty, so a request arriving mid-batch waits for the whole batch.

The runner does not validate requests (the engine does, in the caller's thread), does not
pick tokens (`sampling`) and does not run the model itself (`batch.RunningBatch`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch

from lora_land.engine.batch import Row, RunningBatch
from lora_land.engine.cache import CacheFullError
from lora_land.engine.lora import DeviceAdapter, LoraContext
from lora_land.engine.scheduler import Job, Scheduler, prefill_positions
from lora_land.engine.store import AdapterStore
from lora_land.engine.types import GenerationResult, StreamChunk
from lora_land.errors import AdapterValidationError

log = logging.getLogger(__name__)

MakeRow = Callable[[Job, DeviceAdapter | None], Row]


class BatchRunner:
    """Called by the scheduler's worker thread; returns when the scheduler closes."""

    def __init__(
        self,
        *,
        model: torch.nn.Module,
        context: LoraContext,
        store: AdapterStore,
        make_row: MakeRow,
        pad_id: int,
        device: torch.device,
        max_batch: int,
        lock: AbstractContextManager,
        continuous: bool = True,
        prefill_chunk_tokens: int | None = None,
        max_rows_per_adapter: int = 0,
    ) -> None:
        self.model = model
        self.context = context
        self.store = store
        self.make_row = make_row
        self.pad_id = pad_id
        self.device = device
        self.max_batch = max(1, max_batch)
        self.lock = lock
        self.continuous = continuous
        self.prefill_chunk_tokens = prefill_chunk_tokens  # see RunningBatch
        self.max_rows_per_adapter = max_rows_per_adapter  # 0: no cap (see Scheduler.take)
        self._jobs: dict[int, Job] = {}  # id(row) -> its job, while the row runs
        self._blocked: set[str] = set()  # adapters that did not fit since a row last finished
        self.prefills = 0  # groups of rows admitted together (one prefill each)
        self.joins = 0  # rows admitted while other rows were decoding

    def __call__(self, source: Scheduler) -> None:
        batch = RunningBatch(
            self.model,
            self.context,
            self.pad_id,
            self.device,
            self.lock,
            prefill_chunk_tokens=self.prefill_chunk_tokens,
        )
        while True:
            if not batch.rows:
                self._blocked.clear()
            room = self.max_batch - len(batch) if self.continuous or not batch.rows else 0
            jobs = source.take(
                room,
                wait=not batch.rows,
                skip=self._is_blocked,
                quota=self._quota(batch),
                tokens=self.prefill_chunk_tokens,  # prompt tokens admitted per step
                held=self._held(batch).__getitem__,  # fewest running rows first
            )
            if jobs is None:
                return
            if jobs:
                self._admit(batch, jobs, source)
                self._top_up(batch, jobs, source)
            if batch.rows:
                self._stop_abandoned(batch)
            if batch.rows:
                self._advance(batch, batch.step)

    def _stop_abandoned(self, batch: RunningBatch) -> None:
        """Rows whose caller left (or whose deadline passed) end here, before the next
        forward: no decode step is spent on them, their adapters are released now."""
        gone = []
        for row in batch.rows:
            job = self._jobs.get(id(row))
            if job is not None and not row.finished and job.abandoned():
                job.cancel.set()
                row.finish_cancelled()
                gone.append(row)
        if gone:
            self._advance(batch, batch._drop_finished)

    def _held(self, batch: RunningBatch) -> Counter:
        """Rows per adapter id in the batch (running or prefilling)."""
        return Counter(self._jobs[id(row)].request.adapter_id for row in batch.rows)

    def _quota(self, batch: RunningBatch) -> Callable[[str | None], int] | None:
        """How many more rows each adapter may take (the per-adapter cap), or None."""
        cap = self.max_rows_per_adapter
        if cap <= 0:
            return None
        held = self._held(batch)
        return lambda adapter_id: cap - held[adapter_id]

    def _is_blocked(self, job: Job) -> bool:
        return job.request.adapter_id in self._blocked

    # -- admission -----------------------------------------------------------------------
    def _admit(self, batch: RunningBatch, jobs: list[Job], source: Scheduler) -> None:
        """Acquire adapters, add the jobs that can start, put the others back in the queue."""
        held = any(row.adapter is not None for row in batch.rows)
        rows: list[Row] = []
        back: list[Job] = []
        for job in jobs:
            adapter_id = job.request.adapter_id
            if job.abandoned():  # nobody waits for it: never start it
                job.events.put(("dropped", None))
                continue
            if adapter_id in self._blocked:
                back.append(job)
                continue
            try:
                adapter = self.store.acquire(adapter_id, job.host) if adapter_id else None
            except CacheFullError as e:
                if held:  # room is held by running rows' adapters: after one finishes
                    self._blocked.add(adapter_id)
                    back.append(job)
                else:  # held by pinned adapters only: it can never fit
                    job.events.put(("error", _does_not_fit(adapter_id, e)))
                continue
            except Exception as e:
                job.events.put(("error", e))
                continue
            try:  # a row that cannot be built (e.g. its generator) fails alone
                rows.append(self._start(job, adapter))
            except Exception as e:
                log.error("could not start a row (adapter %s): %r", adapter_id, e)
                if adapter_id:
                    self.store.release(adapter_id)
                job.events.put(("error", e))
                continue
            held = held or adapter is not None
        if back:
            source.put_back(back)
        if rows:
            self.prefills += 1
            self.joins += len(rows) if batch.rows else 0
            self._advance(batch, lambda: batch.add(rows), newcomers=rows)

    def _top_up(self, batch: RunningBatch, admitted: list[Job], source: Scheduler) -> None:
        """Jobs that arrived while `admitted` were prefilled join before the decode step when
        they fit what is left of the step's prefill budget (padded positions, see
        `Scheduler.take`). A quiet adapter's request arriving during a flood row's prefill
        then waits for that prefill and its own, not also for a decode step of the flood:
        on a 2-core CPU in float32 a 21-token prefill takes ~100 ms and a 16-row step ~80."""
        budget = self.prefill_chunk_tokens
        if not budget or not self.continuous or not batch.rows:
            return
        left = budget - prefill_positions(admitted)
        room = self.max_batch - len(batch)
        if left <= 0 or room <= 0:
            return
        jobs = source.take(
            room,
            wait=False,
            skip=self._is_blocked,
            quota=self._quota(batch),
            tokens=left,
            held=self._held(batch).__getitem__,
            fit_first=True,
        )
        if jobs:
            self._admit(batch, jobs, source)

    def _start(self, job: Job, adapter: DeviceAdapter | None) -> Row:
        job.started_at = time.perf_counter()
        row = self.make_row(job, adapter)
        row.on_delta = _delta_sink(job)
        row.on_finish = _finish_sink(job)
        self._jobs[id(row)] = job
        return row

    # -- running ---------------------------------------------------------------------------
    def _advance(
        self, batch: RunningBatch, action: Callable[[], list[Row]], newcomers: list[Row] = ()
    ) -> None:
        """Run `add` or `step`; release the adapters of rows that finished. A failed prefill
        fails only its newcomers; a failed decode step fails every running row."""
        try:
            finished = action()
        except Exception as e:
            running = {id(row) for row in batch.rows}
            merged = any(id(row) in running for row in newcomers)
            failed = newcomers if newcomers and not merged else batch.abandon()
            if merged:  # the newcomers are among the abandoned rows
                failed = [*failed, *(r for r in newcomers if id(r) not in running)]
            log.exception("a batch of %d rows failed", len(failed))
            for row in failed:
                if not row.finished:
                    self._jobs[id(row)].events.put(("error", e))
            finished = failed
        for row in finished:
            job = self._jobs.pop(id(row))
            if job.request.adapter_id:
                self.store.release(job.request.adapter_id)
                self._blocked.clear()


def _does_not_fit(adapter_id: str, error: Exception) -> AdapterValidationError:
    return AdapterValidationError(
        f"adapter {adapter_id!r} does not fit the device adapter cache: {error}"
    )


def _delta_sink(job: Job) -> Callable[[Row, str], None]:
    def on_delta(row: Row, delta: str) -> None:
        job.events.put(
            (
                "delta",
                StreamChunk(
                    delta=delta,
                    text=row.text[: row.emitted],
                    completion_tokens=len(row.ids),
                    token_id=row.ids[-1] if row.ids else None,
                    logprob=row.logprobs[-1] if row.logprobs else None,
                ),
            )
        )

    return on_delta


def _finish_sink(job: Job) -> Callable[[Row], None]:
    def on_finish(row: Row) -> None:
        if row.error is not None:
            log.error("row failed (adapter %s): %r", job.request.adapter_id, row.error)
            job.events.put(("error", row.error))
            return
        job.events.put(("done", job_result(job, row)))

    return on_finish


def job_result(job: Job, row: Row | None) -> GenerationResult:
    """The result of `job` from its finished `row` (None: it never started)."""
    if row is None:
        now = time.perf_counter()
        return GenerationResult(
            text="",
            adapter_id=job.request.adapter_id,
            prompt_tokens=len(job.prompt_ids),
            completion_tokens=0,
            finish_reason="deadline" if job.timed_out else "cancelled",
            ttft_s=now - job.submitted_at,
            total_s=now - job.submitted_at,
            tokens_per_s=0.0,
            adapter_state=job.adapter_state,
            seed=job.seed,
        )
    end = row.finished_at or time.perf_counter()
    first = row.first_token_at or end
    # decode rate: tokens sampled after the first (EOS included) over the time since it
    sampled = len(row.ids) + (row.finish_reason == "eos")
    decode_s = end - first
    reason = row.finish_reason or "length"
    if reason == "cancelled" and job.timed_out:
        reason = "deadline"
    return GenerationResult(
        text=row.text,
        adapter_id=job.request.adapter_id,
        prompt_tokens=len(job.prompt_ids),
        completion_tokens=len(row.ids),
        finish_reason=reason,
        ttft_s=first - job.submitted_at,
        total_s=end - job.submitted_at,
        tokens_per_s=(sampled - 1) / decode_s if decode_s > 0 and sampled > 1 else 0.0,
        adapter_state=job.adapter_state,
        token_ids=tuple(row.ids),
        token_logprobs=tuple(row.logprobs),
        seed=job.seed,
        queue_s=max(0.0, job.started_at - job.submitted_at),
    )
