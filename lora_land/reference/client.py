"""The GPT-4 reference: a client for any OpenAI-compatible chat/completions endpoint.

The filled prompt is sent as the single user message (temperature 0, max_tokens 256 by
default) through the official `openai` package, with no retries, and the answer is cached in
SQLite (`ReferenceCache`) so the same question never costs twice and demos replay offline.
Failures become `ReferenceUnavailableError` with a message that says what to do; the API key
is never part of any message, log line or repr.

This module does not render prompts, score answers or touch the UI.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import openai

from lora_land.config import Settings
from lora_land.errors import ReferenceUnavailableError
from lora_land.reference.cache import ReferenceCache

log = logging.getLogger(__name__)

OPENAI_URL = "https://api.openai.com/v1"
_NO_KEY = "not-needed"  # local OpenAI-compatible servers often take no key; the SDK wants one


@dataclass(frozen=True)
class ReferenceAnswer:
    text: str
    model: str
    source: Literal["endpoint", "cache", "recording"]  # where the text came from
    latency_s: float | None  # seconds the endpoint took (None when never asked)
    completion_tokens: int | None  # as reported by the endpoint

    @property
    def cached(self) -> bool:
        return self.source != "endpoint"


def public_url(url: str) -> str:
    """`url` without any user:password part, fit to show to people."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class ReferenceClient:
    """Asks an OpenAI-compatible endpoint, through a SQLite cache."""

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        model: str = "gpt-4",
        timeout_s: float = 30.0,
        cache: ReferenceCache | None = None,
        max_tokens: int = 256,
    ) -> None:
        self.configured = bool(base_url or api_key)
        self.base_url = (base_url or OPENAI_URL).rstrip("/")
        self._api_key = api_key  # private: never shown
        self.model = model
        self.timeout_s = timeout_s
        self.cache = cache
        self.max_tokens = max_tokens
        self._client: openai.OpenAI | None = None

    def __repr__(self) -> str:
        return (
            f"ReferenceClient(endpoint={self.endpoint!r}, model={self.model!r}, "
            f"configured={self.configured})"
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> ReferenceClient:
        """The client the app uses: settings' endpoint, key, model, timeout; cache pre-filled."""
        cache = ReferenceCache(settings.reference_db)
        if settings.reference_recordings is not None:
            count = cache.import_recordings(settings.reference_recordings, settings.openai_model)
            log.info("reference cache: imported %d recorded answers", count)
        return cls(
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key,
            model=settings.openai_model,
            timeout_s=settings.openai_timeout_s,
            cache=cache,
        )

    @property
    def endpoint(self) -> str:
        return public_url(self.base_url)

    def params(self, max_tokens: int | None = None) -> dict[str, object]:
        return {"temperature": 0, "max_tokens": max_tokens or self.max_tokens}

    def lookup(self, prompt: str, max_tokens: int | None = None) -> ReferenceAnswer | None:
        """A cached or recorded answer, without asking the endpoint."""
        if self.cache is None:
            return None
        if self.configured:
            hit = self.cache.get(self.endpoint, self.model, prompt, self.params(max_tokens))
        else:
            hit = self.cache.get_any(self.model, prompt)
        if hit is None:
            return None
        source = "recording" if hit.recorded else "cache"
        return ReferenceAnswer(hit.output, hit.model, source, hit.latency_s, hit.completion_tokens)

    def complete(self, prompt: str, max_tokens: int | None = None) -> ReferenceAnswer:
        """The reference answer to `prompt`: from the cache, else from the endpoint."""
        cached = self.lookup(prompt, max_tokens)
        if cached is not None:
            return cached
        if not self.configured:
            raise ReferenceUnavailableError(
                "GPT-4 reference is not configured: set OPENAI_API_KEY (and OPENAI_BASE_URL for "
                "another OpenAI-compatible server) to compare with it."
            )
        params = self.params(max_tokens)
        start = time.perf_counter()
        try:
            response = self._sdk().chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": prompt}], **params
            )
        except openai.OpenAIError as e:
            raise self._explain(e) from None  # the SDK's message may quote the key
        latency = time.perf_counter() - start
        text = (response.choices[0].message.content or "") if response.choices else ""
        tokens = response.usage.completion_tokens if response.usage else None
        if self.cache is not None:
            self.cache.put(self.endpoint, self.model, prompt, params, text, tokens, latency)
        return ReferenceAnswer(text, response.model or self.model, "endpoint", latency, tokens)

    def _sdk(self) -> openai.OpenAI:
        if self._client is None:
            self._client = openai.OpenAI(
                base_url=self.base_url,
                api_key=self._api_key or _NO_KEY,
                timeout=self.timeout_s,
                max_retries=0,
            )
        return self._client

    def _explain(self, error: openai.OpenAIError) -> ReferenceUnavailableError:
        """A message that says what went wrong and what to do; never the key."""
        where = f"the reference endpoint {self.endpoint}"
        if isinstance(error, openai.APITimeoutError):
            text = (
                f"{where} did not answer within {self.timeout_s:g} s; try again, or raise "
                "LORA_LAND_REFERENCE_TIMEOUT."
            )
        elif isinstance(error, openai.APIConnectionError):
            text = f"could not reach {where}; check OPENAI_BASE_URL and the network."
        elif isinstance(error, openai.AuthenticationError):
            text = f"{where} refused the API key (HTTP 401); check OPENAI_API_KEY."
        elif isinstance(error, openai.PermissionDeniedError):
            text = (
                f"{where} denied access to model {self.model!r} (HTTP 403); check the key's access."
            )
        elif isinstance(error, openai.RateLimitError):
            text = (
                f"{where} is rate limiting us (HTTP 429); wait a minute and run again, or use a "
                "key with a higher quota."
            )
        elif isinstance(error, openai.NotFoundError):
            text = (
                f"{where} does not know model {self.model!r} (HTTP 404); check "
                "LORA_LAND_REFERENCE_MODEL and OPENAI_BASE_URL."
            )
        elif isinstance(error, openai.APIStatusError) and error.status_code >= 500:
            text = f"{where} failed (HTTP {error.status_code}); try again in a little while."
        elif isinstance(error, openai.APIStatusError):
            text = f"{where} rejected the request (HTTP {error.status_code})."
        else:
            text = f"{where} gave an answer we could not read ({type(error).__name__})."
        log.warning("reference request failed: %s", text)
        return ReferenceUnavailableError(self._scrub(text))

    def _scrub(self, text: str) -> str:
        if self._api_key and len(self._api_key) >= 4:
            text = text.replace(self._api_key, "[key]")
        return text
