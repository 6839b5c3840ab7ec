"""OpenRouter's error answers turned into orbcast errors with hints, and the key bookkeeping behind them.

401/403 -> :class:`AuthError` naming the key type needed; 402 -> :class:`InsufficientCredits` ("insufficient
credits", exit 4); 404/405/415 without OpenRouter's error body -> :class:`EndpointNotFound` (wrong base
URL); 429 and 5xx left after retries -> :class:`ServiceUnavailable`. Messages name a key by its kind and
origin (``env OPENROUTER_MANAGEMENT_KEY``), never by its value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import orjson

from orbcast.errors import AuthError, EndpointNotFound, OrbcastError, ServiceUnavailable
from orbcast.retry import RETRYABLE_OPENROUTER

MANAGEMENT_ONLY = "Only management keys can perform this operation"
MANAGEMENT_KEYS_URL = "https://openrouter.ai/settings/management-keys"
CREDITS_URL = "https://openrouter.ai/credits"
OTHER_SOURCES = (
    "or use a source that needs no management key: --source csv:EXPORT.csv (the dashboard's "
    "per-generation export) or --source ids:FILE (ids captured from the X-Generation-Id header)"
)


class InsufficientCredits(AuthError):
    """402: the account (or the key's credit limit) has no credits left."""


class GenerationUnavailable(Exception):
    """One generation could not be fetched (old 404, no access): counted and reported, not fatal."""

    def __init__(self, gen_id: str, reason: str) -> None:
        super().__init__(f"{gen_id}: {reason}")
        self.gen_id = gen_id
        self.reason = reason


class AnalyticsTimeout(Exception):
    """408 from ``/analytics/query``: the caller narrows the window."""


class AnalyticsRejected(OrbcastError):
    """400 from ``/analytics/query``: the query itself was refused (the API may have changed)."""


@dataclass(frozen=True)
class KeyRef:
    """A key plus words for messages: which kind it is and where it came from (never its value)."""

    value: str = field(repr=False)  # never shown, not even in a repr
    kind: str  # "management key" | "API key"
    origin: str  # "env OPENROUTER_MANAGEMENT_KEY", "flag --management-key", ...

    def describe(self) -> str:
        return f"the {self.kind} from {self.origin}"


def error_message(response: httpx.Response) -> str | None:
    """``error.message`` of OpenRouter's error body, or ``None`` when the body is not one."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message") is not None:
        return str(error["message"])[:300]
    return None


def failure(
    response: httpx.Response, what: str, key: KeyRef | None, needs: str, base_url: str
) -> OrbcastError:
    """The error for a response nobody handled: the caller raises it."""
    status = response.status_code
    message = error_message(response) or response.reason_phrase or "no message"
    who = key.describe() if key else "no key"
    if status == 401:
        return AuthError(f"OpenRouter refused {who} ({what}: 401 {message})", hint=needs)
    if status == 403:
        return AuthError(f"OpenRouter: {message} ({what}: 403 for {who})", hint=needs)
    if status == 402:
        return InsufficientCredits(
            f"OpenRouter: insufficient credits ({what}: 402 {message})",
            hint=f"add credits at {CREDITS_URL} or raise the key's credit limit; "
            "GET /key shows limit_remaining",
        )
    if status in (404, 405, 415):
        return EndpointNotFound(
            f"{what} answered {status} at {base_url}: not the OpenRouter API",
            hint="check --openrouter-url / OPENROUTER_BASE_URL (default https://openrouter.ai/api/v1)",
        )
    if status in RETRYABLE_OPENROUTER or status >= 500:
        if status == 429:
            after = response.headers.get("Retry-After")
            return ServiceUnavailable(
                f"OpenRouter kept rate-limiting {what} (429 {message}"
                + (f", Retry-After {after}" if after else "")
                + ")",
                hint="lower --concurrency or re-run later: records already fetched are kept",
            )
        return ServiceUnavailable(
            f"OpenRouter {what}: HTTP {status} {message}, still failing after retries",
            hint="OpenRouter may be having trouble (https://status.openrouter.ai); "
            "re-run later: records already fetched are kept",
        )
    return OrbcastError(
        f"unexpected answer from OpenRouter {what}: HTTP {status} {message}",
        hint="the API may have changed; please report this with the message above",
    )
