"""Chunked prefill: a prompt longer than the step budget joins a chunk per step, running rows
get a token at every step meanwhile, and every row gets the same tokens as unchunked."""

from __future__ import annotations

import threading

import pytest
import torch

from lora_land.engine.batch import Row, RunningBatch, prefill_budget
from lora_land.engine.engine import Engine
from lora_land.engine.types import GenerationRequest
from tests.engine.engine_helpers import deployment_for, engine_settings, make_row

LONG = "Once upon a time, in a village by the sea, there lived an old lighthouse keeper " * 3
SHORT = "Say hi"


@pytest.fixture(scope="module")
def engine(tmp_path_factory, tiny_base_dir, tiny_adapters):
    settings = engine_settings(tmp_path_factory.mktemp("chunk"), prefill_chunk_tokens=0)
    engine = Engine.from_settings(settings, deployment_for(tiny_base_dir, tiny_adapters))
    engine.eos_ids = frozenset()
    yield engine
    engine.close()


def _row(engine: Engine, prompt: str, adapter_id: str | None, n: int) -> Row:
    return make_row(engine, prompt, adapter_id, n)


def _run(engine: Engine, budget: int | None) -> tuple[list[int], list[int], list[int]]:
    """A short row runs; a long one joins; returns both rows' ids and the short row's token
    count after each step while the long one was prefilling."""
    batch = RunningBatch(
        engine.model,
        engine.lora_context,
        engine.pad_id,
        engine.device,
        prefill_chunk_tokens=budget,
    )
    short = _row(engine, SHORT, "tiny/a", 40)
    long = _row(engine, LONG, "tiny/b", 8)
    batch.add([short])
    batch.step()
    batch.add([long])
    progress = []
    while not long.ids:
        batch.step()
        progress.append(len(short.ids))
    while batch.rows:
        batch.step()
    return short.ids, long.ids, progress


def test_chunked_prefill_gives_the_same_tokens_as_unchunked(engine):
    short_plain, long_plain, _ = _run(engine, None)
    short_chunked, long_chunked, progress = _run(engine, 7)
    assert long_chunked == long_plain
    assert short_chunked == short_plain
    prompt = len(engine._encode(LONG))
    assert prompt > 3 * 7
    assert len(progress) == -(-prompt // 7)  # one chunk per step
    assert progress == list(range(progress[0], progress[0] + len(progress)))  # +1 per step


def test_long_prompts_chunk_only_while_rows_run_through_the_engine(
    tmp_path, tiny_base_dir, tiny_adapters, engine, monkeypatch
):
    chunks = []
    real_chunk = RunningBatch._chunk

    def counting_chunk(self, job, take):
        chunks.append(take)
        return real_chunk(self, job, take)

    monkeypatch.setattr(RunningBatch, "_chunk", counting_chunk)
    settings = engine_settings(tmp_path, prefill_chunk_tokens=5)
    chunked = Engine.from_settings(settings, deployment_for(tiny_base_dir, tiny_adapters))
    chunked.eos_ids = frozenset()
    try:
        request = GenerationRequest(LONG, "tiny/c", max_new_tokens=10)
        want = engine.generate([request])[0].text
        alone = chunked.generate([request])[0]
        assert alone.text == want and chunks == []  # nobody running: prefilled at once
        running = chunked.stream(GenerationRequest(SHORT, "tiny/a", max_new_tokens=150))
        next(running)  # a row is decoding now
        joined = chunked.generate([request])[0]
        assert joined.text == want
        assert sum(chunks) == joined.prompt_tokens and max(chunks) == 5
        running.close()
    finally:
        chunked.close()


def test_the_budget_is_auto_by_device_off_at_zero_or_as_set():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert prefill_budget(-1, cpu) == 32 and prefill_budget(-1, cuda) == 512
    assert prefill_budget(0, cpu) is None
    assert prefill_budget(7, cuda) == 7


def test_a_row_cancelled_while_prefilling_in_chunks_ends_once(engine):
    batch = RunningBatch(
        engine.model, engine.lora_context, engine.pad_id, engine.device, prefill_chunk_tokens=5
    )
    short = _row(engine, SHORT, None, 30)
    long = _row(engine, LONG, "tiny/b", 8)
    ends = []
    long.on_finish = ends.append
    long.cancel = threading.Event()
    batch.add([short])
    batch.add([long])
    batch.step()  # one chunk of the long prompt
    assert long in batch.rows and not long.ids
    long.cancel.set()
    long.finish_cancelled()  # what the runner does for an abandoned row
    assert batch._drop_finished() == [long]
    returned = []
    while batch.rows:
        returned += batch.step()
    assert ends == [long] and long not in returned
    assert short.finish_reason == "length" and len(short.ids) == 30
