"""The LoRAX-style routes and the service routes on a real uvicorn server, fake engine behind.

(The official clients are in test_openai_client.py and test_lorax_client.py; hostile input
in test_hostile_input.py; the real engine in test_isolation.py.)
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.server.conftest import ADAPTER


@pytest.fixture
def client(api):
    with httpx.Client(base_url=api.url, timeout=10) as c:
        yield c


def test_generate_routes_the_adapter_and_returns_details(client, api):
    r = client.post(
        "/generate",
        json={
            "inputs": "Review: great",
            "parameters": {"adapter_id": ADAPTER, "max_new_tokens": 8, "details": True},
        },
    )
    assert r.status_code == 200
    body = r.json()
    assert body["generated_text"] == "1"
    details = body["details"]
    assert details["generated_tokens"] == 1 and details["prompt_tokens"] == 2
    assert details["finish_reason"] == "eos_token" and details["adapter_state"] == "cold"
    assert [t["logprob"] for t in details["tokens"]] == [-0.5]
    assert api.engine.requests[-1].adapter_id == ADAPTER
    assert api.engine.requests[-1].max_new_tokens == 8


def test_generate_without_adapter_uses_the_base_greedily(client, api):
    r = client.post("/generate", json={"inputs": "Hello"})
    assert r.json() == {"generated_text": "It is a good film"}
    assert api.engine.requests[-1].adapter_id is None
    assert api.engine.requests[-1].temperature == 0.0


def test_lorax_sampling_parameters_reach_the_engine(client, api):
    params = {"do_sample": True, "top_k": 5, "repetition_penalty": 1.2, "seed": 7}
    client.post("/generate", json={"inputs": "Hi", "parameters": params})
    sent = api.engine.requests[-1]
    assert (sent.temperature, sent.top_k, sent.repetition_penalty, sent.seed) == (1.0, 5, 1.2, 7)


def test_return_full_text_prepends_the_prompt(client):
    r = client.post("/generate", json={"inputs": "Hi:", "parameters": {"return_full_text": True}})
    assert r.json()["generated_text"] == "Hi:It is a good film"


def test_stream_sends_tokens_then_the_full_text(client):
    with client.stream("POST", "/generate_stream", json={"inputs": "Hi"}) as r:
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    deltas = "".join(e["token"]["text"] for e in events)
    assert deltas == "It is a good film"
    assert events[-1]["generated_text"] == "It is a good film"
    assert events[-1]["details"]["generated_tokens"] == 5
    assert all(e["generated_text"] is None for e in events[:-1])


def test_unknown_adapter_is_404_with_the_message(client):
    r = client.post("/generate", json={"inputs": "x", "parameters": {"adapter_id": "a/b"}})
    assert r.status_code == 404
    assert "'a/b' is not served" in r.json()["error"]
    assert r.json()["error_type"] == "not_found"


def test_full_queue_is_429_with_retry_after_in_both_shapes(client, api):
    api.engine.busy = True
    r = client.post("/generate", json={"inputs": "x"})
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    assert "limit" in r.json()["error"] and r.json()["error_type"] == "overloaded"
    r = client.post("/v1/completions", json={"model": ADAPTER, "prompt": "x"})
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    assert r.json()["error"]["type"] == "rate_limit_error"


def test_max_new_tokens_over_the_limit_names_the_limit(client):
    r = client.post("/generate", json={"inputs": "x", "parameters": {"max_new_tokens": 100}})
    assert r.status_code == 400
    assert "max_new_tokens is 100; it must be between 1 and 64" in r.json()["error"]


def test_info_health_ready_describe_the_deployment(client):
    info = client.get("/info").json()
    assert info["base_model"] == "smollm2-135m-instruct"
    assert info["adapters"] == 1 and info["max_new_tokens"] == 64
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json()["status"] == "ready"


def test_tokenize_gives_lorax_tokens(client):
    tokens = client.post("/tokenize", json={"inputs": "one three"}).json()
    assert [t["id"] for t in tokens] == [3, 5]  # the fake's ids are word lengths


def test_the_retired_api_v1_says_where_to_go(client):
    r = client.post("/api/v1/completions", json={})
    assert r.status_code == 410
    assert "/v1/completions" in r.json()["error"]


def test_metrics_count_requests_by_route_adapter_and_outcome(client):
    client.post("/generate", json={"inputs": "x", "parameters": {"adapter_id": ADAPTER}})
    client.post("/v1/completions", json={"model": ADAPTER, "prompt": "x", "max_tokens": 4})
    text = client.get("/metrics").text
    assert (
        f'lora_land_requests_total{{adapter="{ADAPTER}",outcome="eos",route="/generate"}} 1.0'
        in text
    )
    assert 'route="/v1/completions"' in text
    assert "lora_land_ttft_seconds_bucket" in text and "lora_land_queue_depth 0.0" in text
    assert "lora_land_adapter_cache_misses_total" in text
