"""ZeroGPU mode: no resident worker thread; every generation runs inside one `spaces.GPU`
call whose arguments and results cross a pickle boundary (as ZeroGPU's forked worker does),
and gives the same text as the threaded engine."""

from __future__ import annotations

import pickle
import threading

import pytest
import spaces
import spaces.config

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


class FakeZeroGpu:
    """Stands in for `spaces.GPU` on a ZeroGPU Space: records calls and pickles what goes in
    and out, as the forked GPU worker would."""

    def __init__(self) -> None:
        self.durations: list[int] = []
        self.calls = 0

    def GPU(self, duration: int):  # the name `spaces` uses
        self.durations.append(duration)

        def decorate(fn):
            def in_gpu_process(*args):
                self.calls += 1
                result = fn(*pickle.loads(pickle.dumps(args)))
                return pickle.loads(pickle.dumps(result))

            return in_gpu_process

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


def _inline_engine(tmp_path, tiny_base_dir, tiny_adapters) -> Engine:
    settings = engine_settings(tmp_path, zerogpu="on")
    return Engine.from_settings(settings, deployment_for(tiny_base_dir, tiny_adapters))


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
            def in_gpu_process(*args):
                raise RuntimeError("GPU task aborted")

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
    assert [j.request.prompt for j in source.take(4, wait=False)] == ["p1", "p3", "p4"]
    assert source.take(4, wait=True) is None  # nothing left: the runner returns
