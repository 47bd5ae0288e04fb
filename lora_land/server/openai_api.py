"""OpenAI-compatible routes under `/v1`: models, completions, chat completions.

The official `openai` client works unchanged with `base_url="http://HOST:PORT/v1"`.
`model` is an adapter id (`<base>/<task>`) or the base model's name. `n` rows run together in
one batch; `stream: true` answers with server-sent events (`stream_options.include_usage`
adds a usage chunk). Fields OpenAI defines that this server does not implement (logprobs,
tools, penalties, ...) are refused by name with a 400; unknown fields too. Chat prompts go
through the adapter's chat template if it has one, else the base's. Errors are OpenAI's
shape (`lora_land.server.errors`). Generation itself is the generation service's.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from lora_land.engine.types import GenerationRequest, GenerationResult, PreparedRequest
from lora_land.generation import MAX_SEED, check_adapter, short
from lora_land.server.errors import ApiError, openai_body, status_of
from lora_land.server.runs import Run, in_thread, read_json

if TYPE_CHECKING:
    from lora_land.server.metrics import Metrics
    from lora_land.services import Services

DEFAULT_MAX_TOKENS = 256  # the report's max_new_tokens, when the caller gives none
_COMMON = {"model", "max_tokens", "n", "seed", "stop", "stream", "stream_options", "temperature"}
_COMMON |= {"top_p", "user"}
COMPLETION_FIELDS = _COMMON | {"prompt"}
CHAT_FIELDS = _COMMON | {"messages", "max_completion_tokens"}
# informational fields that change nothing about the answer: accepted
IGNORED = {"user", "metadata", "safety_identifier", "prompt_cache_key", "service_tier"}
# OpenAI fields this server does not implement: refused by name unless left at their default
UNSUPPORTED: dict[str, tuple[Any, ...]] = {
    "best_of": (None, 1),
    "echo": (None, False),
    "frequency_penalty": (None, 0, 0.0),
    "presence_penalty": (None, 0, 0.0),
    "logit_bias": (None, {}),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "suffix": (None, ""),
    "tools": (None, []),
    "tool_choice": (None, "none"),
    "functions": (None, []),
    "function_call": (None, "none"),
    "parallel_tool_calls": (None,),
    "response_format": (None, {"type": "text"}),
    "audio": (None,),
    "modalities": (None, ["text"]),
    "prediction": (None,),
    "reasoning_effort": (None,),
    "verbosity": (None,),
    "web_search_options": (None,),
    "store": (None, False),
    "prompt_cache_retention": (None,),
}
ROLES = ("system", "user", "assistant", "developer")
# LoRAX's names for OpenAI fields
_ELSEWHERE = {
    "max_new_tokens": "OpenAI calls it max_tokens (max_new_tokens is LoRAX's, at /generate)",
    "adapter_id": "name the adapter in model (adapter_id is LoRAX's, at /generate)",
    "inputs": "the prompt goes in prompt (inputs is LoRAX's, at /generate)",
    "parameters": "OpenAI fields are top-level (parameters is LoRAX's, at /generate)",
}


def _check_fields(body: object, allowed: set[str]) -> dict:
    if not isinstance(body, dict):
        raise ApiError("the body must be a JSON object")
    for name, value in body.items():
        if name in allowed or name in IGNORED:
            continue
        if name in UNSUPPORTED:
            if value in UNSUPPORTED[name]:
                continue
            raise ApiError(
                f"{name} is not supported by this server (got {short(value, 80)}); leave it out",
                param=name,
            )
        hint = _ELSEWHERE.get(name, f"this route takes: {', '.join(sorted(allowed))}")
        raise ApiError(
            f"unknown field {short(name, 80)}; {hint}",
            param=str(name)[:80],
        )
    return body


def _int(body: dict, name: str, default: int | None, low: int, high: int) -> int | None:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(f"{name} must be an integer, got {short(value, 80)}", param=name)
    if not low <= value <= high:
        raise ApiError(f"{name} is {value}; it must be between {low} and {high}", param=name)
    return value


def _number(body: dict, name: str, default: float) -> float:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError(f"{name} must be a number, got {short(value, 80)}", param=name)
    return float(value)


def _stop(body: dict) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,)
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return tuple(stop)
    raise ApiError(
        f"stop must be a string or a list of strings, got {short(stop, 80)}", param="stop"
    )


class OpenAIRoutes:
    def __init__(self, services: Services, metrics: Metrics) -> None:
        self.services = services
        self.metrics = metrics

    def model_to_adapter(self, model: object) -> str | None:
        if not isinstance(model, str) or not model:
            raise ApiError(
                f"model must be a non-empty string, got {short(model, 80)}", param="model"
            )
        return None if model == self.services.deployment.base.name else model

    def requests(self, body: dict, prompts: list[str], route: str) -> list[PreparedRequest]:
        """Prepared rows: every prompt `n` times (seeded rows get seed, seed+1, ...)."""
        settings = self.services.settings
        adapter = self.model_to_adapter(body.get("model"))
        limit = settings.max_new_tokens_limit
        name = (
            "max_completion_tokens"
            if body.get("max_completion_tokens") is not None
            else "max_tokens"
        )
        max_new = _int(body, name, min(DEFAULT_MAX_TOKENS, limit), 1, limit)
        n = _int(body, "n", 1, 1, settings.max_batch_size)
        seed = _int(body, "seed", None, 0, MAX_SEED)
        if len(prompts) * n > settings.max_batch_size:
            raise ApiError(
                f"{len(prompts)} prompts x n={n} is {len(prompts) * n} rows; the limit is "
                f"{settings.max_batch_size} (LORA_LAND_MAX_BATCH)",
                param="n",
            )
        options = body.get("stream_options")
        if options is not None and (
            not isinstance(options, dict) or set(options) - {"include_usage"}
        ):
            raise ApiError(
                f"stream_options takes only include_usage, got {short(options, 80)}",
                param="stream_options",
            )
        base = GenerationRequest(
            prompt="",
            adapter_id=adapter,
            max_new_tokens=max_new or 1,
            temperature=_number(body, "temperature", 1.0),  # OpenAI's default
            top_p=_number(body, "top_p", 1.0),
            seed=seed,
            stop=_stop(body),
        )
        prepared = []
        for prompt in prompts:
            for i in range(n):
                row_seed = None if seed is None else (seed + i) % (MAX_SEED + 1)
                request = replace(base, prompt=prompt, seed=row_seed)
                prepared.append(self.services.generation.prepare(request))
        return prepared

    async def respond(self, http: Request, body: dict, prepared: list[PreparedRequest], kind: str):
        run = Run(self.services, self.metrics, f"/v1/{kind}", prepared)
        envelope = {
            "id": f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion" if kind == "chat" else "text_completion",
            "created": int(time.time()),
            "model": body["model"],
        }
        if not body.get("stream"):
            results = await run.results(http)
            choices = [_choice(kind, i, r.text, r.finish_reason) for i, r in enumerate(results)]
            return envelope | {"choices": choices, "usage": _usage(results)}
        first = await run.next(http)  # refusals (queue full...) become a status, not a stream
        if first is not None and first.error is not None and first.done:
            run.close()
            raise first.error
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(
            _sse(run, first, envelope, kind, usage), media_type="text/event-stream"
        )


def _finish(reason: str | None) -> str | None:
    if reason is None:
        return None
    return "length" if reason == "length" else "stop"


def _choice(kind: str, index: int, text: str, reason: str | None) -> dict:
    if kind == "chat":
        message = {"role": "assistant", "content": text}
        return {
            "index": index,
            "message": message,
            "finish_reason": _finish(reason),
            "logprobs": None,
        }
    return {"index": index, "text": text, "finish_reason": _finish(reason), "logprobs": None}


def _usage(results: list[GenerationResult]) -> dict:
    prompt = sum(r.prompt_tokens for r in results)
    completion = sum(r.completion_tokens for r in results)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _data(payload: dict) -> str:
    return f"data: {json.dumps(payload)}\n\n"


async def _sse(run: Run, first, envelope: dict, kind: str, with_usage: bool) -> AsyncIterator[str]:
    chunk_object = "chat.completion.chunk" if kind == "chat" else "text_completion"
    head = envelope | {"object": chunk_object}
    if with_usage:
        head["usage"] = None
    results: list[GenerationResult] = []

    def piece(index: int, text: str | None, reason: str | None, role: bool = False) -> str:
        if kind == "chat":
            delta: dict = {"role": "assistant"} if role else {}
            if text is not None:
                delta["content"] = text
            choice = {"index": index, "delta": delta, "finish_reason": reason, "logprobs": None}
        else:
            choice = {"index": index, "text": text or "", "finish_reason": reason, "logprobs": None}
        return _data(head | {"choices": [choice]})

    if kind == "chat":
        for index in range(len(run.prepared)):
            yield piece(index, "", None, role=True)
    try:
        event = first
        while event is not None:
            if event.error is not None:
                status = status_of(event.error)
                yield _data(openai_body(event.error, status))
            elif event.chunk.result is not None:
                results.append(event.chunk.result)
                yield piece(
                    event.index,
                    None if kind == "chat" else "",
                    _finish(event.chunk.result.finish_reason),
                )
            elif event.chunk.delta:
                yield piece(event.index, event.chunk.delta, None)
            event = await run.next()
        if with_usage:
            yield _data(head | {"choices": [], "usage": _usage(results)})
        yield "data: [DONE]\n\n"
    finally:
        run.close()


def _messages(body: dict) -> list[dict]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError("messages must be a non-empty list of {role, content}", param="messages")
    if len(messages) > 256:
        raise ApiError(f"{len(messages)} messages; the limit is 256", param="messages")
    clean = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise ApiError(
                f"messages[{i}] needs a role among {', '.join(ROLES)}, got {short(m, 80)}",
                param=f"messages[{i}]",
            )
        content = m.get("content")
        if isinstance(content, list):  # text parts only
            parts = []
            for part in content:
                if not isinstance(part, dict) or part.get("type") != "text":
                    raise ApiError(
                        f"messages[{i}].content: only text parts are supported, "
                        f"got {short(part, 80)}",
                        param=f"messages[{i}].content",
                    )
                parts.append(str(part.get("text", "")))
            content = "".join(parts)
        if not isinstance(content, str):
            raise ApiError(
                f"messages[{i}].content must be a string, got {short(content, 80)}",
                param=f"messages[{i}].content",
            )
        role = "system" if m["role"] == "developer" else m["role"]
        clean.append({"role": role, "content": content})
    return clean


def build_openai_router(services: Services, metrics: Metrics) -> APIRouter:
    router = APIRouter(prefix="/v1")
    routes = OpenAIRoutes(services, metrics)

    @router.get("/models")
    async def models() -> dict:
        dep = services.deployment
        created = int(time.time())
        data = [
            {
                "id": dep.base.name,
                "object": "model",
                "created": created,
                "owned_by": "lora-land",
                "task": None,
                "root": dep.base.name,
                "parent": None,
            }
        ]
        for adapter_id in services.engine.served_adapters():
            source = dep.adapters.get(adapter_id)
            data.append(
                {
                    "id": adapter_id,
                    "object": "model",
                    "created": created,
                    "owned_by": "lora-land",
                    "task": source.task if source else None,
                    "root": dep.base.name,
                    "parent": dep.base.name,
                }
            )
        return {"object": "list", "data": data}

    @router.get("/models/{model_id:path}")
    async def model(model_id: str) -> JSONResponse:
        listing = await models()
        for entry in listing["data"]:
            if entry["id"] == model_id:
                return JSONResponse(entry)
        raise ApiError(
            f"model {short(model_id)} is not served here; GET /v1/models lists them", 404, "model"
        )

    @router.post("/completions")
    async def completions(http: Request):
        body = _check_fields(await read_json(http), COMPLETION_FIELDS)
        prompt = body.get("prompt")
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if (
            not isinstance(prompts, list)
            or not prompts
            or not all(isinstance(p, str) for p in prompts)
        ):
            raise ApiError(
                f"prompt must be a string or a list of strings (token ids are not supported), got "
                f"{short(prompt, 80)}",
                param="prompt",
            )
        prepared = await in_thread(routes.requests, body, prompts, "completions")
        return await routes.respond(http, body, prepared, "completions")

    @router.post("/chat/completions")
    async def chat(http: Request):
        body = _check_fields(await read_json(http), CHAT_FIELDS)
        messages = _messages(body)
        adapter = routes.model_to_adapter(body.get("model"))
        check_adapter(adapter, services.deployment)  # an unknown model is a 404 first
        prompt = await in_thread(services.generation.chat_prompt, messages, adapter)
        prepared = await in_thread(routes.requests, body, [prompt], "chat")
        return await routes.respond(http, body, prepared, "chat")

    return router
