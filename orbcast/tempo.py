"""Tempo HTTP client: search, trace by ID and TraceQL metrics, with retries and clear errors.

Paths are relative to the configured Tempo URL (Grafana Cloud: ``https://tempo-….grafana.net/tempo``).
Auth comes from :meth:`Settings.tempo_auth_headers`. 429, 5xx and dropped connections are retried with
back-off; 401/403 exit 4, 404 exit 5, a 400 (Tempo writes its reason as ``text/plain``) exit 7 with
Tempo's own words and the query as sent. Two 400s are understood rather than shown: a window longer than
the server allows (``range specified by start and end exceeds 168h0m0s``) and a limit above its maximum.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import httpx
import orjson

from orbcast.config import Settings
from orbcast.console import UI
from orbcast.errors import AuthError, EndpointNotFound, QueryRejected, ServiceUnavailable
from orbcast.retry import RETRYABLE_TEMPO, Backoff, describe_transport_error, new_client, send_with_retries
from orbcast.tempo_json import Span, TraceSplitter, pad_trace_id, trace_spans

T = TypeVar("T")
AUTH_HINT = (
    "queries need the Tempo user (the 'User' on the stack's Tempo card, usually not the OTLP instance "
    "ID) and a token with the traces:read scope: check --tempo-user / ORBCAST_TEMPO_USER and "
    "--tempo-token / ORBCAST_TEMPO_TOKEN"
)
PATH_HINT = (
    "check --tempo-url / ORBCAST_TEMPO_URL: for Grafana Cloud it ends in /tempo "
    "(https://tempo-prod-NN-REGION.grafana.net/tempo); a local Tempo is http://HOST:3200"
)
_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")
_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_RANGE_TOO_LONG = re.compile(r"exceeds (?:the maximum allowed duration of )?(\d[\dhmsuµn.]*)")
_LIMIT_TOO_HIGH = re.compile(r"limit (\d+) exceeds max limit (?:of )?(\d+)")
BODY_SHOWN = 2000


def go_duration_seconds(text: str) -> float | None:
    """``168h0m0s`` -> 604800.0; ``None`` when unreadable."""
    parts = _GO_DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _GO_UNITS[u] for n, u in parts)


class RangeTooLong(QueryRejected):
    """Tempo refused the window as longer than it allows; ``max_seconds`` is its limit when stated."""

    def __init__(self, message: str, max_seconds: float | None, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.max_seconds = max_seconds


class LimitTooHigh(QueryRejected):
    def __init__(self, message: str, max_limit: int, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.max_limit = max_limit


def epoch(moment: datetime) -> int:
    return int(moment.astimezone(UTC).timestamp())


@dataclass
class SearchPage(Generic[T]):
    """One ``/api/search`` answer: the converted traces and what Tempo said about completeness."""

    items: list[T]
    returned: int  # traces in the answer
    limit: int
    metrics: dict[str, Any] = field(default_factory=dict)
    status: str | None = None
    message: str | None = None

    @property
    def hit_limit(self) -> bool:
        return self.returned >= self.limit

    @property
    def jobs_incomplete(self) -> bool:
        done, total = self.metrics.get("completedJobs"), self.metrics.get("totalJobs")
        return isinstance(done, int) and isinstance(total, int) and done < total

    @property
    def partial(self) -> bool:
        return (self.status or "").upper() == "PARTIAL"

    @property
    def truncated(self) -> bool:
        """Tempo has no "truncated" flag: the limit reached, jobs left over or a partial status say it."""
        return self.hit_limit or self.jobs_incomplete or self.partial


class TempoClient:
    """One connection to Tempo's query API. Use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        settings: Settings,
        timeout: float = 60.0,
        *,
        ui: UI | None = None,
        policy: Backoff | None = None,
    ) -> None:
        settings.require("tempo_url", why="reading from Tempo")
        self.base_url = str(settings.tempo_url).rstrip("/")
        self.ui = ui
        self.policy = policy or Backoff(max_attempts=6, max_elapsed=120.0)
        headers = {"Accept": "application/json", **settings.tempo_auth_headers()}
        plain = self.base_url.startswith("http://")  # no TLS: skip loading the CA bundle (tens of ms)
        self._http = new_client(
            self.base_url, headers=headers, timeout=timeout, **({"verify": False} if plain else {})
        )
        self.requests = 0
        self.last_truncated = False

    def __enter__(self) -> TempoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------------- transport

    def _detail(self, message: str) -> None:
        if self.ui is not None:
            self.ui.detail(message)

    def _send(self, path: str, params: dict[str, Any], stream: bool) -> httpx.Response:
        request = self._http.build_request("GET", path, params=params)
        self._detail(f"GET {self.base_url}{path} {_show_params(params)}")

        def send() -> httpx.Response:
            self.requests += 1
            response = self._http.send(request, stream=stream)
            if stream and response.status_code != 200:
                response.read()
                response.close()
            return response

        def on_retry(n: int, reason: str, wait: float) -> None:
            self._detail(f"Tempo {path}: {reason}; retry {n} in {wait:.1f}s")

        try:
            return send_with_retries(send, retryable=RETRYABLE_TEMPO, policy=self.policy, on_retry=on_retry)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(
                f"Tempo at {self.base_url}: {describe_transport_error(exc)} after retries",
                hint="check the Tempo URL and your network; a local Tempo listens on port 3200",
            ) from None

    def _check(self, response: httpx.Response, path: str, query: str | None) -> None:
        """Raise the documented error for any non-200 answer."""
        status = response.status_code
        if status == 200:
            return
        text = response.text.strip()[:BODY_SHOWN] if response.content else ""
        where = f"Tempo {path}"
        if status in (401, 403):
            raise AuthError(f"{where}: HTTP {status} {text or 'authentication refused'}", hint=AUTH_HINT)
        if status == 404:
            raise EndpointNotFound(f"{where}: HTTP 404 at {self.base_url}{path}", hint=PATH_HINT)
        if status == 400:
            sent = f"query sent: {query}" if query is not None else None
            limit = _LIMIT_TOO_HIGH.search(text)
            if limit:
                raise LimitTooHigh(f"Tempo: {text}", int(limit.group(2)), hint=sent)
            if "exceeds" in text and ("range" in text or "duration" in text):
                match = _RANGE_TOO_LONG.search(text)
                seconds = go_duration_seconds(match.group(1).rstrip(".")) if match else None
                raise RangeTooLong(f"Tempo: {text}", seconds, hint=sent)
            raise QueryRejected(f"Tempo rejected the request: {text or 'HTTP 400'}", hint=sent)
        if status in RETRYABLE_TEMPO:
            raise ServiceUnavailable(f"{where}: HTTP {status} after retries {text}".rstrip())
        raise ServiceUnavailable(f"{where}: unexpected HTTP {status} {text}".rstrip())

    def _json(self, response: httpx.Response, path: str) -> dict[str, Any]:
        try:
            doc = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict):
            kind = response.headers.get("content-type", "no content type")
            raise EndpointNotFound(
                f"Tempo {path}: the answer is not Tempo's JSON ({kind})", hint=PATH_HINT
            ) from None
        return doc

    def get_json(
        self, path: str, params: dict[str, Any] | None = None, *, query: str | None = None
    ) -> dict[str, Any]:
        response = self._send(path, params or {}, stream=False)
        self._check(response, path, query)
        return self._json(response, path)

    # ------------------------------------------------------------------------- search

    def search(
        self,
        query: str,
        start: datetime,
        end: datetime,
        *,
        limit: int,
        spss: int | None = None,
        convert: Callable[[dict[str, Any]], T | None],
    ) -> SearchPage[T]:
        """One ``/api/search`` request (start and end always sent), each trace passed through ``convert``.

        The body is cut per trace while it streams. A connection dropped mid-body restarts the request.
        """
        params: dict[str, Any] = {"q": query, "start": epoch(start), "end": max(epoch(end), epoch(start) + 1)}
        params["limit"] = limit
        if spss:
            params["spss"] = spss
        attempts = 0
        while True:
            attempts += 1
            response = self._send("/api/search", params, stream=True)
            if response.status_code != 200:
                self._check(response, "/api/search", query)
            try:
                return self._read_page(response, limit, convert)
            except httpx.TransportError as exc:
                if attempts >= self.policy.max_attempts:
                    raise ServiceUnavailable(
                        f"Tempo at {self.base_url}: {describe_transport_error(exc)} "
                        "while reading a search answer"
                    ) from None
                self._detail(
                    f"Tempo /api/search: {describe_transport_error(exc)}; starting the request again"
                )
            except (orjson.JSONDecodeError, ValueError) as exc:
                raise EndpointNotFound(
                    f"Tempo /api/search: the answer is not Tempo's JSON ({exc})", hint=PATH_HINT
                ) from None
            finally:
                response.close()

    @staticmethod
    def _read_page(
        response: httpx.Response, limit: int, convert: Callable[[dict[str, Any]], T | None]
    ) -> SearchPage[T]:
        splitter = TraceSplitter()
        loads = orjson.loads
        items: list[T] = []
        returned = 0
        # Parsing makes ~40 small containers per trace and none of them forms a reference cycle: the
        # cyclic collector would only walk them again and again (a third of the time on 50,000 traces).
        collecting = gc.isenabled()
        gc.disable()
        try:
            for chunk in response.iter_bytes():
                for piece in splitter.feed(chunk):  # the spanSet copy already cut out: parse as is
                    returned += 1
                    trace = loads(piece)
                    if type(trace) is not dict:
                        raise ValueError("search trace is not a JSON object")
                    item = convert(trace)
                    if item is not None:
                        items.append(item)
        finally:
            if collecting:
                if not gc.get_freeze_count():  # move what was just made to the oldest generation, so
                    gc.freeze()  # the next collections do not walk 50,000 rows again (nothing is lost:
                    gc.unfreeze()  # a full collection still sees them)
                gc.enable()
        for trace in splitter.finish():
            returned += 1
            item = convert(trace)
            if item is not None:
                items.append(item)
        rest = splitter.rest
        metrics = rest.get("metrics") if isinstance(rest.get("metrics"), dict) else {}
        return SearchPage(
            items=items,
            returned=returned,
            limit=limit,
            metrics=metrics or {},
            status=rest.get("status"),
            message=rest.get("message"),
        )

    def search_trace_ids(self, query: str, start: datetime, end: datetime, limit: int) -> set[str]:
        """The full 32-hex trace IDs matching ``query`` in [start, end].

        Windows longer than Tempo allows are split. :attr:`last_truncated` tells whether any answer hit
        ``limit`` or came back incomplete.
        """
        from orbcast.tempo_search import search_window

        outcome = search_window(
            self,
            query,
            start,
            end,
            limit=limit,
            spss=1,
            convert=lambda t: pad_trace_id(str(t.get("traceID", ""))),
        )
        self.last_truncated = outcome.truncated
        return set(outcome.items)

    # ------------------------------------------------------------------------- trace by ID

    def trace(self, trace_id_hex: str) -> list[Span] | None:
        """Every span of one trace (v2 by ID, without start/end so backfilled traces are found too).

        ``None`` when Tempo does not hold it (v2 answers 200 with an empty trace; v1 404s).
        """
        trace_id = pad_trace_id(trace_id_hex)
        path = f"/api/v2/traces/{trace_id}"
        response = self._send(path, {}, stream=False)
        if response.status_code == 404:
            return self._trace_v1(trace_id)
        self._check(response, path, None)
        spans = trace_spans(self._json(response, path))
        return spans or None

    def _trace_v1(self, trace_id: str) -> list[Span] | None:
        """Tempo before v2 trace-by-ID; a 404 there means "no such trace" if the API answers at all."""
        path = f"/api/traces/{trace_id}"
        response = self._send(path, {}, stream=False)
        if response.status_code == 404:
            echo = self._send("/api/echo", {}, stream=False)
            if echo.status_code == 200:
                return None
            raise EndpointNotFound(f"Tempo {path}: HTTP 404 at {self.base_url}{path}", hint=PATH_HINT)
        self._check(response, path, None)
        return trace_spans(self._json(response, path)) or None

    def trace_exists(self, trace_id_hex: str) -> bool:
        """Whether Tempo holds any span of the trace (v2 by ID, no start/end; empty trace = False)."""
        return self.trace(trace_id_hex) is not None

    # ------------------------------------------------------------------------- metrics

    def metrics_instant(self, query: str, start: datetime, end: datetime) -> dict[str, Any]:
        """``/api/metrics/query``: one value per series over [start, end]."""
        params = {"q": query, "start": epoch(start), "end": max(epoch(end), epoch(start) + 1)}
        return self.get_json("/api/metrics/query", params, query=query)


def _show_params(params: dict[str, Any]) -> str:
    shown = []
    for key, value in params.items():
        if key in ("start", "end") and isinstance(value, int):
            value = f"{value} ({datetime.fromtimestamp(value, UTC).strftime('%Y-%m-%dT%H:%M:%SZ')})"
        shown.append(f"{key}={value}")
    return " ".join(shown)
