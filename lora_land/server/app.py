"""The ASGI application: the HTTP API under `/api/v1` and the Gradio UI at `/`.

`create_app(services)` is what `app.py` serves with uvicorn and what tests serve on a free
loopback port.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import gradio as gr
from fastapi import FastAPI

from lora_land.server.api import install_api
from lora_land.ui.app import build_demo, launch_options

if TYPE_CHECKING:
    from lora_land.services import Services


def create_app(services: Services) -> FastAPI:
    app = FastAPI(title="LoRA Land", docs_url="/api/docs", openapi_url="/api/openapi.json")
    install_api(app, services)
    demo = build_demo(services)
    demo.queue(default_concurrency_limit=services.settings.max_batch_size)
    return gr.mount_gradio_app(app, demo, path="", **launch_options())
