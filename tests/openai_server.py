"""A real HTTP server on loopback that speaks the OpenAI chat/completions protocol.

`ThreadingHTTPServer` in a background thread, scriptable per test: answer, hang past the
client's timeout, or fail with 401, 429 or 500 (with bodies shaped like OpenAI's, the 401 one
quoting the key as OpenAI does, so tests can check that we never repeat it). It records every
request it received. For tests only; it is not a mock object: the client talks HTTP to it.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ERRORS = {
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided: {key}."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: ("server_error", None, "The server had an error while processing your request."),
}


class OpenAIServer:
    """`mode` is "ok", "slow" (sleep `delay_s` first), or an HTTP status from ERRORS."""

    def __init__(self, reply: str = "positive") -> None:
        self.reply = reply
        self.mode: str | int = "ok"
        self.delay_s = 5.0
        self.requests: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> OpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()  # wakes a sleeping "slow" handler
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                auth = self.headers.get("Authorization", "")
                server.requests.append({"path": self.path, "body": body, "auth": auth})
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                if server.mode == "slow" and server._stop.wait(server.delay_s):
                    return None
                if server.mode in ERRORS:
                    kind, code, message = ERRORS[server.mode]
                    key = auth.removeprefix("Bearer ")
                    error = {"message": message.format(key=key), "type": kind, "code": code}
                    return self._send(int(server.mode), {"error": error})
                return self._send(200, server.completion(body))

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def completion(self, body: dict) -> dict:
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "gpt-4"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.reply},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
        }
