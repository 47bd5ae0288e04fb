"""The ASGI application: the HTTP APIs and the Gradio UI on one port.

`create_app(services)` is what `app.py` serves with uvicorn and what tests serve on a free
loopback port. Routes: OpenAI-compatible `/v1/...`, LoRAX-compatible `POST /`, `/generate`,
`/generate_stream`, `/tokenize`, `/info`; `/health` (alive), `/ready` (model loaded),
`/metrics` (Prometheus); the retired `/api/v1/...` answers 410 naming its replacement; the
Gradio UI everywhere else. `Guard` (body cap and read timeout, API keys, rate limit) sits
in front of the API routes. Health, readiness and metrics are `async` handlers on the event
loop, so they answer while every worker thread waits on generation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import gradio as gr
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from lora_land.server.errors import ApiError, install_error_handlers
from lora_land.server.guard import Guard, RateLimiter
from lora_land.server.lorax_api import build_lorax_router
from lora_land.server.metrics import Metrics
from lora_land.server.openai_api import build_openai_router
from lora_land.ui.app import build_demo, launch_options

if TYPE_CHECKING:
    from lora_land.services import Services

RETIRED = {
    "generate": "POST /generate (LoRAX) or POST /v1/completions (OpenAI)",
    "generate_stream": "POST /generate_stream (LoRAX) or /v1/completions with stream",
    "completions": "POST /v1/completions",
    "tokenize": "POST /tokenize",
    "health": "GET /health",
    "info": "GET /info",
    "adapters": "GET /v1/models",
}


def build_api(services: Services) -> FastAPI:
    """The API routes alone (no UI): what the UI-less tests serve."""
    app = FastAPI(title="LoRA Land", docs_url="/api/docs", openapi_url="/api/openapi.json")
    metrics = Metrics(services.engine)
    limiter = RateLimiter(services.settings.rate_limit_per_min)
    app.state.metrics = metrics
    app.state.limiter = limiter
    install_error_handlers(app)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        engine = services.engine
        ok = getattr(engine, "context_length", 0) > 0
        body = {"status": "ready" if ok else "loading", "base_model": services.deployment.base.name}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.api_route("/api/v1/{rest:path}", methods=["GET", "POST"])
    async def retired(rest: str, request: Request) -> JSONResponse:
        now = RETIRED.get(rest.split("/")[0], "/v1/... (OpenAI) or /generate (LoRAX)")
        raise ApiError(f"/api/v1 was retired; use {now} (see the README)", 410)

    app.include_router(build_openai_router(services, metrics))
    app.include_router(build_lorax_router(services, metrics))
    app.add_middleware(Guard, settings=services.settings, limiter=limiter)
    return app


def create_app(services: Services) -> FastAPI:
    app = build_api(services)
    demo = build_demo(services, limiter=app.state.limiter)
    settings = services.settings
    # the UI's queue: as many runs at once as the engine batches, no more waiting than it queues
    demo.queue(default_concurrency_limit=settings.max_batch_size, max_size=settings.max_queue)
    return gr.mount_gradio_app(app, demo, path="", **launch_options())
