"""Serving an ASGI app for real: uvicorn on a free loopback port, in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import uvicorn

from tests.browser.conftest import free_port


@contextmanager
def _uvicorn_servers() -> Iterator[Callable[[object], str]]:
    """Factory: serve `app` on 127.0.0.1 and return its base URL; all stopped on exit."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def serve(app: object) -> str:
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    try:
        yield serve
    finally:
        for server, thread in servers:
            server.should_exit = True
            thread.join(5)


@pytest.fixture
def serve_asgi() -> Iterator[Callable[[object], str]]:
    """Serve an ASGI app on loopback for one test; returns its base URL."""
    with _uvicorn_servers() as serve:
        yield serve


ADAPTER = "smollm2-135m-instruct/glue_sst2"


def fake_services(tmp_path, **settings_kw):
    """Services around a FakeEngine serving one adapter (glue_sst2), real deployment code."""
    from lora_land.catalog import load_catalog
    from lora_land.config import Settings
    from lora_land.deployment import load_deployment
    from lora_land.services import Services
    from tests.fakes import FakeEngine

    adapters = tmp_path / "adapters"
    (adapters / "glue_sst2").mkdir(parents=True)
    (adapters / "glue_sst2" / "adapter_config.json").write_text("{}")
    settings = Settings(
        adapters_dir_override=adapters,
        cache_dir=tmp_path,
        max_new_tokens_limit=64,
        **settings_kw,
    )
    engine = FakeEngine(adapters=[ADAPTER], replies={ADAPTER: "1", None: "It is a good film"})
    return Services(settings, load_catalog(), load_deployment(settings), engine, None)


@pytest.fixture
def api(tmp_path, serve_asgi):
    """A live API (no UI) on loopback in front of a FakeEngine: .url, .engine, .services."""
    from types import SimpleNamespace

    from lora_land.server.app import build_api

    services = fake_services(tmp_path)
    return SimpleNamespace(
        url=serve_asgi(build_api(services)), engine=services.engine, services=services
    )


@pytest.fixture(scope="module")
def serve_asgi_module() -> Iterator[Callable[[object], str]]:
    """`serve_asgi` for a whole module (one server shared by its tests)."""
    with _uvicorn_servers() as serve:
        yield serve
