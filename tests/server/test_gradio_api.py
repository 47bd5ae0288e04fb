"""The Gradio app's public API by name, with `gradio_client`, on the full app (fake engine)."""

from __future__ import annotations

import pytest
from gradio_client import Client

from lora_land.server.app import create_app
from tests.server.conftest import ADAPTER, fake_services


@pytest.fixture
def client(tmp_path, serve_asgi) -> Client:
    services = fake_services(tmp_path)
    return Client(serve_asgi(create_app(services)), verbose=False)


def test_every_public_endpoint_has_a_meaningful_name(client):
    api = client.view_api(return_format="dict", print_info=False)
    names = set(api["named_endpoints"])
    assert {"/run_comparison", "/run_playground", "/leaderboard_filter"} <= names
    generated = [n for n in names if n.startswith(("/partial", "/lambda", "/new_cancel"))]
    assert generated == [] and api["unnamed_endpoints"] == {}


def test_run_comparison_returns_the_finetuned_and_the_base_answer(client):
    out = client.predict(
        task="glue_sst2", fields=["a fine film"], max_new_tokens=8, api_name="/run_comparison"
    )
    assert out["adapter_id"] == ADAPTER
    assert out["finetuned"] == "1" and out["base"] == "It is a good film"
    assert "a fine film" in out["prompt"]


def test_run_comparison_reports_bad_input_clearly(client):
    with pytest.raises(Exception, match="max_new_tokens is 1000"):
        client.predict(
            task="glue_sst2", fields=["x"], max_new_tokens=1000, api_name="/run_comparison"
        )
