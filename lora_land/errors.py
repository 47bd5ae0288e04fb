"""The project's error tree.

`LoraLandError` is the root. `UserError` and its subclasses carry messages written for
people: the UI and the HTTP API show them verbatim, so they name the bad value and the
limit and never contain secrets. Anything else that escapes is a bug and is shown as a
generic failure (and logged).
"""

from __future__ import annotations


class LoraLandError(Exception):
    """Base class of every error this project raises on purpose."""


class UserError(LoraLandError):
    """An error whose message is shown to the user as is."""


class CatalogDataError(LoraLandError, ValueError):
    """A data file under `leaderboards/` is broken (names file, row and problem)."""


class ConfigError(UserError, ValueError):
    """Settings or the deployment file are invalid."""


class UnknownAdapterError(UserError, KeyError):
    """An adapter id that the deployment does not serve."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "unknown adapter"


class AdapterValidationError(UserError, ValueError):
    """Adapter files that cannot be served (bad config, wrong base, unsafe format...)."""


class PromptError(UserError, ValueError):
    """An empty, oversized or otherwise unusable prompt or field."""


class QueueFullError(UserError, RuntimeError):
    """The engine has more waiting requests than it accepts; try again shortly."""


class ReferenceUnavailableError(UserError, RuntimeError):
    """The GPT-4 reference endpoint failed (timeout, auth, rate limit, server error)."""


class DeadlineExceededError(UserError, TimeoutError):
    """A request ran past its deadline (LORA_LAND_REQUEST_TIMEOUT) and was stopped (HTTP 504)."""


class GenerationFailedError(UserError, RuntimeError):
    """One request failed inside the engine; the other rows of its batch went on (HTTP 500)."""


class RateLimitedError(UserError, RuntimeError):
    """A client sent more requests than its per-minute allowance (HTTP 429)."""
