"""Continuous batching: requests join a running batch at a step boundary and their text does
not depend on who shares their steps (tiny model, and once on the real embedded model)."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from lora_land.deployment import AdapterSource, BaseSource, Deployment
from lora_land.engine.engine import Engine
from lora_land.engine.scheduler import Job, Scheduler
from lora_land.engine.types import GenerationRequest
from tests.engine.engine_helpers import deployment_for, engine_settings, make_peft_adapter

PROMPT = "Write a short story about a lighthouse keeper:"
ADAPTERS = [None, "tiny/a", "tiny/b", "tiny/c"]


@pytest.fixture(scope="module")
def engine(tmp_path_factory, tiny_base_dir, tiny_adapters):
    settings = engine_settings(
        tmp_path_factory.mktemp("cb"), max_new_tokens_limit=200, max_batch_size=4
    )
    engine = Engine.from_settings(settings, deployment_for(tiny_base_dir, tiny_adapters))
    engine.eos_ids = frozenset()  # a random model may say EOS at any time: run to the length
    yield engine
    engine.close()


class Follower(threading.Thread):
    """Reads one stream in its own thread; sets `first` at its first chunk and, at the end,
    appends its name to `finished` (a list shared by several followers) when given one."""

    def __init__(
        self, engine: Engine, request: GenerationRequest, cancel=None, finished=None, name=""
    ) -> None:
        super().__init__(daemon=True)
        self.finished, self.name = finished, name
        self.chunks = []
        self.first = threading.Event()
        self.done = threading.Event()
        self.stream = engine.stream(request, cancel)  # validated and queued here

    def run(self) -> None:
        for chunk in self.stream:
            self.chunks.append(chunk)
            self.first.set()
        if self.finished is not None:
            self.finished.append(self.name)
        self.done.set()

    @property
    def result(self):
        return self.chunks[-1].result


def _staggered(engine: Engine, requests: list[GenerationRequest]) -> list[Follower]:
    """Submit each request once the previous one has streamed its first chunk."""
    followers: list[Follower] = []
    for request in requests:
        follower = Follower(engine, request)
        follower.start()
        assert follower.first.wait(30)
        followers.append(follower)
    for follower in followers:
        follower.join(60)
    return followers


def test_a_request_submitted_mid_generation_streams_before_the_first_finishes(engine):
    long = GenerationRequest(PROMPT, "tiny/a", max_new_tokens=200)
    short = GenerationRequest("Say hi", "tiny/b", max_new_tokens=6)
    tokens_read_when_short_done: list[int] = []
    short_follower = None
    for chunk in engine.stream(long):
        if short_follower is None:  # the long one is generating: submit the short one now
            short_follower = Follower(engine, short)
            short_follower.start()
        elif short_follower.done.is_set() and not tokens_read_when_short_done:
            tokens_read_when_short_done.append(chunk.completion_tokens)
    assert chunk.result.completion_tokens == 200
    assert tokens_read_when_short_done and tokens_read_when_short_done[0] < 200
    assert short_follower.result.completion_tokens == 6
    assert short_follower.result.finish_reason == "length"


def test_a_freed_slot_goes_to_a_quiet_adapter_before_a_floods_queue(engine):
    """Four flood rows fill the batch (max 4); two more flood requests queue, then one for a
    quiet adapter. When the short flood row ends, its slot goes to the quiet request (no
    running rows: round 0), not to the flood's older queued request (three running: round
    3), which waits for the long rows."""
    flood = [
        Follower(engine, GenerationRequest(f"{PROMPT} {i}", "tiny/a", max_new_tokens=n))
        for i, n in enumerate((40, 150, 150, 150))
    ]
    for follower in flood:
        follower.start()
    for follower in flood:
        assert follower.first.wait(30)  # all four are decoding: the batch is full
    queued = [Follower(engine, GenerationRequest(f"{PROMPT} q{i}", "tiny/a", max_new_tokens=4))
              for i in range(2)]  # fmt: skip
    quiet = Follower(engine, GenerationRequest("Say hi", "tiny/b", max_new_tokens=4))
    for follower in [*queued, quiet]:
        follower.start()
    for follower in [*flood, *queued, quiet]:
        assert follower.done.wait(60)
    assert [f.result.completion_tokens for f in flood] == [40, 150, 150, 150]
    # the quiet request started when the short row ended; the flood's queue when long ones did
    assert quiet.result.queue_s < min(f.result.queue_s for f in queued)
    assert quiet.result.total_s < min(f.result.total_s for f in queued)


def test_staggered_mixed_adapter_greedy_outputs_match_each_run_alone(engine):
    requests = [
        GenerationRequest(f"{PROMPT} #{i}" + " again" * (3 * i), ADAPTERS[i % 4], max_new_tokens=n)
        for i, n in enumerate([40, 12, 30, 8, 25, 16])
    ]
    requests.append(
        GenerationRequest("Seeded row:", "tiny/c", max_new_tokens=20, temperature=0.9, seed=5)
    )
    alone = [engine.generate([r])[0].text for r in requests]
    joins = engine.runner.joins
    followers = _staggered(engine, requests)
    assert [f.result.text for f in followers] == alone
    assert ["".join(c.delta for c in f.chunks) for f in followers] == alone
    assert engine.runner.joins >= joins + 3  # most of them really joined a running batch


def test_cancelling_one_row_does_not_disturb_the_others(engine):
    requests = [
        GenerationRequest(PROMPT, "tiny/a", max_new_tokens=50),
        GenerationRequest("A second prompt, longer than the first one by far", None, 200),
        GenerationRequest("Third", "tiny/b", max_new_tokens=45),
    ]
    alone = [engine.generate([r])[0].text for r in requests]
    cancel = threading.Event()
    first = Follower(engine, requests[0])
    victim = Follower(engine, requests[1], cancel)
    third = Follower(engine, requests[2])
    for follower in (first, victim, third):
        follower.start()
    assert victim.first.wait(30)
    cancel.set()
    for follower in (first, victim, third):
        follower.join(60)
    assert victim.result.finish_reason == "cancelled" and victim.result.completion_tokens < 200
    assert alone[1].startswith(victim.result.text)
    assert [first.result.text, third.result.text] == [alone[0], alone[2]]


def test_an_adapter_that_does_not_fit_waits_for_a_row_while_others_join(
    tmp_path, tiny_base_dir, tiny_adapters
):
    # tiny/a and tiny/b take 14336 bytes each on the device: one fits, not both
    settings = engine_settings(
        tmp_path, max_batch_size=4, max_new_tokens_limit=200, device_cache_bytes=20_000
    )
    engine = Engine.from_settings(settings, deployment_for(tiny_base_dir, tiny_adapters))
    engine.eos_ids = frozenset()
    try:
        blocked = GenerationRequest("Third", "tiny/b", max_new_tokens=8)
        alone = engine.generate([blocked])[0].text
        order: list[str] = []
        request = GenerationRequest(PROMPT, "tiny/a", max_new_tokens=120)
        long = Follower(engine, request, finished=order, name="a")
        long.start()
        assert long.first.wait(30)
        waiting = Follower(engine, blocked, finished=order, name="b")  # tiny/a is held
        base = Follower(engine, GenerationRequest("Hi", None, 8), finished=order, name="base")
        for follower in (waiting, base):
            follower.start()
        for follower in (long, waiting, base):
            follower.join(60)
        assert order == ["base", "a", "b"]
        assert waiting.result.text == alone and long.result.completion_tokens == 120
        assert engine.stats().evictions["device"] >= 1
    finally:
        engine.close()


def test_requests_submitted_together_start_in_the_same_step(tmp_path, tiny_base_dir, tiny_adapters):
    settings = engine_settings(tmp_path, max_batch_size=4)
    deployment = deployment_for(tiny_base_dir, tiny_adapters)
    engine = Engine.from_settings(settings, deployment, admit_window_s=0.5)
    try:
        followers = [
            Follower(engine, GenerationRequest(PROMPT, "tiny/a", max_new_tokens=5)),
            Follower(engine, GenerationRequest(PROMPT, None, max_new_tokens=5)),
        ]
        for follower in followers:
            follower.start()
        for follower in followers:
            follower.join(30)
        assert engine.runner.prefills == 1 and engine.runner.joins == 0
        assert all(f.result.completion_tokens >= 1 for f in followers)
    finally:
        engine.close()


def test_the_old_behaviour_runs_a_batch_to_the_end(tmp_path, tiny_base_dir, tiny_adapters):
    settings = engine_settings(tmp_path, max_batch_size=4, max_new_tokens_limit=100)
    engine = Engine.from_settings(
        settings, deployment_for(tiny_base_dir, tiny_adapters), continuous=False
    )
    engine.eos_ids = frozenset()
    try:
        requests = [GenerationRequest(PROMPT, "tiny/a", 60), GenerationRequest("Hi", None, 5)]
        followers = _staggered(engine, requests)
        assert engine.runner.joins == 0 and engine.runner.prefills == 2
        assert [f.result.completion_tokens for f in followers] == [60, 5]
    finally:
        engine.close()


def _job(i: int) -> Job:
    return Job(GenerationRequest(f"p{i}"), [1], 1, "base", None)


def _recording_runner(takes: list[list[str]]):
    def runner(source: Scheduler) -> None:
        while (jobs := source.take(source.max_batch, wait=True)) is not None:
            takes.append([j.request.prompt for j in jobs])
            for job in jobs:
                job.events.put(("done", None))

    return runner


def test_the_admission_window_gathers_jobs_submitted_moments_apart():
    takes: list[list[str]] = []
    scheduler = Scheduler(_recording_runner(takes), max_queue=8, max_batch=4, admit_window_s=0.5)
    try:
        jobs = [_job(0), _job(1)]
        scheduler.submit(jobs[:1])
        scheduler.submit(jobs[1:])
        for job in jobs:
            job.events.get(timeout=10)
    finally:
        scheduler.close()
    assert takes == [["p0", "p1"]]


def test_a_full_batch_does_not_wait_for_the_window():
    takes: list[list[str]] = []
    scheduler = Scheduler(_recording_runner(takes), max_queue=8, max_batch=2, admit_window_s=60)
    try:
        jobs = [_job(0), _job(1)]
        scheduler.submit(jobs)
        for job in jobs:
            assert job.events.get(timeout=10) == ("done", None)  # well before the 60 s window
    finally:
        scheduler.close()
    assert takes == [["p0", "p1"]]


def test_skipped_jobs_keep_their_place_in_the_queue():
    takes: list[list[str]] = []

    def runner(source: Scheduler) -> None:
        skip_p0 = len(takes) == 0
        while (jobs := source.take(4, wait=True, skip=_skip_p0 if skip_p0 else None)) is not None:
            takes.append([j.request.prompt for j in jobs])
            skip_p0 = False
            for job in jobs:
                job.events.put(("done", None))

    scheduler = Scheduler(runner, max_queue=8, max_batch=4, admit_window_s=0)
    jobs = [_job(0), _job(1), _job(2)]
    try:
        scheduler.submit(jobs)  # one submit: the worker cannot see the jobs before they all wait
        for job in jobs:
            assert job.events.get(timeout=10) == ("done", None)
    finally:
        scheduler.close()
    assert takes[0] == ["p1", "p2"] and takes[1] == ["p0"]


def _skip_p0(job: Job) -> bool:
    return job.request.prompt == "p0"


def test_close_fails_the_jobs_still_waiting():
    gate = threading.Event()

    def runner(source: Scheduler) -> None:
        gate.wait(10)  # busy with something else until the test lets it go
        while source.take(4, wait=True) is not None:
            pass

    scheduler = Scheduler(runner, max_queue=8, max_batch=4, admit_window_s=0)
    job = _job(0)
    scheduler.submit([job])
    closer = threading.Thread(target=scheduler.close)
    closer.start()
    kind, error = job.events.get(timeout=5)
    gate.set()
    closer.join(10)
    assert kind == "error" and "closed before this request ran" in str(error)


@pytest.mark.slow
def test_embedded_model_staggered_rows_match_each_run_alone(
    tmp_path_factory, settings, embedded_model_dir
):
    adapter_dir = make_peft_adapter(
        embedded_model_dir, tmp_path_factory.mktemp("cb_real") / "a", r=8, seed=11, alpha=16
    )
    adapter_id = "smollm2-135m-instruct/a"
    deployment = Deployment(
        name="t",
        base=BaseSource(name="smollm2-135m-instruct", source="embedded"),
        adapters={adapter_id: AdapterSource(id=adapter_id, task="a", path=adapter_dir)},
    )
    engine = Engine.from_settings(replace(settings, device="cpu", dtype="float32"), deployment)
    try:
        requests = [
            GenerationRequest("The capital of France is", None, max_new_tokens=16),
            GenerationRequest(
                "Is this review positive or negative? 'A joyless, plodding film.'\nAnswer:",
                adapter_id,
                max_new_tokens=10,
            ),
            GenerationRequest("List three colours:", adapter_id, max_new_tokens=8),
        ]
        alone = [engine.generate([r])[0].text for r in requests]
        followers = _staggered(engine, requests)
        assert [f.result.text for f in followers] == alone
        assert engine.runner.joins >= 1
    finally:
        engine.close()


def test_rows_sharing_a_prompt_and_adapter_are_prefilled_once_and_decode_as_alone(engine):
    from lora_land.engine import batch

    calls = []
    original = batch.shared_prompts

    def spy(rows):
        unique, index = original(rows)
        calls.append((len(rows), len(unique)))
        return unique, index

    requests = [
        GenerationRequest(PROMPT, adapter, max_new_tokens=6, temperature=1.0, seed=seed)
        for adapter in ("tiny/a", "tiny/b")
        for seed in (1, 2, 3)
    ] + [GenerationRequest(PROMPT, "tiny/a", max_new_tokens=6)]  # greedy, same prompt
    alone = [engine.generate([r])[0].text for r in requests]
    batch.shared_prompts = spy
    try:
        together = engine.generate(requests)
    finally:
        batch.shared_prompts = original
    # 7 rows over two admissions (batch of 4): each prefills one prompt per adapter
    assert sum(n for n, _ in calls) == 7 and sum(u for _, u in calls) <= 4
    assert [r.text for r in together] == alone
    assert len({r.text for r in together[:3]}) > 1  # the seeds still differ after the copy


class _TakeRecorder:
    """A job source that records the runner's takes and hands out nothing."""

    def __init__(self) -> None:
        self.takes: list[dict] = []

    def take(self, room, wait, **kwargs):
        self.takes.append({"room": room, "wait": wait, **kwargs})
        return []


