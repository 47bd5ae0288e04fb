"""ZeroGPU mode: no resident worker thread; every generation runs inside a `spaces.GPU` call
whose arguments and yielded events cross a pickle boundary (as ZeroGPU's forked worker does),
streams its events while the call runs, and gives the same text as the threaded engine."""

from __future__ import annotations

import inspect
import pickle
import sys
import threading
import types

import pytest
import spaces
import spaces.config
import spaces.zero.decorator

from lora_land.engine import zerogpu
from lora_land.engine.engine import Engine
from lora_land.engine.types import GenerationRequest
from lora_land.engine.zerogpu import InlineScheduler, use_inline_scheduler
from lora_land.errors import ConfigError
from tests.engine.engine_helpers import deployment_for, engine_settings

REQUESTS = [
    GenerationRequest("Classify the sentiment: a delight.", "tiny/a", max_new_tokens=8),
    GenerationRequest("Translate to French: good morning", "tiny/b", max_new_tokens=6),
    GenerationRequest("Q: What is 12 plus 30?\nA:", None, max_new_tokens=5),
]
HOLD_S = 30  # how long the fake holds a call (only reached when a test fails)


def _through_pickle(value):
    return pickle.loads(pickle.dumps(value))


class FakeZeroGpu:
    """Stands in for `spaces.GPU` on a ZeroGPU Space: like `spaces`, it streams a generator
    function (and returns a regular one's result), pickling what goes in and out as the
    forked GPU worker would, and closes the generator when the caller stops reading.

    With `hold` set to an unset Event, the call pauses after each step it yielded (before
    asking the generator for more) until `hold` is set."""

    def __init__(self) -> None:
        self.durations: list[int] = []
        self.generator_functions: list[bool] = []
        self.calls = 0
        self.running = False  # a call has started and not ended
        self.steps: list[object] = []  # every non-empty item yielded, after its pickle trip
        self.hold: threading.Event | None = None

    def GPU(self, duration: int):  # the name `spaces` uses
        self.durations.append(duration)

        def decorate(fn):
            self.generator_functions.append(inspect.isgeneratorfunction(fn))
            if not inspect.isgeneratorfunction(fn):

                def in_gpu_process(*args):
                    self.calls += 1
                    return _through_pickle(fn(*_through_pickle(args)))

                return in_gpu_process

            def streamed_from_gpu_process(*args):
                self.calls += 1
                self.running = True
                items = fn(*_through_pickle(args))
                try:
                    for item in items:
                        item = _through_pickle(item)
                        if item:
                            self.steps.append(item)
                        yield item
                        if item and self.hold is not None:
                            self.hold.wait(HOLD_S)
                finally:
                    items.close()  # what the worker does once `spaces` sets its stop event
                    self.running = False

            return streamed_from_gpu_process

        return decorate


@pytest.fixture
def threaded(tmp_path_factory, tiny_base_dir, tiny_adapters):
    settings = engine_settings(tmp_path_factory.mktemp("zg_threaded"), zerogpu="off")
    engine = Engine.from_settings(settings, deployment_for(tiny_base_dir, tiny_adapters))
    yield engine
    engine.close()


@pytest.fixture
def fake_gpu(monkeypatch):
    fake = FakeZeroGpu()
    monkeypatch.setattr(spaces, "GPU", fake.GPU)
    monkeypatch.setattr(zerogpu, "_run_on_gpu_wrapped", None)  # wrap again with the fake
    return fake


def _inline_engine(tmp_path, tiny_base_dir, tiny_adapters, **options: float) -> Engine:
    settings = engine_settings(tmp_path, zerogpu="on")
    return Engine.from_settings(settings, deployment_for(tiny_base_dir, tiny_adapters), **options)


def test_zerogpu_mode_starts_no_worker_thread(tmp_path, tiny_base_dir, tiny_adapters):
    before = {t.ident for t in threading.enumerate()}
    engine = _inline_engine(tmp_path, tiny_base_dir, tiny_adapters)
    try:
        assert isinstance(engine.scheduler, InlineScheduler)
        assert {t.ident for t in threading.enumerate()} <= before
    finally:
        engine.close()


