"""The generation service with a FakeEngine: one place that checks, tokenizes and runs.

(The real engine's side, isolation and cancellation, is in test_isolation.py.)
"""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from lora_land.config import Settings
from lora_land.deployment import load_deployment
from lora_land.engine.types import GenerationRequest
from lora_land.errors import PromptError, QueueFullError, UnknownAdapterError
from lora_land.generation import GenerationService, PreparedRequest, StreamEvent
from lora_land.services import Services
from tests.fakes import FakeEngine

ADAPTER = "smollm2-135m-instruct/glue_sst2"


@pytest.fixture
def service(tmp_path) -> GenerationService:
    (tmp_path / "glue_sst2").mkdir()
    (tmp_path / "glue_sst2" / "adapter_config.json").write_text("{}")
    settings = Settings(adapters_dir_override=tmp_path, max_new_tokens_limit=64)
    engine = FakeEngine(
        adapters=[ADAPTER], context_length=32, replies={ADAPTER: "1", None: "a fine film"}
    )
    return GenerationService(engine, settings, load_deployment(settings))


def test_prepare_tokenizes_once_and_normalises(service):
    prepared = service.prepare(GenerationRequest("one two three", ADAPTER, 8, stop=["x"]))
    assert isinstance(prepared, PreparedRequest)
    assert prepared.prompt_ids == (3, 3, 5)  # the fake's ids are word lengths
    assert prepared.request.stop == ("x",) and prepared.max_new_tokens == 8
    assert prepared.deadline is not None


def test_prepare_gives_fewer_new_tokens_when_the_context_is_short(service):
    prepared = service.prepare(GenerationRequest("w " * 30, None, 16))
    assert prepared.max_new_tokens == 2  # 30 prompt tokens in a 32-token context


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"prompt": "  "}, "the prompt is empty"),
        ({"prompt": "x\ud800y"}, "position 1"),
        ({"max_new_tokens": 65}, "max_new_tokens is 65; it must be between 1 and 64"),
        ({"temperature": float("nan")}, "temperature must be a finite number, got nan"),
        ({"temperature": 1e-300}, "temperature is 1e-300; it must be 0 (greedy) or between"),
        ({"top_p": 0.0}, "top_p is 0; it must be in (0, 1]"),
        ({"seed": 2**64}, "seed is 18446744073709551616; it must be between 0 and 2**63-1"),
        ({"seed": -1}, "seed is -1"),
        ({"stop": ("",)}, "stop[0] is empty"),
        ({"stop": ("s",) * 9}, "9 stop strings given; the limit is 8"),
        ({"stop": ("x" * 300,)}, "stop[0] has 300 characters; the limit is 256"),
    ],
)
def test_prepare_refuses_bad_values_naming_value_and_limit(service, change, words):
    request = replace(GenerationRequest("a review", None, 8), **change)
    with pytest.raises(PromptError) as caught:
        service.prepare(request)
    assert words in str(caught.value)
    assert service.engine.requests == []


def test_an_unknown_adapter_is_echoed_back_short(service):
    with pytest.raises(UnknownAdapterError) as caught:
        service.prepare(GenerationRequest("hi", "x" * 5000, 8))
    message = str(caught.value)
    assert "(5002 characters)" in message and len(message) < 600 and ADAPTER in message


def test_stream_many_runs_each_request_to_one_done_event(service):
    prepared = [service.prepare(GenerationRequest("hi", a, 8)) for a in (ADAPTER, None)]
    events = list(service.stream_many(prepared))
    assert all(isinstance(e, StreamEvent) for e in events)
    done = {e.index: e for e in events if e.done}
    assert sorted(done) == [0, 1]
    assert done[0].chunk.result.text == "1" and done[1].chunk.result.text == "a fine film"
    texts = [e.chunk.delta for e in events if e.index == 1 and not e.done]
    assert "".join(texts) == "a fine film"


def test_one_refused_request_is_its_own_error_event_and_the_other_runs(service):
    prepared = [service.prepare(GenerationRequest("hi", a, 8)) for a in (ADAPTER, None)]
    service.engine.failures[ADAPTER] = QueueFullError("the engine queue is full; try again")
    done = {e.index: e for e in service.stream_many(prepared) if e.done}
    assert isinstance(done[0].error, QueueFullError)
    assert done[1].chunk.result.text == "a fine film"


def test_generate_returns_results_in_order(service):
    prepared = [service.prepare(GenerationRequest("hi", a, 8)) for a in (None, ADAPTER)]
    assert [r.text for r in service.generate(prepared)] == ["a fine film", "1"]


def test_cancel_stops_every_running_request(service):
    service.engine.hold = threading.Event()
    cancel = threading.Event()
    prepared = [service.prepare(GenerationRequest("hi", a, 8)) for a in (ADAPTER, None)]
    events = service.stream_many(prepared, cancel)
    cancel.set()
    service.engine.hold.set()
    done = [e for e in events if e.done]
    assert {e.chunk.result.finish_reason for e in done} == {"cancelled"}


def test_services_build_the_generation_service_when_not_given(tmp_path, service):
    services = Services(service.settings, None, service.deployment, service.engine, None)
    assert isinstance(services.generation, GenerationService)
    assert services.generation.engine is service.engine
