"""The HTTP API beside the Gradio app: LoRAX-style `/generate`, OpenAI-style `/completions`.

Routes live under `/api/v1`. Requests name adapters by their public id (`<base>/<task>`),
never by path; the engine resolves ids through the deployment. `UserError`s become JSON errors
with the message verbatim (404 unknown adapter, 429 queue full, 400 otherwise). This module
holds no model: it calls the `TextEngine` it is given.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from lora_land.deployment import split_variant
from lora_land.engine.types import GenerationRequest, GenerationResult, StreamChunk
from lora_land.errors import ConfigError, QueueFullError, UnknownAdapterError, UserError

if TYPE_CHECKING:
    from lora_land.services import Services


DEFAULT_NEW_TOKENS = 256  # the report's max_new_tokens


class Parameters(BaseModel):
    adapter_id: str | None = None  # None: the bare base model
    max_new_tokens: int | None = Field(default=None, ge=1)  # None: 256, or the limit if lower
    temperature: float = Field(default=0.0, ge=0.0, le=5.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = None
    stop: list[str] = Field(default_factory=list, max_length=8)
    details: bool = False


class GenerateBody(BaseModel):
    inputs: str
    parameters: Parameters = Field(default_factory=Parameters)


class CompletionBody(BaseModel):
    model: str  # an adapter id, or the base model's name for no adapter
    prompt: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=5.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = None
    stop: list[str] | str | None = None
    stream: bool = False
    stream_options: dict | None = None  # {"include_usage": true} adds a usage event


class TokenizeBody(BaseModel):
    inputs: str


# our finish reasons in LoRAX's vocabulary (so LoRAX clients, and RemoteEngine, read them)
_LORAX_FINISH = {"eos": "eos_token", "stop": "stop_sequence", "length": "length"}


def _details(result: GenerationResult) -> dict:
    return {
        "finish_reason": _LORAX_FINISH.get(result.finish_reason, result.finish_reason),
        "prompt_tokens": result.prompt_tokens,
        "generated_tokens": result.completion_tokens,
        "ttft_s": round(result.ttft_s, 4),
        "total_s": round(result.total_s, 4),
        "tokens_per_s": round(result.tokens_per_s, 2),
        "adapter_state": result.adapter_state,
    }


def _task_of(services: Services, adapter_id: str) -> str | None:
    """The catalog task of a served adapter (variants like `<base>/<task>@dpo` included)."""
    source = services.deployment.adapters.get(adapter_id)
    if source is not None:
        return source.task
    try:  # served outside the deployment file (tests, operator-added ids)
        return split_variant(adapter_id.rsplit("/", 1)[-1])[0]
    except ConfigError:
        return None


def _to_request(services: Services, inputs: str, p: Parameters) -> GenerationRequest:
    limit = services.settings.max_new_tokens_limit
    max_new = p.max_new_tokens if p.max_new_tokens is not None else min(DEFAULT_NEW_TOKENS, limit)
    if max_new > limit:
        raise UserError(f"max_new_tokens is {max_new}; the limit is {limit}")
    return GenerationRequest(
        prompt=inputs,
        adapter_id=p.adapter_id or None,
        max_new_tokens=max_new,
        temperature=p.temperature,
        top_p=p.top_p,
        seed=p.seed,
        stop=tuple(p.stop),
    )


def build_router(services: Services) -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    engine = services.engine

    @router.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @router.get("/info")
    def info() -> dict:
        dep = services.deployment
        return {
            "deployment": dep.name,
            "base_model": dep.base.name,
            "base_source": dep.base.source,
            "context_length": engine.context_length,
            "adapters": len(engine.served_adapters()),
        }

    @router.get("/adapters")
    def adapters() -> list[dict]:
        return [
            {"id": a, "task": _task_of(services, a), "state": engine.adapter_state(a)}
            for a in engine.served_adapters()
        ]

    @router.post("/generate")
    def generate(body: GenerateBody) -> dict:
        result = engine.generate([_to_request(services, body.inputs, body.parameters)])[0]
        out: dict = {"generated_text": result.text}
        if body.parameters.details:
            out["details"] = _details(result)
        return out

    @router.post("/generate_stream")
    def generate_stream(body: GenerateBody) -> StreamingResponse:
        chunks = _primed(engine.stream(_to_request(services, body.inputs, body.parameters)))

        def events() -> Iterator[str]:
            try:
                for chunk in chunks:
                    payload: dict = {"token": {"text": chunk.delta}}
                    if chunk.result is not None:
                        payload["generated_text"] = chunk.result.text
                        payload["details"] = _details(chunk.result)
                    yield f"data: {json.dumps(payload)}\n\n"
            except UserError as e:  # after headers are sent: report in-band
                yield f"data: {json.dumps({'error': str(e)})}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @router.post("/completions")
    def completions(body: CompletionBody) -> dict:
        adapter = None if body.model in (services.deployment.base.name, "") else body.model
        stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        params = Parameters(
            adapter_id=adapter,
            max_new_tokens=body.max_tokens,
            temperature=body.temperature,
            top_p=body.top_p,
            seed=body.seed,
            stop=stop,
        )
        request = _to_request(services, body.prompt, params)
        envelope = {
            "id": f"cmpl-{uuid.uuid4().hex[:24]}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": body.model,
        }
        if body.stream:
            with_usage = bool((body.stream_options or {}).get("include_usage"))
            return StreamingResponse(
                _completion_events(_primed(engine.stream(request)), envelope, with_usage),
                media_type="text/event-stream",
            )
        result = engine.generate([request])[0]
        return envelope | {
            "choices": [_choice(result.text, result.finish_reason)],
            "usage": _usage(result),
        }

    @router.post("/tokenize")
    def tokenize(body: TokenizeBody) -> list[dict]:
        """LoRAX-style: one entry per token (ids are not exposed by every engine)."""
        return [{"index": i} for i in range(engine.count_tokens(body.inputs))]

    return router


def _choice(text: str, finish_reason: str | None) -> dict:
    finish = None if finish_reason is None else "length" if finish_reason == "length" else "stop"
    return {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}


def _usage(result: GenerationResult) -> dict:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.prompt_tokens + result.completion_tokens,
    }


def _primed(chunks: Iterator[StreamChunk]) -> Iterator[StreamChunk]:
    """Start the stream now, so a refusal (unknown adapter, full queue) becomes an HTTP
    status before any header is sent; later failures are reported in-band."""
    first = next(chunks)
    return itertools.chain([first], chunks)


def _completion_events(
    chunks: Iterator[StreamChunk], envelope: dict, with_usage: bool
) -> Iterator[str]:
    """OpenAI's streamed completion: one event per token, a final one, then [DONE]."""
    try:
        for chunk in chunks:
            if chunk.result is None:
                event = envelope | {"choices": [_choice(chunk.delta, None)]}
            else:
                event = envelope | {"choices": [_choice("", chunk.result.finish_reason)]}
                if with_usage:
                    event["usage"] = _usage(chunk.result)
            yield f"data: {json.dumps(event)}\n\n"
    except UserError as e:
        yield f"data: {json.dumps({'error': {'message': str(e)}})}\n\n"
    yield "data: [DONE]\n\n"


def _error_response(request: Request, exc: Exception) -> JSONResponse:
    status = 400
    headers = {}
    if isinstance(exc, UnknownAdapterError):
        status = 404
    elif isinstance(exc, QueueFullError):
        status, headers = 429, {"Retry-After": "1"}
    body = {"error": {"message": str(exc), "type": type(exc).__name__}}
    return JSONResponse(body, status_code=status, headers=headers)


def install_api(app: FastAPI, services: Services) -> None:
    """Add the API routes and the user-error handler to `app`."""
    app.include_router(build_router(services))
    app.add_exception_handler(UserError, _error_response)