def test_a_step_is_topped_up_with_what_fits_its_prefill_budget(engine):
    from lora_land.engine.batch import Row, RunningBatch

    runner = engine.runner
    batch = RunningBatch(engine.model, engine.lora_context, engine.pad_id, engine.device)
    admitted = [
        Job(GenerationRequest("a"), list(range(5)), 1, "base", None),
        Job(GenerationRequest("b"), list(range(3)), 1, "base", None),
    ]
    source = _TakeRecorder()
    row = None
    saved = runner.prefill_chunk_tokens
    try:
        runner.prefill_chunk_tokens = 32
        runner._top_up(batch, admitted, source)
        assert source.takes == []  # nothing running: the next take is a step boundary anyway
        row = Row([1, 2, 3], None, 50, 0.0, 1.0, (), frozenset(), engine._decode)
        batch.add([row])
        runner._jobs[id(row)] = Job(GenerationRequest("c"), [1, 2, 3], 1, "base", None)
        runner._top_up(batch, admitted, source)
        (take,) = source.takes
        # two rows padded to 5 used 10 of 32 positions: 22 left, for a first job that fits
        assert take["tokens"] == 32 - 2 * 5 and take["fit_first"] is True
        assert take["wait"] is False and take["room"] == runner.max_batch - len(batch)
        runner.prefill_chunk_tokens = 10  # the admitted prefill used the whole budget
        runner._top_up(batch, admitted, source)
        assert len(source.takes) == 1
    finally:
        runner.prefill_chunk_tokens = saved
        runner._jobs.pop(id(row), None)
