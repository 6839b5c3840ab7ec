"""HTTP client for the OpenRouter endpoints orbcast reads: ``/analytics/query``, ``/generation``,
``/generation/content`` and ``/key``.

Every failure becomes one of orbcast's errors with a hint: 401/403 -> :class:`AuthError` naming the key
type needed, 402 -> :class:`InsufficientCredits`, 5xx/524/529/timeouts/dropped connections retried with
:mod:`orbcast.retry` and then :class:`ServiceUnavailable`. A 404 on ``/generation`` is retried while the
generation is young (records appear late) and is a per-record :class:`GenerationUnavailable` after that.
429 honours ``Retry-After`` and halves the concurrency of :class:`AdaptiveLimiter`, which grows back after
a run of successes. Analytics requests are paced by :class:`AnalyticsPacer` (64 requests/minute).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson

from orbcast.config import Settings
from orbcast.errors import AuthError, ConfigError, ServiceUnavailable
from orbcast.openrouter_errors import (
    MANAGEMENT_KEYS_URL,
    MANAGEMENT_ONLY,
    OTHER_SOURCES,
    AnalyticsRejected,
    AnalyticsTimeout,
    GenerationUnavailable,
    InsufficientCredits,
    KeyRef,
    error_message,
    failure,
)
from orbcast.pacing import AdaptiveLimiter, AnalyticsPacer, Cancelled
from orbcast.retry import (
    RETRYABLE_OPENROUTER,
    Backoff,
    describe_transport_error,
    new_client,
    send_with_retries,
)

__all__ = [  # re-exported: callers import the errors from here
    "MANAGEMENT_KEYS_URL",
    "MANAGEMENT_ONLY",
    "OTHER_SOURCES",
    "AnalyticsRejected",
    "AnalyticsTimeout",
    "GenerationUnavailable",
    "InsufficientCredits",
    "KeyRef",
    "OpenRouterClient",
    "AnalyticsPage",
]

ANALYTICS_ROW_LIMIT = 10_000
LATE_WINDOW_S = 600.0  # a 404 for a generation younger than this means "not there yet"
UNKNOWN_AGE_TRIES = 3  # tries for a 404 when the generation's age is unknown
GENERATION_POLICY = Backoff(initial=0.5, maximum=30.0, max_attempts=8, max_elapsed=300.0)
ANALYTICS_POLICY = Backoff(initial=2.0, maximum=60.0, max_attempts=6, max_elapsed=300.0)
LATE_POLICY = Backoff(initial=1.0, maximum=30.0, max_attempts=8, max_elapsed=LATE_WINDOW_S)
_ID_TIME = re.compile(r"^gen-(\d{10})-")

RetryHook = Callable[[str, str, float], None]  # (what, reason, wait seconds)


@dataclass
class AnalyticsPage:
    rows: list[dict[str, Any]]
    truncated: bool


def http_timeout() -> float:
    """Seconds per request (connect and read); ``ORBCAST_HTTP_TIMEOUT`` overrides the default 30."""
    try:
        return max(0.05, float(os.environ.get("ORBCAST_HTTP_TIMEOUT", "30")))
    except ValueError:
        return 30.0


def created_hint_from_id(gen_id: str, now: float | None = None) -> float | None:
    """Current ids look like ``gen-<unix seconds>-…``; used only to tell a late 404 from an old one."""
    match = _ID_TIME.match(gen_id)
    if not match:
        return None
    when, now = float(match.group(1)), now or time.time()
    return when if now - 5 * 365 * 86400 < when < now + 86400 else None


def key_from_settings(settings: Settings) -> KeyRef | None:
    """The key for every endpoint: the management key first, the API key as fallback."""
    if settings.management_key:
        return KeyRef(settings.management_key, "management key", settings.source("management_key"))
    if settings.openrouter_key:
        return KeyRef(settings.openrouter_key, "API key", settings.source("openrouter_key"))
    return None


class OpenRouterClient:
    """One connection pool shared by every worker thread. ``stop`` cancels waits and retries at once."""

    def __init__(
        self,
        base_url: str,
        *,
        key: KeyRef | None,
        concurrency: int = 8,
        state_dir: str | None = None,
        stop: threading.Event | None = None,
        on_retry: RetryHook | None = None,
        log: Callable[[str], None] | None = None,
        timeout: float | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.stop = stop or threading.Event()
        self.limiter = AdaptiveLimiter(concurrency, self.stop)
        self.pacer = AnalyticsPacer(state_dir)
        self.on_retry = on_retry
        self.log = log or (lambda _msg: None)
        self.analytics_requests = 0
        self._generation_ok = False
        self._timeout = timeout or http_timeout()
        self._auth = {"Authorization": f"Bearer {key.value}"} if key else {}
        self._tls = httpx.create_ssl_context()  # one for every pool (each costs ~1 MB); honours SSL_CERT_FILE
        self.http = new_client(self.base_url, headers=self._auth, timeout=self._timeout, verify=self._tls)
        # Per-generation requests use one small pool per worker thread: a shared pool of N connections
        # costs O(N) work per request in httpcore, which dominates CPU at high concurrency.
        self._local = threading.local()
        self._pools: list[httpx.Client] = []
        self._pools_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> OpenRouterClient:
        return cls(
            settings.openrouter_url,
            key=key_from_settings(settings),
            state_dir=settings.state_dir,
            **kwargs,
        )

    def close(self) -> None:
        self.http.close()
        with self._pools_lock:
            pools, self._pools = self._pools, []
        for pool in pools:
            pool.close()

    def _worker_http(self) -> httpx.Client:
        pool: httpx.Client | None = getattr(self._local, "http", None)
        if pool is None:
            limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
            pool = new_client(
                self.base_url, headers=self._auth, timeout=self._timeout, limits=limits, verify=self._tls
            )
            self._local.http = pool
            with self._pools_lock:
                self._pools.append(pool)
        return pool

    def __enter__(self) -> OpenRouterClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------- plumbing

    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise Cancelled()

    def _call(
        self,
        method: str,
        path: str,
        what: str,
        *,
        policy: Backoff,
        gated: bool,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> httpx.Response:
        if self.key is None:
            raise ConfigError(
                f"{what} needs an OpenRouter key: --management-key / OPENROUTER_MANAGEMENT_KEY "
                "or --openrouter-key / OPENROUTER_API_KEY",
                hint="set it with a flag, an environment variable, or in the config file",
            )
        content = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else None
        if params:
            path = f"{path}?{urlencode(params)}"

        def send() -> httpx.Response:
            if self.stop.is_set():
                raise Cancelled()
            if gated:
                self.limiter.acquire()
            response: httpx.Response | None = None
            try:
                http = self._worker_http() if gated else self.http
                response = http.request(method, path, content=content, headers=headers)
                return response
            finally:
                if gated:
                    self.limiter.release(response)

        def retried(attempt: int, reason: str, wait: float) -> None:
            self.log(f"{what}: {reason}, retry {attempt} in {wait:.2f}s")
            if self.on_retry is not None:
                self.on_retry(what, reason, wait)

        try:
            response = send_with_retries(
                send,
                retryable=RETRYABLE_OPENROUTER,
                policy=policy,
                on_retry=retried,
                sleep=self._sleep,
                should_stop=self.stop.is_set,
            )
        except httpx.TransportError as exc:
            if self.stop.is_set():
                raise Cancelled() from None
            raise ServiceUnavailable(
                f"OpenRouter {what}: {describe_transport_error(exc)} ({self.base_url}), "
                f"{policy.max_attempts} tries",
                hint="check the network and --openrouter-url; re-run later: records already fetched are kept",
            ) from None
        if self.stop.is_set() and response.status_code in RETRYABLE_OPENROUTER:
            raise Cancelled()
        return response

    @staticmethod
    def _json_data(response: httpx.Response, what: str) -> Any:
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise ServiceUnavailable(f"OpenRouter {what} answered 200 with a body that is not JSON") from None
        if not isinstance(body, dict) or "data" not in body:
            raise ServiceUnavailable(f"OpenRouter {what} answered 200 without a 'data' object")
        return body["data"]

    # ------------------------------------------------------------------------- endpoints

    def key_info(self) -> dict[str, Any]:
        """``GET /key``: label, limits, usage, ``is_management_key`` (works with any key)."""
        what = "GET /key"
        response = self._call("GET", "/key", what, policy=GENERATION_POLICY, gated=False)
        if response.status_code != 200:
            raise failure(
                response, what, self.key, "check --openrouter-key / --management-key", self.base_url
            )
        data = self._json_data(response, what)
        return data if isinstance(data, dict) else {}

    def analytics(self, body: dict[str, Any]) -> AnalyticsPage:
        """``POST /analytics/query``, paced to 64 requests/minute. Raises :class:`AnalyticsTimeout` on 408."""
        what = "POST /analytics/query"
        key = self.key
        self.pacer.wait(self._sleep)
        self.analytics_requests += 1
        response = self._call(
            "POST", "/analytics/query", what, policy=ANALYTICS_POLICY, gated=False, body=body
        )
        status = response.status_code
        if status == 200:
            data = self._json_data(response, what)
            rows = data.get("data") if isinstance(data, dict) else None
            meta = data.get("metadata") if isinstance(data, dict) else None
            if not isinstance(rows, list):
                raise ServiceUnavailable(f"OpenRouter {what} answered without data.data rows")
            meta = meta if isinstance(meta, dict) else {}
            rows = [row for row in rows if isinstance(row, dict)]
            limit = body.get("limit", ANALYTICS_ROW_LIMIT)
            truncated = bool(meta.get("truncated")) or len(rows) >= limit
            return AnalyticsPage(rows, truncated)
        if status == 408:
            raise AnalyticsTimeout(error_message(response) or "Operation timed out")
        if status == 403:
            server = error_message(response)
            extra = f" (OpenRouter said: {server})" if server and server != MANAGEMENT_ONLY else ""
            raise AuthError(
                f"{MANAGEMENT_ONLY}: listing generations uses {what}, and "
                f"{key.describe() if key else 'the key'} is not a management key{extra}",
                hint=f"create a management key at {MANAGEMENT_KEYS_URL} and set --management-key / "
                f"OPENROUTER_MANAGEMENT_KEY, {OTHER_SOURCES}",
            )
        if status == 400:
            raise AnalyticsRejected(
                f"OpenRouter rejected the analytics query (400 {error_message(response) or 'bad request'})",
                hint="the analytics API may have changed; please report this with the message above",
            )
        raise failure(
            response,
            what,
            key,
            f"listing generations needs a management key ({MANAGEMENT_KEYS_URL}): check --management-key / "
            f"OPENROUTER_MANAGEMENT_KEY, {OTHER_SOURCES}",
            self.base_url,
        )

    def generation(self, gen_id: str, created_hint: float | None = None) -> dict[str, Any]:
        """``GET /generation?id=``'s ``data``. ``created_hint`` (unix seconds, the latest the generation can
        have been made) decides whether a 404 is "not there yet" (retried) or final."""
        what = "GET /generation"
        if created_hint is None:
            created_hint = created_hint_from_id(gen_id)
        needs = (
            "GET /generation takes any API key or management key of the account that made the generations: "
            "check --management-key / OPENROUTER_MANAGEMENT_KEY or --openrouter-key / OPENROUTER_API_KEY"
        )
        late_tries = 0
        while True:
            response = self._call(
                "GET",
                "/generation",
                what,
                policy=GENERATION_POLICY,
                gated=True,
                params={"id": gen_id},
            )
            status = response.status_code
            if status == 200:
                data = self._json_data(response, what)
                if not isinstance(data, dict):
                    raise GenerationUnavailable(gen_id, "the answer's data is not an object")
                self._generation_ok = True
                return data
            if status == 404 and error_message(response) is not None:
                age = None if created_hint is None else time.time() - created_hint
                young = age < LATE_WINDOW_S if age is not None else late_tries + 1 < UNKNOWN_AGE_TRIES
                if young and late_tries + 1 < LATE_POLICY.max_attempts:
                    late_tries += 1
                    wait = LATE_POLICY.delay(late_tries)
                    self.log(f"{what} {gen_id}: 404, not available yet; retry {late_tries} in {wait:.2f}s")
                    if self.on_retry is not None:
                        self.on_retry(what, "404 (not available yet)", wait)
                    self._sleep(wait)
                    continue
                reason = "not found (404)"
                if late_tries:
                    reason += f" after {late_tries + 1} tries; it may still be processing: re-run later"
                raise GenerationUnavailable(gen_id, reason)
            if status == 403 and self._generation_ok:
                # Other generations worked with this key: this one belongs to someone else.
                raise GenerationUnavailable(
                    gen_id, f"no access (403 {error_message(response) or ''})".strip()
                )
            raise failure(response, what, self.key, needs, self.base_url)

    def content(self, gen_id: str) -> dict[str, Any] | None:
        """``GET /generation/content?id=``'s ``data``; ``None`` when OpenRouter has none (404)."""
        what = "GET /generation/content"
        response = self._call(
            "GET",
            "/generation/content",
            what,
            policy=GENERATION_POLICY,
            gated=True,
            params={"id": gen_id},
        )
        if response.status_code == 200:
            data = self._json_data(response, what)
            return data if isinstance(data, dict) else None
        if response.status_code == 404 and error_message(response) is not None:
            return None
        raise failure(
            response,
            what,
            self.key,
            f"--with-content may need a management key ({MANAGEMENT_KEYS_URL}); content exists only for "
            "generations made while Input & Output Logging was on. Drop --with-content to fetch without it",
            self.base_url,
        )
