"""ReferenceClient against a real OpenAI-protocol HTTP server on loopback."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest

from lora_land.config import Settings
from lora_land.errors import ReferenceUnavailableError
from lora_land.reference import ReferenceCache, ReferenceClient
from tests.openai_server import OpenAIServer

KEY = "sk-test-SECRET-0123456789abcdef"
PROMPT = "Classify the sentiment.\n\nSentence: a charming journey\n\nLabel: "


@pytest.fixture
def server():
    with OpenAIServer(reply="1") as srv:
        yield srv


def make_client(server: OpenAIServer, tmp_path: Path, timeout_s: float = 5.0) -> ReferenceClient:
    return ReferenceClient(
        base_url=server.base_url,
        api_key=KEY,
        model="gpt-4",
        timeout_s=timeout_s,
        cache=ReferenceCache(tmp_path / "ref.sqlite"),
    )


def test_success_sends_prompt_as_single_user_message_at_temperature_zero(server, tmp_path):
    answer = make_client(server, tmp_path).complete(PROMPT)
    assert answer.text == "1"
    assert answer.source == "endpoint"
    assert answer.completion_tokens == 1
    [request] = server.requests
    assert request["body"]["messages"] == [{"role": "user", "content": PROMPT}]
    assert request["body"]["temperature"] == 0
    assert request["body"]["max_tokens"] == 256
    assert request["body"]["model"] == "gpt-4"
    assert request["auth"] == f"Bearer {KEY}"


def test_same_question_twice_reaches_the_server_once(server, tmp_path):
    client = make_client(server, tmp_path)
    first = client.complete(PROMPT)
    second = client.complete(PROMPT)
    assert len(server.requests) == 1
    assert (first.source, second.source) == ("endpoint", "cache")
    assert second.text == first.text


def test_cache_survives_a_new_client_on_the_same_file(server, tmp_path):
    make_client(server, tmp_path).complete(PROMPT)
    again = make_client(server, tmp_path).complete(PROMPT)
    assert again.source == "cache"
    assert len(server.requests) == 1


def test_different_parameters_are_a_different_cache_key(server, tmp_path):
    client = make_client(server, tmp_path)
    client.complete(PROMPT)
    client.complete(PROMPT, max_tokens=16)
    assert len(server.requests) == 2


def test_timeout_says_how_long_and_what_to_do(server, tmp_path):
    server.mode = "slow"
    client = make_client(server, tmp_path, timeout_s=0.3)
    with pytest.raises(ReferenceUnavailableError) as info:
        client.complete(PROMPT)
    assert "0.3 s" in str(info.value)
    assert "LORA_LAND_REFERENCE_TIMEOUT" in str(info.value)
    assert client.cache.count() == 0


def test_auth_error_never_repeats_the_key(server, tmp_path, caplog):
    server.mode = 401
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ReferenceUnavailableError) as info:
        make_client(server, tmp_path).complete(PROMPT)
    message = str(info.value)
    assert "401" in message and "OPENAI_API_KEY" in message
    assert KEY not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert KEY not in caplog.text


def test_rate_limit_says_to_wait(server, tmp_path):
    server.mode = 429
    with pytest.raises(ReferenceUnavailableError, match=r"429.*wait"):
        make_client(server, tmp_path).complete(PROMPT)
    assert len(server.requests) == 1  # no retries


def test_server_error_says_to_try_later(server, tmp_path):
    server.mode = 500
    with pytest.raises(ReferenceUnavailableError, match=r"HTTP 500.*try again"):
        make_client(server, tmp_path).complete(PROMPT)


def test_unreachable_endpoint_is_a_clear_error(tmp_path):
    with OpenAIServer() as srv:
        url = srv.base_url
    client = ReferenceClient(base_url=url, api_key=KEY, timeout_s=2, cache=None)
    with pytest.raises(ReferenceUnavailableError, match="could not reach"):
        client.complete(PROMPT)


def test_unconfigured_client_says_how_to_configure_and_replays_cache(server, tmp_path):
    make_client(server, tmp_path).complete(PROMPT)
    offline = ReferenceClient(
        base_url=None, api_key=None, cache=ReferenceCache(tmp_path / "ref.sqlite")
    )
    assert not offline.configured
    assert offline.complete(PROMPT).text == "1"
    with pytest.raises(ReferenceUnavailableError, match=r"not configured.*OPENAI_API_KEY"):
        offline.complete("another prompt")


def test_from_settings_prefills_from_recordings_and_hides_the_key(tmp_path):
    recordings = tmp_path / "recorded.jsonl"
    rows = [{"prompt": PROMPT, "model": "gpt-4", "output": "1"}, {"prompt": "q", "output": "a"}]
    recordings.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    settings = replace(
        Settings(),
        cache_dir=tmp_path,
        reference_recordings=recordings,
        openai_api_key=KEY,
        openai_base_url="http://user:pw@127.0.0.1:9/v1",
    )
    client = ReferenceClient.from_settings(settings)
    answer = client.complete(PROMPT)
    assert (answer.text, answer.source) == ("1", "recording")
    assert client.complete("q").text == "a"
    assert KEY not in repr(client) and "pw" not in client.endpoint
    assert client.endpoint == "http://127.0.0.1:9/v1"
