"""The API's door on a live server: API keys, the per-client rate limit, body size and time."""

from __future__ import annotations

import socket
import time

import httpx
import openai
import pytest

from lora_land.server.app import build_api
from tests.server.conftest import fake_services

KEY = "sk-land-SECRET-123"


def serve(tmp_path, serve_asgi, **settings) -> str:
    return serve_asgi(build_api(fake_services(tmp_path, **settings)))


def test_with_api_keys_set_the_api_wants_a_bearer_key(tmp_path, serve_asgi):
    url = serve(tmp_path, serve_asgi, api_keys=(KEY,))
    body = {"inputs": "Hello"}
    missing = httpx.post(f"{url}/generate", json=body)
    assert missing.status_code == 401 and "no API key was sent" in missing.json()["error"]
    wrong = httpx.post(f"{url}/generate", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "not valid" in wrong.json()["error"]
    assert KEY not in wrong.text
    good = httpx.post(f"{url}/generate", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert good.status_code == 200
    assert httpx.get(f"{url}/health").status_code == 200  # liveness stays open
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).models.list()
    models = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0).models.list()
    assert len(models.data) == 2


def test_a_client_past_its_rate_is_refused_with_429_and_retry_after(tmp_path, serve_asgi):
    url = serve(tmp_path, serve_asgi, rate_limit_per_min=3)
    statuses = [httpx.post(f"{url}/generate", json={"inputs": "x"}).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    r = httpx.post(f"{url}/v1/completions", json={"model": "smollm2-135m-instruct", "prompt": "x"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert "3 requests a minute per client" in r.json()["error"]["message"]


def test_a_body_over_the_cap_is_413_before_it_is_read(tmp_path, serve_asgi):
    url = serve(tmp_path, serve_asgi, max_body_bytes=1000)
    r = httpx.post(f"{url}/generate", json={"inputs": "x" * 2000})
    assert r.status_code == 413 and "the limit is 1000" in r.json()["error"]


def test_a_body_sent_too_slowly_is_cut_off_with_408(tmp_path, serve_asgi):
    url = serve(tmp_path, serve_asgi, body_timeout_s=0.5)
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"inputs": '
        )
        time.sleep(1.0)  # never send the rest
        reply = sock.recv(4096).decode()
    assert reply.startswith("HTTP/1.1 408")
    assert "LORA_LAND_BODY_TIMEOUT" in reply
