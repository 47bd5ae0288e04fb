"""LoRAX-compatible routes at the root: `POST /` (what `lorax-client` posts), `/generate`,
`/generate_stream`, `/tokenize` and `/info`.

The official `lorax-client` 0.6.3 (`Client("http://HOST:PORT")`) works unchanged: it posts
`{"inputs", "parameters": {...every field, mostly null}, "stream"}` to the base URL and reads
LoRAX's `details` (finish reason, prompt and generated token counts, seed, tokens with ids
and logprobs). Honoured: `adapter_id`, `do_sample`, `max_new_tokens`, `temperature`,
`top_k`, `top_p`, `repetition_penalty`, `return_full_text`, `stop`, `seed`, `details`,
`decoder_input_details` (prefill token ids). Fields LoRAX defines but this server does not
implement are refused with a 400 naming the field unless left at their default; unknown
fields too. Errors are LoRAX's shape (`{"error", "error_type"}`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from lora_land.engine.types import GenerationRequest, GenerationResult, PreparedRequest
from lora_land.generation import short
from lora_land.server.errors import ApiError, lorax_body, status_of
from lora_land.server.runs import Run, in_thread, read_json

if TYPE_CHECKING:
    from lora_land.server.metrics import Metrics
    from lora_land.services import Services

DEFAULT_NEW_TOKENS = 256
_FINISH = {"eos": "eos_token", "stop": "stop_sequence", "length": "length"}
HONOURED = {
    "adapter_id",
    "do_sample",
    "max_new_tokens",
    "temperature",
    "top_k",
    "top_p",
    "repetition_penalty",
    "return_full_text",
    "stop",
    "seed",
    "details",
    "decoder_input_details",
}
# LoRAX parameters not implemented here, with the values that mean "not used"
UNSUPPORTED: dict[str, tuple[Any, ...]] = {
    "adapter_source": (None, "hub", "local"),
    "merged_adapters": (None,),
    "api_token": (None,),
    "ignore_eos_token": (None, False),
    "truncate": (None,),
    "typical_p": (None,),
    "best_of": (None, 1),
    "watermark": (None, False),
    "return_k_alternatives": (None, 0),
    "response_format": (None,),
}
TOP_LEVEL = {"inputs", "parameters", "stream"}
# OpenAI's names for LoRAX parameters
_ELSEWHERE = {
    "max_tokens": "LoRAX calls it max_new_tokens (max_tokens is OpenAI's, under /v1)",
    "model": "LoRAX names the adapter in adapter_id (model is OpenAI's, under /v1)",
    "n": "n is OpenAI's (under /v1); LoRAX runs one sequence per request",
}


def _parameters(body: object) -> tuple[str, dict]:
    if not isinstance(body, dict):
        raise ApiError("the body must be a JSON object with 'inputs' and 'parameters'")
    for name in body:
        if name not in TOP_LEVEL:
            where = "it belongs in parameters; " if name in HONOURED | set(UNSUPPORTED) else ""
            raise ApiError(
                f"unknown field {short(name, 80)}; {where}the body takes inputs, parameters, "
                "stream",
                param=str(name)[:80],
            )
    inputs = body.get("inputs")
    if not isinstance(inputs, str):
        raise ApiError(f"inputs must be a string, got {short(inputs, 80)}", param="inputs")
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        raise ApiError(f"parameters must be an object, got {short(params, 80)}", param="parameters")
    for name, value in params.items():
        if name in HONOURED:
            continue
        if name in UNSUPPORTED:
            if value in UNSUPPORTED[name]:
                continue
            shown = "(hidden)" if name == "api_token" else short(value, 80)
            raise ApiError(
                f"parameters.{name} is not supported by this server (got {shown}); leave it out",
                param=f"parameters.{name}",
            )
        hint = _ELSEWHERE.get(name, "see the README for the fields")
        raise ApiError(
            f"unknown field {short(f'parameters.{name}', 80)}; {hint}",
            param=f"parameters.{str(name)[:80]}",
        )
    return inputs, params


def _typed(params: dict, name: str, kinds: tuple, default: Any) -> Any:
    value = params.get(name)
    if value is None:
        return default
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        raise ApiError(
            f"parameters.{name} has the wrong type: {short(value, 80)}", param=f"parameters.{name}"
        )
    return value


def to_request(services: Services, inputs: str, params: dict) -> GenerationRequest:
    limit = services.settings.max_new_tokens_limit
    do_sample = _typed(params, "do_sample", (bool,), False)
    temperature = _typed(params, "temperature", (int, float), None)
    top_p = _typed(params, "top_p", (int, float), None)
    top_k = _typed(params, "top_k", (int,), None)
    sampling = do_sample or any(v is not None for v in (temperature, top_p, top_k))
    stop = _typed(params, "stop", (list,), [])
    if not all(isinstance(s, str) for s in stop):
        raise ApiError(f"parameters.stop must be a list of strings, got {short(stop, 80)}")
    return GenerationRequest(
        prompt=inputs,
        adapter_id=_typed(params, "adapter_id", (str,), None) or None,
        max_new_tokens=_typed(params, "max_new_tokens", (int,), min(DEFAULT_NEW_TOKENS, limit)),
        temperature=float(temperature if temperature is not None else 1.0) if sampling else 0.0,
        top_p=float(top_p) if top_p is not None else 1.0,
        top_k=top_k or 0,
        repetition_penalty=float(_typed(params, "repetition_penalty", (int, float), 1.0)),
        seed=_typed(params, "seed", (int,), None),
        stop=tuple(stop),
    )


def _token(services: Services, token_id: int, logprob: float, text: str | None = None) -> dict:
    if text is None:
        [text] = services.generation.token_texts([token_id])
    return {"id": int(token_id), "text": text, "logprob": float(logprob), "special": False}


def details(
    services: Services, result: GenerationResult, prepared: PreparedRequest, prefill: bool
) -> dict:
    texts = services.generation.token_texts(result.token_ids)
    prefill_tokens = []
    if prefill:
        prefill_texts = services.generation.token_texts(prepared.prompt_ids)
        prefill_tokens = [
            {"id": i, "text": t, "logprob": None}
            for i, t in zip(prepared.prompt_ids, prefill_texts, strict=True)
        ]
    return {
        "finish_reason": _FINISH.get(result.finish_reason, result.finish_reason),
        "prompt_tokens": result.prompt_tokens,
        "generated_tokens": result.completion_tokens,
        "seed": result.seed,
        "prefill": prefill_tokens,
        "tokens": [
            _token(services, i, lp, t)
            for i, lp, t in zip(result.token_ids, result.token_logprobs, texts, strict=False)
        ],
        "best_of_sequences": None,
        # ours, beyond LoRAX's: timings and where the adapter was
        "ttft_s": round(result.ttft_s, 4),
        "total_s": round(result.total_s, 4),
        "tokens_per_s": round(result.tokens_per_s, 2),
        "adapter_state": result.adapter_state,
    }


def build_lorax_router(services: Services, metrics: Metrics) -> APIRouter:
    router = APIRouter()

    async def prepare(http: Request) -> tuple[dict, str, dict, PreparedRequest]:
        body = await read_json(http)
        inputs, params = _parameters(body)
        request = to_request(services, inputs, params)
        prepared = await in_thread(services.generation.prepare, request)
        return body, inputs, params, prepared

    async def generate(http: Request, route: str, listed: bool):
        _, inputs, params, prepared = await prepare(http)
        run = Run(services, metrics, route, [prepared])
        [result] = await run.results(http)
        text = inputs + result.text if params.get("return_full_text") else result.text
        out: dict = {"generated_text": text}
        if params.get("details"):  # decoding token texts: off the event loop
            prefill = bool(params.get("decoder_input_details"))
            out["details"] = await in_thread(details, services, result, prepared, prefill)
        return [out] if listed else out

    async def stream(http: Request, route: str):
        _, inputs, params, prepared = await prepare(http)
        run = Run(services, metrics, route, [prepared])
        first = await run.next(http)
        if first is not None and first.error is not None:
            run.close()
            raise first.error
        return StreamingResponse(
            _events(services, run, first, inputs, params), media_type="text/event-stream"
        )

    @router.post("/")
    async def root(http: Request):
        """What `lorax-client` posts to: `stream` in the body picks the answer's form."""
        body = await read_json(http)
        if isinstance(body, dict) and body.get("stream"):
            return await stream(http, "/")
        return await generate(http, "/", listed=True)

    @router.post("/generate")
    async def generate_route(http: Request):
        return await generate(http, "/generate", listed=False)

    @router.post("/generate_stream")
    async def generate_stream(http: Request):
        return await stream(http, "/generate_stream")

    @router.post("/tokenize")
    async def tokenize(http: Request) -> JSONResponse:
        """LoRAX's shape: one {id, text, start, stop} per token; capped like prompts."""
        body = await read_json(http)
        if not isinstance(body, dict) or set(body) - {"inputs", "add_special_tokens"}:
            raise ApiError("the body takes inputs (a string)", param="inputs")
        text = body.get("inputs")
        ids = await in_thread(services.generation.tokenize, text)
        texts = await in_thread(services.generation.token_texts, ids)
        out, at = [], 0
        for token_id, piece in zip(ids, texts, strict=True):
            out.append({"id": token_id, "text": piece, "start": at, "stop": at + len(piece)})
            at += len(piece)
        return JSONResponse(out)

    @router.get("/info")
    async def info() -> dict:
        dep = services.deployment
        return {
            "model_id": dep.base.name,
            "deployment": dep.name,
            "base_model": dep.base.name,
            "base_source": dep.base.source,
            "context_length": services.engine.context_length,
            "max_total_tokens": services.engine.context_length,
            "max_new_tokens": services.settings.max_new_tokens_limit,
            "max_batch_size": services.settings.max_batch_size,
            "max_queue": services.settings.max_queue,
            "adapters": len(services.engine.served_adapters()),
        }

    return router


async def _events(
    services: Services, run: Run, first, inputs: str, params: dict
) -> AsyncIterator[str]:
    """LoRAX's stream: a `token` per event; the last also has generated_text and details."""
    try:
        event = first
        while event is not None:
            if event.error is not None:
                status = status_of(event.error)
                yield f"data: {json.dumps(lorax_body(event.error, status))}\n\n"
            else:
                chunk = event.chunk
                token = {
                    "id": chunk.token_id if chunk.token_id is not None else 0,
                    "text": chunk.delta,
                    "logprob": chunk.logprob if chunk.logprob is not None else 0.0,
                    "special": False,
                }
                payload: dict = {"token": token, "generated_text": None, "details": None}
                if chunk.result is not None:
                    r = chunk.result
                    text = inputs + r.text if params.get("return_full_text") else r.text
                    payload["generated_text"] = text
                    payload["details"] = {
                        "finish_reason": _FINISH.get(r.finish_reason, r.finish_reason),
                        "prompt_tokens": r.prompt_tokens,
                        "generated_tokens": r.completion_tokens,
                        "seed": r.seed,
                    }
                yield f"data: {json.dumps(payload)}\n\n"
            event = await run.next()
    finally:
        run.close()
