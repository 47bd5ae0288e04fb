"""Generation through the real engine on a tiny model: streaming, stops, seeds, limits,
bad adapters, concurrency."""

from __future__ import annotations

import shutil
import threading

import pytest

from lora_land.engine.engine import Engine
from lora_land.engine.types import GenerationRequest, TextEngine
from lora_land.errors import AdapterValidationError, PromptError, UnknownAdapterError
from tests.engine.engine_helpers import deployment_for, engine_settings

PROMPT = "Write a short story about a lighthouse keeper:"


@pytest.fixture(scope="module")
def engine(tmp_path_factory, tiny_base_dir, tiny_adapters):
    root = tmp_path_factory.mktemp("gen")
    broken = root / "broken"
    shutil.copytree(tiny_adapters["tiny/a"], broken)
    (broken / "adapter_config.json").write_text('{"peft_type": "PROMPT_TUNING"}')
    adapters = {**tiny_adapters, "tiny/broken": broken}
    settings = engine_settings(
        root / "cache", max_new_tokens_limit=40, max_prompt_chars=5000, max_batch_size=4
    )
    engine = Engine.from_settings(
        settings, deployment_for(tiny_base_dir, adapters, pinned=("tiny/c",))
    )
    yield engine
    engine.close()


def _greedy(engine, prompt=PROMPT, adapter=None, n=20, **kw):
    return engine.generate([GenerationRequest(prompt, adapter, max_new_tokens=n, **kw)])[0]


def test_engine_implements_the_text_engine_protocol(engine):
    assert isinstance(engine, TextEngine)
    assert engine.context_length == 256 and engine.base_name == "tiny"
    assert engine.served_adapters() == ["tiny/a", "tiny/b", "tiny/broken", "tiny/c"]


def test_stream_chunks_add_up_to_the_result(engine):
    chunks = list(engine.stream(GenerationRequest(PROMPT, "tiny/a", max_new_tokens=15)))
    result = chunks[-1].result
    assert result is not None and all(c.result is None for c in chunks[:-1])
    assert "".join(c.delta for c in chunks) == result.text == chunks[-1].text
    assert result.text == _greedy(engine, adapter="tiny/a", n=15).text
    assert result.completion_tokens <= 15 and result.prompt_tokens == engine.count_tokens(PROMPT)
    assert result.ttft_s > 0 and result.total_s >= result.ttft_s and result.tokens_per_s > 0
    # the rate is a decode rate: tokens after the first over the time after the first
    sampled = result.completion_tokens + (result.finish_reason == "eos")
    decode_s = result.total_s - result.ttft_s
    assert result.tokens_per_s == pytest.approx((sampled - 1) / decode_s, rel=1e-6)


def test_stop_sequences_end_the_text_and_are_not_included(engine):
    full = _greedy(engine, n=30)
    assert full.finish_reason == "length" and len(full.text) > 10
    stop = full.text[6:9]
    cut = _greedy(engine, n=30, stop=(stop,))
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.find(stop)]
    streamed = list(engine.stream(GenerationRequest(PROMPT, max_new_tokens=30, stop=(stop,))))
    assert "".join(c.delta for c in streamed) == cut.text


def test_same_seed_same_text_other_seed_other_text(engine):
    def sample(seed):
        return _greedy(engine, n=20, temperature=1.0, top_p=0.95, seed=seed).text

    assert sample(7) == sample(7)
    assert len({sample(7), sample(8), sample(9)}) > 1


def test_seeded_rows_do_not_depend_on_their_batch_mates(engine):
    request = GenerationRequest(PROMPT, "tiny/b", max_new_tokens=12, temperature=0.8, seed=3)
    alone = engine.generate([request])[0].text
    other = GenerationRequest("Another prompt entirely", None, max_new_tokens=5)
    together = engine.generate([other, request])[1].text
    assert alone == together


def test_max_new_tokens_above_the_settings_limit_is_refused_with_the_limit(engine):
    with pytest.raises(PromptError, match="max_new_tokens is 1000; it must be between 1 and 40"):
        _greedy(engine, n=1000)


def test_empty_and_oversized_prompts_are_refused(engine):
    with pytest.raises(PromptError, match="empty"):
        _greedy(engine, prompt="   ")
    with pytest.raises(PromptError, match="6000 characters; the limit is 5000"):
        _greedy(engine, prompt="x" * 6000)


def test_prompt_past_the_context_errors_or_keeps_the_tail(engine):
    long_prompt = " ".join(["lighthouse"] * 300)  # about 300 tokens for a 256-token context
    tokens = engine.count_tokens(long_prompt)
    with pytest.raises(PromptError, match=f"prompt is {tokens} tokens; the model's context is 256"):
        _greedy(engine, prompt=long_prompt, n=10)
    result = _greedy(engine, prompt=long_prompt, n=10, truncate="left")
    assert result.prompt_tokens == 246


def test_unknown_and_broken_adapters_fail_alone(engine):
    with pytest.raises(UnknownAdapterError, match="not served"):
        _greedy(engine, adapter="../../etc")
    with pytest.raises(AdapterValidationError, match=r"'tiny/broken'.*PROMPT_TUNING"):
        _greedy(engine, adapter="tiny/broken")
    assert _greedy(engine, adapter="tiny/a", n=3).completion_tokens > 0


def test_adapter_states_and_counters(engine):
    assert engine.adapter_state("tiny/c") == "hot"  # pinned: preloaded
    engine.store.device.remove("tiny/b")
    engine.store.host.remove("tiny/b")
    assert engine.adapter_state("tiny/b") == "cold"
    misses = engine.stats().misses
    assert _greedy(engine, adapter="tiny/b", n=2).adapter_state == "cold"
    assert _greedy(engine, adapter="tiny/b", n=2).adapter_state == "hot"
    assert _greedy(engine, n=2).adapter_state == "base"
    stats = engine.stats()
    assert stats.misses == misses + 1 and stats.base_loads == 1
    assert "tiny/b" in stats.resident and stats.bytes_used["device"] > 0


def test_cancel_stops_a_stream(engine):
    cancel = threading.Event()
    chunks = []
    for chunk in engine.stream(GenerationRequest(PROMPT, max_new_tokens=40), cancel):
        chunks.append(chunk)
        cancel.set()
    result = chunks[-1].result
    assert result.finish_reason == "cancelled" and result.completion_tokens < 40


def test_concurrent_mixed_requests_match_sequential_runs(engine):
    requests = [
        GenerationRequest(
            f"{PROMPT} #{i}", [None, "tiny/a", "tiny/b", "tiny/c"][i % 4], max_new_tokens=10
        )
        for i in range(8)
    ]
    sequential = [engine.generate([r])[0].text for r in requests]
    got: dict[int, str] = {}

    def run(i: int) -> None:
        got[i] = engine.generate([requests[i]])[0].text

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [got[i] for i in range(8)] == sequential
