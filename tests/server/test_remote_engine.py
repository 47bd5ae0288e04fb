"""RemoteEngine against a real multi-LoRA HTTP server on loopback, in both wire protocols.

The server is our own API (it speaks LoRAX's `/generate_stream` at the root and OpenAI's
streamed `/v1/completions`), with a fake engine behind it, so these tests check the client's side of
both protocols end to end over real HTTP.
"""

from __future__ import annotations

import pytest

from lora_land.config import Settings
from lora_land.deployment import load_deployment
from lora_land.engine.remote import RemoteEngine
from lora_land.engine.types import GenerationRequest
from lora_land.errors import QueueFullError, UnknownAdapterError, UserError
from lora_land.server.app import build_api
from lora_land.services import Services
from tests.browser.conftest import free_port
from tests.fakes import FakeEngine

ADAPTER = "smollm2-135m-instruct/glue_sst2"


@pytest.fixture
def served(tmp_path, serve_asgi):
    """(fake engine behind the server, deployment, base URL of the server's API)."""
    (tmp_path / "glue_sst2").mkdir()
    (tmp_path / "glue_sst2" / "adapter_config.json").write_text("{}")
    settings = Settings(adapters_dir_override=tmp_path)
    deployment = load_deployment(settings)
    fake = FakeEngine(adapters=[ADAPTER], replies={ADAPTER: "1", None: "a fine film indeed"})
    app = build_api(Services(settings, None, deployment, fake, None))
    return fake, deployment, serve_asgi(app)


def _url(base: str, protocol: str) -> str:
    return f"{base}/v1" if protocol == "openai" else base


@pytest.mark.parametrize("protocol", ["lorax", "openai"])
def test_stream_yields_tokens_and_a_result(served, protocol):
    fake, deployment, url = served
    remote = RemoteEngine(deployment, _url(url, protocol), protocol=protocol, context_length=2048)
    chunks = list(remote.stream(GenerationRequest("great movie", max_new_tokens=10)))
    assert "".join(c.delta for c in chunks) == "a fine film indeed"
    result = chunks[-1].result
    assert result is not None and result.text == "a fine film indeed"
    assert result.completion_tokens == 4
    assert result.prompt_tokens == 2
    assert result.finish_reason == "eos"
    assert fake.requests[-1].adapter_id is None
    assert fake.requests[-1].max_new_tokens == 10


@pytest.mark.parametrize("protocol", ["lorax", "openai"])
def test_adapter_ids_are_sent_to_the_server(served, protocol):
    fake, deployment, url = served
    remote = RemoteEngine(deployment, _url(url, protocol), protocol=protocol, context_length=2048)
    assert remote.adapter_state(ADAPTER) == "cold"
    [result] = remote.generate([GenerationRequest("x", adapter_id=ADAPTER)])
    assert result.text == "1"
    assert fake.requests[-1].adapter_id == ADAPTER
    assert remote.adapter_state(ADAPTER) == "hot"


def test_ids_outside_the_deployment_never_reach_the_server(served):
    fake, deployment, url = served
    remote = RemoteEngine(deployment, url, context_length=2048)
    with pytest.raises(UnknownAdapterError, match="not served"):
        list(remote.stream(GenerationRequest("x", adapter_id="/etc/passwd")))
    assert fake.requests == []


def test_busy_server_becomes_queue_full(served):
    fake, deployment, url = served
    fake.busy = True
    remote = RemoteEngine(deployment, url, context_length=2048)
    with pytest.raises(QueueFullError, match="busy"):
        remote.generate([GenerationRequest("x")])


def test_unreachable_server_is_a_clear_error_without_the_key(served):
    _, deployment, _ = served
    url = f"http://127.0.0.1:{free_port()}"
    remote = RemoteEngine(deployment, url, api_key="sk-remote-secret", context_length=2048)
    with pytest.raises(UserError, match="unreachable") as info:
        remote.generate([GenerationRequest("x")])
    assert "sk-remote-secret" not in str(info.value)


def test_context_length_and_token_count_come_from_the_server(served):
    _, deployment, url = served
    remote = RemoteEngine(deployment, url, protocol="lorax")
    assert remote.context_length == 2048  # the fake engine's, via /info
    assert remote.count_tokens("one two three") == 3
