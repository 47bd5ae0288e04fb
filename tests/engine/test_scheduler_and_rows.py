"""The scheduler's queue bound and batching, and a row's text handling, with fakes."""

from __future__ import annotations

import threading

import pytest

from lora_land.engine.batch import Row
from lora_land.engine.scheduler import Job, Scheduler
from lora_land.engine.types import GenerationRequest
from lora_land.errors import QueueFullError


def _job(i: int) -> Job:
    return Job(GenerationRequest(f"p{i}"), [1], 1, "base", None)


def _batch_runner(batches: list[list[str]], release: threading.Event):
    """A fake runner with the old run-to-the-end behaviour: takes what waits when idle."""

    def runner(source: Scheduler) -> None:
        while (jobs := source.take(source.max_batch, wait=True)) is not None:
            batches.append([j.request.prompt for j in jobs])
            release.wait(5)
            for job in jobs:
                job.events.put(("done", None))

    return runner


def test_queue_full_beyond_max_queue_and_batches_take_what_waits():
    release = threading.Event()
    batches: list[list[str]] = []
    scheduler = Scheduler(_batch_runner(batches, release), max_queue=3, max_batch=2)
    try:
        first = _job(0)
        scheduler.submit([first])
        while not batches:  # the worker took job 0 and is blocked in the runner
            threading.Event().wait(0.01)
        later = [_job(1), _job(2), _job(3)]
        scheduler.submit(later)
        with pytest.raises(QueueFullError, match=r"queue is full \(3 waiting, limit 3\)"):
            scheduler.submit([_job(4)])
        assert scheduler.depth() == 3
        release.set()
        for job in [first, *later]:
            assert job.events.get(timeout=5) == ("done", None)
    finally:
        release.set()
        scheduler.close()
    assert batches[:3] == [["p0"], ["p1", "p2"], ["p3"]]


def _byte_row(stop=(), max_new=10) -> tuple[Row, list[str]]:
    deltas: list[str] = []

    def decode(ids):  # each id is one byte: multi-byte characters span tokens
        return bytes(ids).decode("utf-8", errors="replace")

    row = Row([1], None, max_new, 0.0, 1.0, stop, frozenset({0}), decode)
    row.on_delta = lambda r, d: deltas.append(d)
    return row, deltas


def test_multibyte_characters_are_streamed_whole():
    row, deltas = _byte_row()
    for byte in "añ€".encode():
        row.push(byte)
    row.push(0)  # EOS
    assert deltas == ["a", "ñ", "€"] and row.text == "añ€" and row.finish_reason == "eos"


def test_a_possible_stop_prefix_is_held_back_then_released():
    row, deltas = _byte_row(stop=("END",))
    for byte in b"abEN":
        row.push(byte)
    assert "".join(deltas) == "ab"
    row.push(ord("x"))
    assert "".join(deltas) == "abENx"
    for byte in b"END":
        row.push(byte)
    assert row.finish_reason == "stop" and row.text == "abENx" and "".join(deltas) == "abENx"


def test_length_finish_counts_tokens():
    row, _ = _byte_row(max_new=3)
    for byte in b"abc":
        row.push(byte)
    assert row.finish_reason == "length" and row.ids == list(b"abc")


def test_in_passing_thread_returns_or_raises_from_a_thread_that_has_ended():
    import threading

    from lora_land.engine.engine import in_passing_thread

    seen: list[threading.Thread] = []

    def work() -> int:
        seen.append(threading.current_thread())
        return 42

    assert in_passing_thread(work) == 42
    assert seen[0] is not threading.current_thread() and not seen[0].is_alive()
    error = ValueError("bad base")

    def fail() -> None:
        raise error

    with pytest.raises(ValueError) as caught:
        in_passing_thread(fail)
    assert caught.value is error
