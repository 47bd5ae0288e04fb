"""Isolation, cancellation and deadlines on the real embedded model behind a live API.

One failed or abandoned row must not touch the others: three streams keep their full,
correct text while hostile rows fail next to them; whatever a failed or abandoned row held
(adapter pins, batch slots, queue entries) is released.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace

import httpx
import pytest

from lora_land.engine.types import GenerationRequest
from lora_land.errors import DeadlineExceededError, GenerationFailedError
from lora_land.generation import GenerationService
from lora_land.server.app import build_api
from lora_land.services import Services, build_services

SST2 = "smollm2-135m-instruct/glue_sst2"
CONLL = "smollm2-135m-instruct/conllpp"
PROMPTS = [
    ("Once upon a time, in a lighthouse by the sea,", None),
    ("Classify the sentiment: the film was a delight.", SST2),
    ("Find the named entities: Angela Merkel visited Paris in May.", CONLL),
]
NEW = 16
LONG = "1, 2, 3, 4, 5, 6,"  # the base model keeps counting: a request that runs long


@pytest.fixture(scope="module")
def real(settings, embedded_model_dir):
    services = build_services(replace(settings, rate_limit_per_min=0))
    yield services
    services.engine.close()


@pytest.fixture(scope="module")
def url(real, serve_asgi_module):
    return serve_asgi_module(build_api(real))


def wait_idle(real: Services, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = real.engine.stats()
        if stats.running == 0 and stats.queue_depth == 0:
            return
        time.sleep(0.02)
    raise AssertionError(f"the engine did not go idle: {real.engine.stats()}")


def pins(real: Services) -> int:
    store = real.engine.store
    with store._lock:
        return sum(e.pins for e in store.device._entries.values()) - len(
            [a for a in real.deployment.adapters.values() if a.pinned]
        )


def stream_text(url: str, prompt: str, adapter: str | None, started: threading.Event, out: dict):
    body = {"inputs": prompt, "parameters": {"adapter_id": adapter, "max_new_tokens": NEW}}
    text, final = "", None
    with httpx.stream("POST", f"{url}/generate_stream", json=body, timeout=120) as r:
        for line in r.iter_lines():
            if line.startswith("data:"):
                event = json.loads(line[5:])
                text += event["token"]["text"]
                started.set()
                final = event
    out[prompt] = (text, final["generated_text"], final["details"]["finish_reason"])


def test_three_streams_finish_whole_while_hostile_rows_fail_beside_them(real, url):
    gen = real.generation
    alone = {
        p: gen.generate([gen.prepare(GenerationRequest(p, a, NEW))])[0].text for p, a in PROMPTS
    }
    out: dict = {}
    threads, started = [], []
    for prompt, adapter in PROMPTS:
        flag = threading.Event()
        t = threading.Thread(target=stream_text, args=(url, prompt, adapter, flag, out))
        t.start()
        threads.append(t)
        started.append(flag)
    for flag in started:
        assert flag.wait(60)
    # hostile rows over HTTP are refused at the edge...
    hostile = {"seed": 2**64, "temperature": 1e-300}
    for name, value in hostile.items():
        body = {"inputs": "x", "parameters": {name: value, "do_sample": True}}
        assert httpx.post(f"{url}/generate", json=body, timeout=30).status_code == 400
    # ...and rows that slip past it (built by hand) fail alone inside the running batch
    ok = gen.prepare(GenerationRequest("Say hi.", SST2, 8, temperature=0.7))
    bad = [
        replace(ok, request=replace(ok.request, temperature=1e-300)),  # NaN probabilities
        replace(ok, request=replace(ok.request, seed=2**64)),  # a generator cannot take it
    ]
    events = [e for e in gen.stream_many(bad) if e.done]
    assert all(isinstance(e.error, GenerationFailedError) for e in events), events
    assert "other requests were not affected" in str(events[0].error)
    for t in threads:
        t.join(120)
    for prompt, _ in PROMPTS:
        streamed, final, finish = out[prompt]
        assert streamed == final == alone[prompt]
        assert finish in ("length", "eos_token")
    wait_idle(real)
    assert pins(real) == 0  # the failed rows' adapter pins were released


def generated_tokens(url: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("lora_land_generated_tokens_sum"):
            return float(line.split()[-1])
    return 0.0


def test_a_closed_stream_frees_its_row(real, url):
    before = generated_tokens(url)
    body = {"inputs": LONG, "parameters": {"max_new_tokens": 400}}
    with httpx.stream("POST", f"{url}/generate_stream", json=body, timeout=60) as r:
        lines = r.iter_lines()
        for _ in range(4):
            next(lines)
    wait_idle(real)
    metrics = httpx.get(f"{url}/metrics").text
    assert 'outcome="cancelled",route="/generate_stream"} 1.0' in metrics
    assert generated_tokens(url) - before < 100  # stopped long before its 400 tokens


def test_a_client_that_gives_up_frees_its_row(real, url):
    body = {"inputs": LONG, "parameters": {"max_new_tokens": 400}}
    before = generated_tokens(url)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{url}/generate", json=body, timeout=1.0)
    wait_idle(real)
    metrics = httpx.get(f"{url}/metrics").text
    assert 'outcome="cancelled",route="/generate"} 1.0' in metrics
    assert generated_tokens(url) - before < 100


def test_a_deadline_ends_with_504_and_a_message(real, serve_asgi):
    hurried = Services(
        replace(real.settings, request_timeout_s=0.3),
        real.catalog,
        real.deployment,
        real.engine,
        None,
    )
    url = serve_asgi(build_api(hurried))
    body = {"inputs": LONG, "parameters": {"max_new_tokens": 400}}
    r = httpx.post(f"{url}/generate", json=body, timeout=60)
    assert r.status_code == 504
    assert "past its deadline" in r.json()["error"]
    wait_idle(real)
    service = GenerationService(real.engine, hurried.settings, real.deployment)
    with pytest.raises(DeadlineExceededError):
        service.generate([service.prepare(GenerationRequest(LONG, None, 400))])


def test_stop_ends_every_row_of_a_stream_many(real):
    cancel = threading.Event()
    gen = real.generation
    prepared = [gen.prepare(GenerationRequest(LONG, a, 400)) for a in (None, SST2)]
    finishes = []
    for seen, event in enumerate(gen.stream_many(prepared, cancel)):
        if seen == 3:
            cancel.set()
        if event.done:
            finishes.append(event.chunk.result.finish_reason)
    assert finishes == ["cancelled", "cancelled"]
    wait_idle(real)
