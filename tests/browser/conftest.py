"""Fixtures for real-browser tests: a real Gradio server on loopback and Debian's chromium.

- `serve_blocks(demo, **launch_kwargs) -> str`: launches any `gr.Blocks` on a free loopback
  port (Gradio's own server, in a background thread) and returns its URL; closed at teardown.
- `browser`: one headless chromium per session (`/usr/bin/chromium`, driven by Playwright,
  nothing downloaded); tests are skipped with a reason if it is not installed.
- `page`: a fresh browser context and page per test.

Mark tests that use them `@pytest.mark.browser`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def serve_blocks() -> Iterator[Callable[..., str]]:
    """Factory: serve a `gr.Blocks` on loopback and return its base URL (closed at teardown)."""
    served: list[Any] = []

    def serve(demo: Any, **launch_kwargs: Any) -> str:
        options = {"server_name": "127.0.0.1", "server_port": free_port(), "quiet": True}
        demo.launch(prevent_thread_lock=True, **(options | launch_kwargs))
        served.append(demo)
        return demo.local_url.rstrip("/")

    yield serve
    for demo in served:
        demo.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian chromium, launched once per session."""
    if not CHROMIUM.is_file():
        pytest.skip(f"chromium not found at {CHROMIUM} (`make chromium` installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh context and page (1400x1000), closed after the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()
