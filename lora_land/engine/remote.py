"""RemoteEngine: hand generation to an existing multi-LoRA server when one machine is not enough.

Implements the `TextEngine` protocol over HTTP, so the UI, the API and the evaluation runner
do not know the difference. Two wire protocols:

- `lorax`: LoRAX's native `/generate_stream` (`inputs`, `parameters.adapter_id`, ...) and
  `/tokenize`; our own `/api/v1` speaks it too.
- `openai`: an OpenAI-compatible `/completions` with `model=<adapter>` (vLLM with
  `--enable-lora --lora-modules name=path`, LoRAX's `/v1`), streamed as server-sent events.

Users still pass our public adapter ids; the deployment maps each to the remote server's name
(its Hub repo, else the id). This module imports no torch and keeps no model.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Literal

import httpx

from lora_land.config import Settings
from lora_land.deployment import Deployment
from lora_land.engine.types import (
    AdapterState,
    EngineStats,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    PreparedRequest,
    StreamChunk,
)
from lora_land.errors import QueueFullError, UnknownAdapterError, UserError

Protocol_ = Literal["lorax", "openai"]
_FINISH = {"eos_token": "eos", "stop_sequence": "stop", "length": "length", "stop": "eos"}


class RemoteEngine:
    """A `TextEngine` whose model runs on another server."""

    def __init__(
        self,
        deployment: Deployment,
        url: str,
        protocol: Protocol_ = "lorax",
        api_key: str | None = None,
        timeout_s: float = 120.0,
        context_length: int | None = None,
        settings: Settings | None = None,
    ) -> None:
        if protocol not in ("lorax", "openai"):
            raise UserError(f"remote protocol must be 'lorax' or 'openai', got {protocol!r}")
        self.deployment = deployment
        self.settings = settings
        self.base_name = deployment.base.name
        self.url = url.rstrip("/")
        self.protocol = protocol
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)
        self._used: set[str] = set()
        self._lock = threading.Lock()
        self.context_length = context_length or self._remote_context_length()

    # -- TextEngine ---------------------------------------------------------------------

    def generate(
        self, requests: Sequence[PreparedRequest | GenerationRequest]
    ) -> list[GenerationResult]:
        """Every request is sent at once (the remote server batches them); results in order."""
        streams = [self.stream(r) for r in requests]
        results: list[GenerationResult] = []
        for chunks in streams:
            *_, last = chunks
            assert last.result is not None
            results.append(last.result)
        return results

    def stream(
        self, request: PreparedRequest | GenerationRequest, cancel: threading.Event | None = None
    ) -> Iterator[StreamChunk]:
        """Eager like `Engine.stream`: the HTTP request is sent (and refusals raised) here."""
        prepared = self._prepared(request)
        remote_name = self._remote_name(prepared.request.adapter_id)
        state = self.adapter_state(prepared.request.adapter_id)
        path, payload = self._payload(prepared, remote_name)
        start = time.perf_counter()
        response = self._open(path, payload, prepared.request.adapter_id)
        return self._read(response, prepared, state, start, cancel)

    def _read(
        self,
        response: httpx.Response,
        prepared: PreparedRequest,
        state: AdapterState,
        start: float,
        cancel: threading.Event | None,
    ) -> Iterator[StreamChunk]:
        request = prepared.request
        first: float | None = None
        text, tokens, finish, prompt_tokens = "", 0, "length", 0
        try:
            for event in _sse(response):
                if cancel is not None and cancel.is_set():
                    finish = "cancelled"
                    break
                if prepared.deadline is not None and time.monotonic() > prepared.deadline:
                    finish = "deadline"
                    break
                delta, done, info = self._parse(event)
                if delta:
                    first = first or time.perf_counter()
                    text += delta
                    tokens += 1
                    yield StreamChunk(delta=delta, text=text, completion_tokens=tokens)
                if info.get("prompt_tokens"):
                    prompt_tokens = info["prompt_tokens"]
                tokens = info.get("completion_tokens", tokens)
                if done:
                    finish = info.get("finish_reason", "eos")
        finally:
            response.close()
        if request.adapter_id:
            with self._lock:
                self._used.add(request.adapter_id)
        end = time.perf_counter()
        first = first or end
        # the engine's formula: tokens sampled after the first (EOS included) / time since it
        sampled = tokens + (finish == "eos")
        result = GenerationResult(
            text=text,
            adapter_id=request.adapter_id,
            prompt_tokens=prompt_tokens or len(prepared.prompt_ids),
            completion_tokens=tokens,
            finish_reason=finish,
            ttft_s=first - start,
            total_s=end - start,
            tokens_per_s=(sampled - 1) / (end - first) if end > first and sampled > 1 else 0.0,
            adapter_state=state,
            seed=request.seed,
        )
        yield StreamChunk(delta="", text=text, completion_tokens=tokens, result=result)

    def _prepared(self, request: PreparedRequest | GenerationRequest) -> PreparedRequest:
        if isinstance(request, PreparedRequest):
            return request
        from lora_land.generation import prepare_request  # the service's rules

        return prepare_request(
            request,
            settings=self.settings or Settings(),
            deployment=self.deployment,
            encode=self.encode,
            context_length=self.context_length,
        )

    def encode(self, text: str) -> list[int]:
        """Token ids from the remote server's tokenizer (`/tokenize`)."""
        if self.protocol == "lorax":
            tokens = self._post_json("/tokenize", {"inputs": text})
            return [int(t.get("id", i)) if isinstance(t, dict) else i for i, t in enumerate(tokens)]
        try:  # vLLM's /tokenize; OpenAI-compatible servers without one get an estimate
            body = self._post_json("/tokenize", {"model": self.base_name, "prompt": text})
            return [int(t) for t in body.get("tokens") or range(int(body["count"]))]
        except (UserError, KeyError, TypeError, ValueError):
            return [0] * (len(text.encode("utf-8")) // 4 + 1)  # ~4 bytes a token

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def adapter_state(self, adapter_id: str | None) -> AdapterState:
        """Best knowledge from here: an adapter this process used is likely still loaded."""
        if adapter_id is None:
            return "base"
        self._remote_name(adapter_id)
        return "hot" if adapter_id in self._used else "cold"

    def served_adapters(self) -> list[str]:
        return sorted(self.deployment.adapters)

    def stats(self) -> EngineStats:
        return EngineStats(base_loads=0, resident=sorted(self._used))

    def close(self) -> None:
        self._http.close()

    # -- wire protocols -----------------------------------------------------------------

    def _remote_name(self, adapter_id: str | None) -> str | None:
        if adapter_id is None:
            return None
        source = self.deployment.resolve(adapter_id)
        return source.repo or source.id

    def _payload(self, prepared: PreparedRequest, remote: str | None) -> tuple[str, dict]:
        request = prepared.request
        sampling = request.temperature > 0
        if self.protocol == "lorax":
            params = {
                "adapter_id": remote,
                "max_new_tokens": prepared.max_new_tokens,
                "do_sample": sampling,
                "temperature": request.temperature if sampling else None,
                "top_p": request.top_p if sampling and request.top_p < 1 else None,
                "seed": request.seed,
                "stop": list(request.stop),
                "details": True,
            }
            params = {k: v for k, v in params.items() if v is not None}
            return "/generate_stream", {"inputs": request.prompt, "parameters": params}
        body = {
            "model": remote or self.base_name,
            "prompt": request.prompt,
            "max_tokens": prepared.max_new_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,
            "stop": list(request.stop) or None,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        return "/completions", {k: v for k, v in body.items() if v is not None}

    def _parse(self, event: dict) -> tuple[str, bool, dict]:
        """(text delta, last event?, {finish_reason, prompt_tokens, completion_tokens})."""
        if "error" in event:
            raise UserError(f"the generation server reported: {event['error']}")
        if self.protocol == "lorax":
            token = event.get("token") or {}
            delta = "" if token.get("special") else token.get("text", "")
            details = event.get("details") or {}
            done = event.get("generated_text") is not None
            info: dict = {}
            if done:
                info["finish_reason"] = _FINISH.get(details.get("finish_reason", ""), "eos")
                if "generated_tokens" in details:
                    info["completion_tokens"] = details["generated_tokens"]
                if details.get("prompt_tokens"):
                    info["prompt_tokens"] = details["prompt_tokens"]
            return delta, done, info
        info = {}
        usage = event.get("usage") or {}
        if usage:
            info = {
                "prompt_tokens": usage.get("prompt_tokens", 0),
                "completion_tokens": usage.get("completion_tokens", 0),
            }
        choices = event.get("choices") or [{}]
        reason = choices[0].get("finish_reason")
        if reason:
            info["finish_reason"] = _FINISH.get(reason, "eos")
        return choices[0].get("text", ""), bool(reason), info

    # -- HTTP ---------------------------------------------------------------------------

    def _open(self, path: str, payload: dict, adapter_id: str | None):
        try:
            request = self._http.build_request("POST", path, json=payload)
            response = self._http.send(request, stream=True)
        except httpx.HTTPError as e:
            raise UserError(
                f"the generation server at {self.url} is unreachable ({type(e).__name__}); "
                "check that it is running"
            ) from None
        if response.status_code >= 400:
            response.read()
            _raise_for(response, adapter_id)
        return response

    def _post_json(self, path: str, payload: dict):
        try:
            response = self._http.post(path, json=payload)
        except httpx.HTTPError as e:
            raise UserError(
                f"the generation server at {self.url} is unreachable ({type(e).__name__})"
            ) from None
        if response.status_code >= 400:
            _raise_for(response, None)
        return response.json()

    def _remote_context_length(self) -> int:
        try:
            info = self._http.get("/info" if self.protocol == "lorax" else "/models").json()
        except (httpx.HTTPError, ValueError):
            return 4096
        if self.protocol == "openai":
            info = (info.get("data") or [{}])[0]
        for key in ("context_length", "max_total_tokens", "max_model_len"):
            if isinstance(info.get(key), int):
                return info[key]
        return 4096


def _sse(response: httpx.Response) -> Iterator[dict]:
    for line in response.iter_lines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        yield json.loads(data)


def _error_message(response: httpx.Response) -> str:
    """The server's own words: LoRAX/our API `{"error": ...}`, OpenAI `{"error": {"message"}}`."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or f"HTTP {response.status_code}"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        error = error.get("message")
    return str(error or (body.get("detail") if isinstance(body, dict) else None) or body)


def _raise_for(response: httpx.Response, adapter_id: str | None) -> None:
    status, message = response.status_code, _error_message(response)
    if status == 404 and adapter_id:
        raise UnknownAdapterError(f"adapter {adapter_id!r}: the generation server says: {message}")
    if status == 429:
        raise QueueFullError(f"the generation server is busy: {message}")
    raise UserError(f"the generation server refused the request ({status}): {message}")


__all__ = ["FinishReason", "RemoteEngine"]
