"""The door of the HTTP API: body size and read time, API keys, a per-client rate limit.

`Guard` is a pure ASGI middleware in front of the API routes (`/v1/...`, LoRAX's `POST /`,
`/generate`, `/generate_stream`, `/tokenize`). It reads the whole body first, refusing one
larger than `max_body_bytes` (413) or slower than `body_timeout_s` (408), then replays it
to the route (later `receive` calls still report a client that hangs up). With `api_keys`
set, a bearer key is required (401). `RateLimiter` counts requests per client (key or
address) in a sliding minute; the UI uses it too. `/health`, `/ready`, `/metrics` and the
Gradio UI pass untouched. Keys are compared in constant time and never logged or echoed.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable

from lora_land.config import Settings

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

API_PREFIXES = ("/v1/", "/generate", "/tokenize", "/api/v1/")


def is_api_path(method: str, path: str) -> bool:
    return path.startswith(API_PREFIXES) or (method == "POST" and path in ("/", ""))


class RateLimiter:
    """At most `per_minute` requests per client in any 60 s window (0: unlimited)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, client: str) -> float | None:
        """None if `client` may go on (and count it); else seconds until it may."""
        if self.per_minute <= 0:
            return None
        now = time.monotonic()
        with self._lock:
            seen = self._seen.setdefault(client, deque())
            while seen and seen[0] <= now - 60:
                seen.popleft()
            if len(seen) >= self.per_minute:
                return max(0.0, seen[0] + 60 - now)
            seen.append(now)
            if len(self._seen) > 10_000:  # forget idle clients
                for key in [k for k, v in self._seen.items() if not v]:
                    del self._seen[key]
            return None


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            text = value.decode("latin-1")
            if text[:7].lower() == "bearer ":
                return text[7:].strip()
            return None
    return None


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope.get("headers", []):
        if name == wanted:
            return value.decode("latin-1")
    return None


class Guard:
    def __init__(self, app, settings: Settings, limiter: RateLimiter) -> None:
        self.app = app
        self.settings = settings
        self.limiter = limiter
        self._keys = [k.encode() for k in settings.api_keys]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_api_path(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        key = _bearer(scope)
        if self._keys and not any(hmac.compare_digest((key or "").encode(), k) for k in self._keys):
            what = "no API key was sent" if key is None else "the API key is not valid"
            await _refuse(send, path, 401, f"{what}; send 'Authorization: Bearer <key>'")
            return
        client = f"key:{hash(key)}" if key else f"ip:{(scope.get('client') or ('?',))[0]}"
        wait = self.limiter.check(client)
        if wait is not None:
            await _refuse(
                send,
                path,
                429,
                f"rate limit: {self.limiter.per_minute} requests a minute per client "
                f"(LORA_LAND_RATE_LIMIT); try again in {wait:.0f} s",
                retry_after=max(1, round(wait)),
            )
            return
        if scope["method"] in ("POST", "PUT", "PATCH"):
            body = await self._read_body(scope, receive, send)
            if body is None:
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        cap, path = self.settings.max_body_bytes, scope["path"]
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            await _refuse(send, path, 413, _too_large(int(declared), cap))
            return None
        deadline = time.monotonic() + self.settings.body_timeout_s
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                limit = self.settings.body_timeout_s
                await _refuse(
                    send,
                    path,
                    408,
                    f"the request body took longer than {limit:g} s to arrive "
                    "(LORA_LAND_BODY_TIMEOUT)",
                )
                return None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > cap:
                await _refuse(send, path, 413, _too_large(size, cap, at_least=True))
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _too_large(size: int, cap: int, at_least: bool = False) -> str:
    what = f"more than {cap}" if at_least else str(size)
    return f"the request body is {what} bytes; the limit is {cap} (LORA_LAND_MAX_BODY_BYTES)"


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # then whatever comes next: the client leaving

    return replay


async def _refuse(
    send: Send, path: str, status: int, message: str, retry_after: int | None = None
) -> None:
    if path.startswith("/v1"):
        kind = {401: "authentication_error", 429: "rate_limit_error"}.get(
            status, "invalid_request_error"
        )
        body = {"error": {"message": message, "type": kind, "param": None, "code": status}}
    else:
        body = {"error": message, "error_type": "overloaded" if status == 429 else "validation"}
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