def test_generation_runs_inside_gpu_calls_across_a_pickle_boundary(
    tmp_path, tiny_base_dir, tiny_adapters, threaded, fake_gpu
):
    engine = _inline_engine(tmp_path, tiny_base_dir, tiny_adapters)
    try:
        got = engine.generate(REQUESTS)
        assert fake_gpu.calls == 1  # one call for the three rows (they share a batch)
        assert fake_gpu.durations == [zerogpu.GPU_DURATION_S]
        assert fake_gpu.generator_functions == [True]  # streamed, not returned at the end
        want = threaded.generate(REQUESTS)
        assert [r.text for r in got] == [r.text for r in want]
        assert [r.completion_tokens for r in got] == [r.completion_tokens for r in want]
        chunks = list(engine.stream(REQUESTS[0]))
        assert fake_gpu.calls == 2
        assert chunks[-1].result.text == want[0].text
        assert "".join(c.delta for c in chunks) == want[0].text
    finally:
        engine.close()


def test_a_failing_gpu_call_fails_its_requests_with_the_error(
    tmp_path, tiny_base_dir, tiny_adapters, monkeypatch
):
    def broken(duration):
        def decorate(fn):
            def in_gpu_process(*args):  # `spaces` raises from the generator it streams
                raise RuntimeError("GPU task aborted")
                yield

            return in_gpu_process

        return decorate

    monkeypatch.setattr(spaces, "GPU", broken)
    monkeypatch.setattr(zerogpu, "_run_on_gpu_wrapped", None)
    engine = _inline_engine(tmp_path, tiny_base_dir, tiny_adapters)
    try:
        with pytest.raises(RuntimeError, match="GPU task aborted"):
            engine.generate(REQUESTS[:1])
    finally:
        engine.close()


def test_auto_turns_on_exactly_on_a_zerogpu_space(monkeypatch):
    monkeypatch.setattr(spaces.config.Config, "zero_gpu", True)
    assert use_inline_scheduler("auto") and use_inline_scheduler("on")
    assert not use_inline_scheduler("off")
    monkeypatch.setattr(spaces.config.Config, "zero_gpu", False)
    assert not use_inline_scheduler("auto")
    with pytest.raises(ConfigError, match="'sometimes'"):
        use_inline_scheduler("sometimes")


def test_a_gpu_calls_job_source_honours_skip_and_the_per_adapter_quota():
    from lora_land.engine.scheduler import Job
    from lora_land.engine.zerogpu import _OneCall

    jobs = [Job(GenerationRequest(f"p{i}", a), [1], 1, "hot", None) for i, a in enumerate("aabbc")]
    source = _OneCall(jobs, max_batch=4)
    first = source.take(
        4, wait=False, skip=lambda j: j.request.adapter_id == "c", quota=lambda a: 1
    )
    assert [j.request.prompt for j in first] == ["p0", "p2"]
    boundaries = []
    source._boundary = lambda: boundaries.append(1)
    # a top-up within a step is no step boundary and hands out nothing
    assert source.take(4, wait=False, tokens=8, fit_first=True) == [] and boundaries == []
    assert [j.request.prompt for j in source.take(4, wait=False)] == ["p1", "p3", "p4"]
    assert boundaries == [1]
    assert source.take(4, wait=True) is None  # nothing left: the runner returns


def test_a_stream_gets_its_first_chunk_while_the_gpu_call_still_runs(
    tmp_path, tiny_base_dir, tiny_adapters, threaded, fake_gpu
):
    request = GenerationRequest("Classify the sentiment: a delight.", "tiny/a", max_new_tokens=10)
    want = threaded.generate([request])[0]
    engine = _inline_engine(tmp_path, tiny_base_dir, tiny_adapters)
    fake_gpu.hold = threading.Event()
    try:
        chunks = engine.stream(request)
        first = next(chunks)
        assert fake_gpu.running  # held after its first step: the call has not ended
        assert not first.done and first.completion_tokens < request.max_new_tokens
        fake_gpu.hold.set()
        rest = list(chunks)
        assert len(rest) >= 2 and len(fake_gpu.steps) >= 2  # events came step by step
        assert rest[-1].result.text == want.text
        assert rest[-1].result.token_ids == want.token_ids
        assert first.text + "".join(c.delta for c in rest) == want.text
    finally:
        fake_gpu.hold.set()
        engine.close()


