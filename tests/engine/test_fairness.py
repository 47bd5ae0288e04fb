"""Fairness across adapters: per-adapter queues admitted round-robin by oldest head, checked
step by step on the real `Scheduler` with a fake clock (no model, no waiting)."""

from __future__ import annotations

import pytest

from lora_land.engine.scheduler import Job, Scheduler
from lora_land.engine.types import GenerationRequest


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def scheduler(clock):
    """A scheduler whose worker thread exits at once: the test plays the runner."""
    scheduler = Scheduler(lambda source: None, max_queue=64, max_batch=4, clock=clock)
    scheduler.admit_window_s = 0.0
    yield scheduler
    scheduler.close()


def _submit(scheduler: Scheduler, clock: FakeClock, adapter: str | None, name: str) -> Job:
    job = Job(GenerationRequest(name, adapter), [1], 1, "hot", None)
    scheduler.submit([job])
    clock.now += 1.0
    return job


def _names(jobs: list[Job] | None) -> list[str]:
    return [job.request.prompt for job in jobs or []]


def test_a_flood_for_one_adapter_does_not_starve_the_others(scheduler, clock):
    for i in range(6):
        _submit(scheduler, clock, "flood", f"f{i}")
    _submit(scheduler, clock, "quiet", "q0")
    _submit(scheduler, clock, None, "base0")
    # step 1: one per adapter, oldest head first, though six flood jobs are older
    assert _names(scheduler.take(3, wait=False)) == ["f0", "q0", "base0"]
    # step 2: only the flood waits: it gets the whole room
    assert _names(scheduler.take(2, wait=False)) == ["f1", "f2"]
    # step 3: a new quiet job is admitted in the next round, not after f3..f5
    _submit(scheduler, clock, "quiet", "q1")
    assert _names(scheduler.take(2, wait=False)) == ["f3", "q1"]
    assert _names(scheduler.take(8, wait=False)) == ["f4", "f5"]
    assert scheduler.depth() == 0


def test_rounds_are_ordered_by_each_adapters_oldest_waiting_job(scheduler, clock):
    _submit(scheduler, clock, "b", "b0")
    _submit(scheduler, clock, "a", "a0")
    _submit(scheduler, clock, "a", "a1")
    _submit(scheduler, clock, "c", "c0")
    _submit(scheduler, clock, "b", "b1")
    assert _names(scheduler.admission_order()) == ["b0", "a0", "c0", "a1", "b1"]


def test_a_quota_caps_the_rows_one_adapter_may_take(scheduler, clock):
    for i in range(4):
        _submit(scheduler, clock, "flood", f"f{i}")
    _submit(scheduler, clock, "quiet", "q0")
    held = {"flood": 2}  # the runner's batch already holds two flood rows; the cap is 3

    def quota(adapter_id):
        return 3 - held.get(adapter_id, 0)

    assert _names(scheduler.take(4, wait=False, quota=quota)) == ["f0", "q0"]
    held["flood"] = 3
    assert _names(scheduler.take(4, wait=False, quota=quota)) == []
    held["flood"] = 1
    assert _names(scheduler.take(4, wait=False, quota=quota)) == ["f1", "f2"]


def test_jobs_put_back_keep_their_turn_in_their_adapters_queue(scheduler, clock):
    for name, adapter in (("a0", "a"), ("a1", "a"), ("b0", "b")):
        _submit(scheduler, clock, adapter, name)
    taken = scheduler.take(3, wait=False)
    scheduler.put_back([j for j in taken if j.request.adapter_id == "a"])
    assert _names(scheduler.admission_order()) == ["a0", "a1"]


def test_the_admission_window_is_measured_on_the_schedulers_clock(scheduler, clock):
    scheduler.admit_window_s = 5.0
    _submit(scheduler, clock, "a", "a0")  # the clock now reads 1 s after it was queued
    clock.now += 10.0  # well past the window: take returns without waiting
    assert _names(scheduler.take(4, wait=False)) == ["a0"]


def _submit_tokens(scheduler: Scheduler, clock: FakeClock, adapter: str, name: str, n: int):
    job = Job(GenerationRequest(name, adapter), list(range(n)), 1, "hot", None)
    scheduler.submit([job])
    clock.now += 1.0
    return job


def test_a_token_budget_spreads_a_burst_over_steps_in_admission_order(scheduler, clock):
    from collections import Counter

    running: Counter = Counter()  # rows per adapter in the batch, as the runner counts them

    def step() -> list[str]:
        jobs = scheduler.take(8, wait=False, tokens=32, held=running.__getitem__)
        running.update(job.request.adapter_id for job in jobs)
        return _names(jobs)

    for i in range(4):
        _submit_tokens(scheduler, clock, "flood", f"f{i}", 20)
    _submit_tokens(scheduler, clock, "quiet", "q0", 10)
    # while rows decode, a step admits a prefill of at most 32 positions: f0 alone (with q0
    # it would be 2 rows x 20, q0's 10 tokens padded), then q0 (its round comes first once
    # the flood runs a row), then f1
    assert step() == ["f0"]
    assert step() == ["q0"]
    assert step() == ["f1"]
    # a prompt longer than the whole budget still goes (alone; it is prefilled in chunks),
    # in its adapter's round: quiet runs 1 row, the flood 2
    _submit_tokens(scheduler, clock, "quiet", "long", 100)
    assert step() == ["long"]
    assert step() == ["f2"]
    assert step() == ["f3"]
    # no budget (nothing decoding): everything that fits the room
    for i in range(3):
        _submit_tokens(scheduler, clock, "flood", f"g{i}", 20)
    assert _names(scheduler.take(8, wait=False)) == ["g0", "g1", "g2"]


