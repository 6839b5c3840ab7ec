"""Retries shared by every HTTP client: exponential back-off with jitter, ``Retry-After`` honoured.

OTLP spec: retry 429/502/503/504 and dropped connections, never other 4xx, never a 200 with a partial
success. OpenRouter additionally answers 500/524/529 for transient trouble. ``ORBCAST_BACKOFF_SCALE``
(a float, default 1) shrinks every wait; the test suite sets it so faults do not cost wall time.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from orbcast import __version__

USER_AGENT = f"orbcast/{__version__}"
RETRYABLE_OTLP = frozenset({429, 502, 503, 504})
RETRYABLE_OPENROUTER = frozenset({429, 500, 502, 503, 504, 524, 529})
RETRYABLE_TEMPO = frozenset({429, 500, 502, 503, 504})


def backoff_scale() -> float:
    try:
        return max(0.0, float(os.environ.get("ORBCAST_BACKOFF_SCALE", "1")))
    except ValueError:
        return 1.0


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds (``"5"``) or an HTTP date; ``None`` when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off with full jitter around the nominal delay, bounded in count and time."""

    initial: float = 0.5
    maximum: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.5  # the delay is drawn from [d * (1 - jitter), d * (1 + jitter)]
    max_attempts: int = 8  # total tries, the first included
    max_elapsed: float = 300.0  # seconds across all tries
    max_retry_after: float = 300.0  # a Retry-After longer than this is treated as "give up"

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        nominal = min(self.maximum, self.initial * self.multiplier ** (retry - 1))
        jittered = nominal * random.uniform(1 - self.jitter, 1 + self.jitter)
        if retry_after is not None:
            jittered = max(jittered, retry_after)
        return jittered * backoff_scale()


DNS_MARKERS = (  # in a transport error's text (lower case): the host name did not resolve
    "name or service not known",
    "temporary failure in name resolution",
    "nodename nor servname",
    "no address associated",
    "getaddrinfo",
    "name resolution",
)


def describe_transport_error(exc: BaseException) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        text = str(exc).lower()
        if any(marker in text for marker in DNS_MARKERS):
            return "DNS lookup failed (is the host name right?)"
        if "certificate" in text or "ssl" in text:
            return "TLS handshake failed"
        if "refused" in text:
            return "connection refused"
        return "could not connect"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return "connection dropped"
    return type(exc).__name__


def send_with_retries(
    send: Callable[[], httpx.Response],
    *,
    retryable: frozenset[int],
    policy: Backoff | None = None,
    on_retry: Callable[[int, str, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    should_stop: Callable[[], bool] | None = None,
) -> httpx.Response:
    """Call ``send`` until it returns a non-retryable response, retries are exhausted, or time runs out.

    Returns the last response (retryable or not) or raises the last transport error. ``on_retry``
    gets (retry number, reason, delay) before each wait.
    """
    policy = policy or Backoff()
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            response = send()
        except httpx.TransportError as exc:
            if attempt >= policy.max_attempts:
                raise
            reason, retry_after = describe_transport_error(exc), None
            last: httpx.Response | httpx.TransportError = exc
        else:
            if response.status_code not in retryable or attempt >= policy.max_attempts:
                return response
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is not None and retry_after > policy.max_retry_after:
                return response
            reason, last = f"HTTP {response.status_code}", response
        wait = policy.delay(attempt, retry_after)
        if time.monotonic() - started + wait > policy.max_elapsed * max(backoff_scale(), 1e-9) or (
            should_stop is not None and should_stop()
        ):
            if isinstance(last, httpx.Response):
                return last
            raise last
        if on_retry is not None:
            on_retry(attempt, reason, wait)
        sleep(wait)


def new_client(
    base_url: str = "", headers: dict[str, str] | None = None, timeout: float = 30.0, **kwargs: object
) -> httpx.Client:
    """An httpx client with orbcast's User-Agent; callers own its lifetime."""
    all_headers = {"User-Agent": USER_AGENT, **(headers or {})}
    return httpx.Client(base_url=base_url, headers=all_headers, timeout=timeout, **kwargs)  # type: ignore[arg-type]