def test_cancelling_a_stream_ends_it_and_spares_the_other_job_of_its_call(
    tmp_path, tiny_base_dir, tiny_adapters, threaded, fake_gpu
):
    cancelled = GenerationRequest("Classify the sentiment: a delight.", "tiny/a", 12)
    other = GenerationRequest("Translate to French: good morning", "tiny/b", max_new_tokens=6)
    want = threaded.generate([cancelled, other])[1]  # the same pair in one batch
    # a wide admission window so both streams go in the same GPU call
    engine = _inline_engine(tmp_path, tiny_base_dir, tiny_adapters, admit_window_s=0.5)
    fake_gpu.hold = threading.Event()
    stop = threading.Event()
    try:
        stopped = engine.stream(cancelled, stop)
        kept = engine.stream(other)
        first = next(stopped)
        assert fake_gpu.running and not first.done
        stop.set()
        fake_gpu.hold.set()
        rest = list(stopped)
        result = rest[-1].result
        assert result.finish_reason == "cancelled"
        assert result.completion_tokens < cancelled.max_new_tokens
        assert result.text == ([first, *rest][-2].text)  # the text it had streamed
        got = list(kept)[-1].result
        assert fake_gpu.calls == 1
        assert (got.text, got.token_ids, got.finish_reason) == (
            want.text,
            want.token_ids,
            want.finish_reason,
        )
    finally:
        fake_gpu.hold.set()
        engine.close()


def test_jobs_submitted_during_a_gpu_call_go_in_the_next_call(
    tmp_path, tiny_base_dir, tiny_adapters, threaded, fake_gpu
):
    engine = _inline_engine(tmp_path, tiny_base_dir, tiny_adapters)
    fake_gpu.hold = threading.Event()
    try:
        running = engine.stream(REQUESTS[0])
        next(running)  # the first call is under way (held)
        later = engine.stream(REQUESTS[2])
        assert engine.scheduler.depth() == 1
        fake_gpu.hold.set()
        assert list(running)[-1].result.text == threaded.generate(REQUESTS[:1])[0].text
        assert list(later)[-1].result.text == threaded.generate(REQUESTS[2:])[0].text
        assert fake_gpu.calls == 2
    finally:
        fake_gpu.hold.set()
        engine.close()


def test_without_zerogpu_the_generator_runs_in_process_and_streams_the_same_text(
    tmp_path, tiny_base_dir, tiny_adapters, threaded, monkeypatch
):
    monkeypatch.setattr(spaces.config.Config, "zero_gpu", False)
    monkeypatch.setattr(zerogpu, "_run_on_gpu_wrapped", None)
    engine = _inline_engine(tmp_path, tiny_base_dir, tiny_adapters)
    try:
        assert zerogpu._run_on_gpu_wrapped is zerogpu._run_on_gpu  # `spaces.GPU`: a no-op
        chunks = list(engine.stream(REQUESTS[1]))  # read by the thread that submitted it
        assert "".join(c.delta for c in chunks) == threaded.generate(REQUESTS[1:2])[0].text
    finally:
        engine.close()


def test_spaces_streams_the_gpu_function_as_a_generator(monkeypatch):
    """`spaces.GPU` (its decorator, as installed) picks its generator wrapper for our
    function; the wrappers themselves are faked (they need a CUDA build of torch)."""
    chosen: list[str] = []

    def wrapper(kind):
        def wrap(task, duration, size):
            chosen.append(kind)
            return lambda *args: task(*args)

        return wrap

    fake_wrappers = types.ModuleType("spaces.zero.wrappers")
    fake_wrappers.generator_function_wrapper = wrapper("generator")
    fake_wrappers.regular_function_wrapper = wrapper("regular")
    monkeypatch.setitem(sys.modules, "spaces.zero.wrappers", fake_wrappers)
    monkeypatch.setattr(spaces.zero.decorator, "decorated_cache", {})
    monkeypatch.setattr(spaces.config.Config, "zero_gpu", True)
    zerogpu.gpu(zerogpu._run_on_gpu)
    assert chosen == ["generator"]
    assert inspect.isgeneratorfunction(zerogpu._run_on_gpu)


def test_an_error_that_would_not_unpickle_crosses_as_a_runtime_error():
    class TwoArgs(Exception):
        def __init__(self, adapter, limit):
            super().__init__(f"{adapter} over {limit}")

    crossed = zerogpu._picklable(TwoArgs("tiny/a", 3))
    assert isinstance(crossed, RuntimeError) and "TwoArgs: tiny/a over 3" in str(crossed)
    assert isinstance(_through_pickle(crossed), RuntimeError)
    fine = ValueError("bad")
    assert zerogpu._picklable(fine) is fine