def test_short_prompts_share_a_step_while_their_padded_prefill_fits(scheduler, clock):
    for i, n in enumerate((10, 12, 6, 9)):
        _submit_tokens(scheduler, clock, f"a{i}", f"s{i}", n)
    # 2 x 12 = 24 fits 32, 3 x 12 = 36 does not; then 2 x 9 = 18
    assert _names(scheduler.take(8, wait=False, tokens=32)) == ["s0", "s1"]
    assert _names(scheduler.take(8, wait=False, tokens=32)) == ["s2", "s3"]


def test_jobs_submitted_together_start_together_whatever_the_budget(scheduler, clock):
    _submit_tokens(scheduler, clock, "flood", "f0", 20)
    panes = [
        Job(GenerationRequest(f"p{i}", f"a{i}"), list(range(50)), 1, "hot", None) for i in range(3)
    ]
    scheduler.submit(panes)  # one Compare: three contestants
    clock.now += 1.0
    _submit_tokens(scheduler, clock, "flood", "f1", 20)
    assert _names(scheduler.take(8, wait=False, tokens=32)) == ["f0"]
    assert _names(scheduler.take(8, wait=False, tokens=32)) == ["p0", "p1", "p2"]
    assert _names(scheduler.take(8, wait=False, tokens=32)) == ["f1"]


def test_jobs_that_share_a_cancel_event_start_together_though_submitted_apart(scheduler, clock):
    import threading

    stop = threading.Event()  # what GenerationService.stream_many gives every pane
    _submit_tokens(scheduler, clock, "flood", "f0", 20)
    for i in range(2):
        job = Job(GenerationRequest(f"p{i}", f"a{i}"), list(range(50)), 1, "hot", None, stop=stop)
        scheduler.submit([job])
    clock.now += 1.0
    assert _names(scheduler.take(8, wait=False, tokens=32)) == ["f0"]
    assert _names(scheduler.take(8, wait=False, tokens=32)) == ["p0", "p1"]


def test_running_rows_count_as_rounds_served(scheduler, clock):
    for i in range(3):
        _submit_tokens(scheduler, clock, "flood", f"f{i}", 20)
    _submit_tokens(scheduler, clock, "quiet", "q0", 20)
    _submit_tokens(scheduler, clock, "quiet", "q1", 20)
    running = {"flood": 2, "quiet": 0}  # the batch already decodes two flood rows
    # quiet's jobs are in rounds 0 and 1, the flood's oldest in round 2: quiet goes first,
    # though its jobs are younger, and the 32-token budget of the step goes to it
    assert _names(scheduler.admission_order(held=running.__getitem__)) == [
        "q0",
        "q1",
        "f0",
        "f1",
        "f2",
    ]
    assert _names(scheduler.take(8, wait=False, tokens=32, held=running.__getitem__)) == ["q0"]
    running["quiet"] = 1
    # quiet's next job (round 1) still goes ahead of the flood's (round 2)
    assert _names(scheduler.take(8, wait=False, tokens=32, held=running.__getitem__)) == ["q1"]
    running["quiet"] = 2
    # a tie (both in round 2): the oldest head goes first
    assert _names(scheduler.take(8, wait=False, tokens=32, held=running.__getitem__)) == ["f0"]
    # without running rows it is the plain round-robin by age
    assert _names(scheduler.admission_order()) == ["f1", "f2"]


def test_a_top_up_takes_only_what_fits_the_rest_of_the_steps_budget(scheduler, clock):
    _submit_tokens(scheduler, clock, "flood", "f0", 20)
    _submit_tokens(scheduler, clock, "flood", "f1", 20)
    assert _names(scheduler.take(8, wait=False, tokens=32)) == ["f0"]
    # 12 positions left in the step: the flood's next 20-token prompt does not fit ...
    assert _names(scheduler.take(8, wait=False, tokens=12, fit_first=True)) == []
    # ... a quiet adapter's 6-token one does, and goes first (its round comes first)
    _submit_tokens(scheduler, clock, "quiet", "q0", 6)
    running = {"flood": 1, "quiet": 0}
    got = scheduler.take(8, wait=False, tokens=12, held=running.__getitem__, fit_first=True)
    assert _names(got) == ["q0"]
    assert _names(scheduler.take(8, wait=False, tokens=32)) == ["f1"]  # f1 kept its place
