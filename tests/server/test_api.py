"""The HTTP API on a real uvicorn server on loopback, in front of a fake engine.

(The browser tests drive the real engine; here the point is the HTTP contract: LoRAX-style
/generate and /generate_stream, OpenAI-style /completions, and user errors as JSON.)
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from lora_land.config import Settings
from lora_land.deployment import load_deployment
from lora_land.server.api import install_api
from tests.fakes import FakeEngine

ADAPTER = "smollm2-135m-instruct/glue_sst2"


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine(adapters=[ADAPTER], replies={ADAPTER: "1", None: "It is a good film"})


@pytest.fixture
def client(engine, tmp_path, serve_asgi):
    settings = Settings(adapters_dir_override=tmp_path, max_new_tokens_limit=64)
    services = SimpleNamespace(
        settings=settings, deployment=load_deployment(settings), engine=engine
    )
    app = FastAPI()
    install_api(app, services)
    with httpx.Client(base_url=f"{serve_asgi(app)}/api/v1", timeout=10) as c:
        yield c


def test_generate_routes_the_adapter_and_returns_details(client, engine):
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
    assert body["details"]["generated_tokens"] == 1
    assert body["details"]["adapter_state"] == "cold"
    assert engine.requests[-1].adapter_id == ADAPTER
    assert engine.requests[-1].max_new_tokens == 8


def test_generate_without_adapter_uses_the_base(client, engine):
    r = client.post("/generate", json={"inputs": "Hello"})
    assert r.json() == {"generated_text": "It is a good film"}
    assert engine.requests[-1].adapter_id is None


def test_stream_sends_tokens_then_the_full_text(client):
    with client.stream("POST", "/generate_stream", json={"inputs": "Hi"}) as r:
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    deltas = "".join(e["token"]["text"] for e in events)
    assert deltas == "It is a good film"
    assert events[-1]["generated_text"] == "It is a good film"
    assert events[-1]["details"]["generated_tokens"] == 5


def test_openai_completions_take_the_adapter_as_model(client, engine):
    r = client.post("/completions", json={"model": ADAPTER, "prompt": "x y", "max_tokens": 4})
    body = r.json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == "1"
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}
    r = client.post("/completions", json={"model": "smollm2-135m-instruct", "prompt": "x"})
    assert r.json()["choices"][0]["text"] == "It is a good film"
    assert engine.requests[-1].adapter_id is None


def test_unknown_adapter_is_404_with_the_message(client):
    r = client.post("/generate", json={"inputs": "x", "parameters": {"adapter_id": "a/b"}})
    assert r.status_code == 404
    assert "'a/b' is not served" in r.json()["error"]["message"]


def test_full_queue_is_429_with_retry_after(client, engine):
    engine.busy = True
    r = client.post("/generate", json={"inputs": "x"})
    assert r.status_code == 429
    assert r.headers["retry-after"] == "1"
    assert "limit" in r.json()["error"]["message"]


def test_max_new_tokens_over_the_limit_names_the_limit(client):
    r = client.post("/generate", json={"inputs": "x", "parameters": {"max_new_tokens": 100}})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "max_new_tokens is 100; the limit is 64"


def test_info_and_adapters_describe_the_deployment(client):
    info = client.get("/info").json()
    assert info["base_model"] == "smollm2-135m-instruct"
    assert info["adapters"] == 1
    assert client.get("/adapters").json() == [{"id": ADAPTER, "task": "glue_sst2", "state": "cold"}]
    assert client.get("/health").json() == {"status": "ok"}


def test_adapters_lists_a_dpo_variant_with_its_plain_task(tmp_path, serve_asgi):
    for name in ("glue_sst2", "glue_sst2@dpo"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "adapter_config.json").write_text("{}")
    settings = Settings(adapters_dir_override=tmp_path)
    deployment = load_deployment(settings)
    engine = FakeEngine(adapters=sorted(deployment.adapters), replies={None: "x"})
    app = FastAPI()
    install_api(app, SimpleNamespace(settings=settings, deployment=deployment, engine=engine))
    with httpx.Client(base_url=f"{serve_asgi(app)}/api/v1", timeout=10) as c:
        listed = {a["id"]: a["task"] for a in c.get("/adapters").json()}
    assert listed == {ADAPTER: "glue_sst2", f"{ADAPTER}@dpo": "glue_sst2"}
