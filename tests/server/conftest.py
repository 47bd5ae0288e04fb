"""Serving an ASGI app for real: uvicorn on a free loopback port, in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
import uvicorn

from tests.browser.conftest import free_port


@pytest.fixture
def serve_asgi() -> Iterator[Callable[[object], str]]:
    """Factory: serve `app` on 127.0.0.1 and return its base URL; stopped at teardown."""
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

    yield serve
    for server, thread in servers:
        server.should_exit = True
        thread.join(5)
