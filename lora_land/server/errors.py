"""HTTP errors in the shapes real clients parse: OpenAI's under `/v1`, LoRAX's elsewhere.

OpenAI: `{"error": {"message", "type", "param", "code"}}`. LoRAX (what `lorax-client`'s
`parse_error` reads): `{"error": message, "error_type": "validation" | "overloaded" | ...}`.
Statuses: 400 bad input, 401 missing/wrong key, 404 unknown adapter or model, 413 body too
large, 429 queue full or rate limited (with `Retry-After`), 504 deadline, 500 a failure inside
one request. Messages are the `UserError`s' own words (never a traceback, never a key).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from lora_land.errors import (
    DeadlineExceededError,
    GenerationFailedError,
    QueueFullError,
    RateLimitedError,
    UnknownAdapterError,
    UserError,
)
from lora_land.generation import short

log = logging.getLogger(__name__)

RETRY_AFTER_S = 1


class ApiError(UserError):
    """A refusal made by the HTTP layer itself (status, and the field it is about)."""

    def __init__(self, message: str, status: int = 400, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.param = param


def status_of(error: Exception) -> int:
    if isinstance(error, ApiError):
        return error.status
    if isinstance(error, UnknownAdapterError):
        return 404
    if isinstance(error, QueueFullError | RateLimitedError):
        return 429
    if isinstance(error, DeadlineExceededError):
        return 504
    if isinstance(error, GenerationFailedError):
        return 500
    return 400


_OPENAI_TYPE = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    504: "timeout_error",
}
_LORAX_TYPE = {404: "not_found", 429: "overloaded", 500: "generation", 504: "generation"}


def openai_body(error: Exception, status: int) -> dict:
    return {
        "error": {
            "message": str(error),
            "type": _OPENAI_TYPE.get(status, "invalid_request_error"),
            "param": getattr(error, "param", None),
            "code": type(error).__name__,
        }
    }


def lorax_body(error: Exception, status: int) -> dict:
    return {"error": str(error), "error_type": _LORAX_TYPE.get(status, "validation")}


def error_response(request: Request | None, error: Exception) -> JSONResponse:
    """The JSON error for `error`, shaped for the route's clients."""
    status = status_of(error)
    path = request.url.path if request is not None else ""
    body = openai_body(error, status) if path.startswith("/v1") else lorax_body(error, status)
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 429 else {}
    return JSONResponse(body, status_code=status, headers=headers)


def _field(loc: tuple) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or "body"


def validation_message(exc: RequestValidationError) -> ApiError:
    """Pydantic's first complaint in plain words: the field, what was wrong, what was sent."""
    errors = exc.errors()
    if not errors:
        return ApiError("the request body is not valid")
    first = errors[0]
    field = _field(tuple(first.get("loc", ())))
    kind = first.get("type", "")
    sent = first.get("input")
    if kind == "extra_forbidden":
        message = f"unknown field {short(field)}; see the README for the fields this route takes"
    elif kind == "missing":
        message = f"the field {field!r} is required"
    elif kind in ("json_invalid", "value_error.jsondecode"):
        message = f"the body is not valid JSON ({first.get('msg', '')})"
    else:
        message = f"{field}: {first.get('msg', 'invalid value')} (got {short(sent, 80)})"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return ApiError(message + more, 400, field)


def install_error_handlers(app: FastAPI) -> None:
    async def on_user_error(request: Request, exc: Exception) -> JSONResponse:
        return error_response(request, exc)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(request, validation_message(exc))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return error_response(request, ApiError(str(exc.detail), exc.status_code))

    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %r", request.url.path)
        return error_response(
            request, GenerationFailedError(f"internal error ({type(exc).__name__}); see the log")
        )

    app.add_exception_handler(UserError, on_user_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_bug)
