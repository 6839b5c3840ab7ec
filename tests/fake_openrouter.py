"""A fake OpenRouter on loopback serving the documented shapes (reference/openrouter.md §3-8).

- ``POST /api/v1/analytics/query``: management key only (else 403 "Only management keys can perform
  this operation"); count metrics as strings; ``metadata.truncated``; the default ``limit`` of 1000
  applied when none is sent; 400 for a missing ``time_range``, a 31-day+ ``generation_id`` window, minute
  granularity over 3 h, more than 2 dimensions. The time range is inclusive at both ends (undocumented
  upstream), so adjacent slices overlap on boundary generations.
- ``GET /api/v1/generation``, ``/generation/content`` (management key, per the spec), ``/key``.
- Faults on demand: ``fail(route, 503, times=3)``, 429 with ``Retry-After``, ``"drop"`` (connection
  closed without an answer), ``"slow"``; late 404s (``late[id] = n``); a fixed latency per request.
"""

from __future__ import annotations

import bisect
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from dateutil import parser as dateparser

MGMT_KEY = "sk-or-v1-MGMTfake0123456789abcdefghijklmnopqrstuvwx"
API_KEY = "sk-or-v1-APIfake9876543210zyxwvutsrqponmlkjihgfedc"
MANAGEMENT_ONLY = "Only management keys can perform this operation"
ROUTES = {
    "/api/v1/generation": "generation",
    "/api/v1/generation/content": "content",
    "/api/v1/analytics/query": "analytics",
    "/api/v1/key": "key",
}


def iso_z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def make_generation(index: int, created: datetime) -> dict[str, Any]:
    """One ``/generation`` data object shaped like the reference's real sample."""
    gen_id = f"gen-{int(created.timestamp())}-{index:020d}"
    return {
        "id": gen_id,
        "created_at": iso_z(created),
        "model": "google/gemini-3.5-flash-lite-20260721" if index % 2 else "openai/gpt-5-mini-20260801",
        "app_id": None,
        "external_user": f"user-{index % 7}",
        "streamed": True,
        "cancelled": False,
        "latency": 600 + index % 100,
        "moderation_latency": None,
        "generation_time": 700 + index % 300,
        "tokens_prompt": 6 + index % 50,
        "tokens_completion": 5 + index % 40,
        "native_tokens_prompt": 16 + index % 50,
        "native_tokens_completion": 4 + index % 40,
        "native_tokens_reasoning": 0,
        "native_tokens_cached": 0,
        "origin": "",
        "is_byok": False,
        "finish_reason": "stop",
        "native_finish_reason": "STOP",
        "service_tier": "default",
        "usage": 1.5e-05 + index * 1e-9,
        "request_id": f"req-{index}",
        "session_id": None,
        "api_type": "completions",
        "upstream_id": f"up-{index}",
        "provider_responses": [
            {
                "endpoint_id": "fe0e",
                "id": f"up-{index}",
                "is_byok": False,
                "latency": 600 + index % 100,
                "model_permaslug": "google/gemini-3.5-flash-lite-20260721",
                "provider_name": "Google",
                "status": 200,
            }
        ],
        "total_cost": 1.5e-05 + index * 1e-9,
        "cache_discount": None,
        "upstream_inference_cost": 0,
        "provider_name": "Google",
        "data_region": "global",
        "workspace_id": "d978",
    }


def make_generations(count: int, start: datetime, spacing: timedelta, first: int = 0) -> list[dict[str, Any]]:
    return [make_generation(first + i, start + spacing * i) for i in range(count)]


@dataclass
class Fault:
    action: int | str  # an HTTP status, "drop", "slow" or "ok" (answer normally)
    retry_after: str | None = None
    delay: float = 0.0


@dataclass
class Seen:
    route: str
    method: str
    query: dict[str, str]
    body: Any
    authorization: str
    at: float = field(default_factory=time.monotonic)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Without this, Nagle's algorithm and the client's delayed ACK add ~40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.server.fake.handle(self)

    def do_POST(self) -> None:  # noqa: N802
        self.server.fake.handle(self)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeOpenRouter


class FakeOpenRouter:
    def __init__(
        self,
        generations: list[dict[str, Any]] | None = None,
        *,
        latency: float = 0.0,
        truncate_at: int = 10_000,
        key_names: tuple[str, ...] = ("backend-prod", "batch-jobs"),
        record: bool = True,
    ) -> None:
        self.generations = sorted(generations or [], key=lambda g: g["created_at"])
        self.times = [dateparser.isoparse(g["created_at"]) for g in self.generations]
        self.by_id = {g["id"]: g for g in self.generations}
        self.key_name = {g["id"]: key_names[i % len(key_names)] for i, g in enumerate(self.generations)}
        self.latency = latency
        self.truncate_at = truncate_at
        self.management_keys = {MGMT_KEY}
        self.api_keys = {API_KEY}
        self.late: dict[str, int] = {}
        self.no_content: set[str] = set()
        self.credits_exhausted = False
        self.faults: dict[str, deque[Fault]] = {}
        self.record = record
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self._server: _Server | None = None

    # ------------------------------------------------------------------ control

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/v1"

    def start(self) -> FakeOpenRouter:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeOpenRouter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail(
        self,
        route: str,
        action: int | str,
        *,
        times: int = 1,
        retry_after: str | None = None,
        delay: float = 0.0,
    ) -> None:
        with self.lock:
            queue = self.faults.setdefault(route, deque())
            queue.extend(Fault(action, retry_after, delay) for _ in range(times))

    def requests(self, route: str, gen_id: str | None = None) -> list[Seen]:
        with self.lock:
            return [
                s for s in self.seen if s.route == route and (gen_id is None or s.query.get("id") == gen_id)
            ]

    # ------------------------------------------------------------------ serving

    def handle(self, h: _Handler) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        route = ROUTES.get(parts.path, "unknown")
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        auth = h.headers.get("Authorization") or ""
        with self.lock:
            if self.record:
                self.seen.append(Seen(route, h.command, query, body, auth))
            queue = self.faults.get(route)
            fault = queue.popleft() if queue else None
        if self.latency:
            time.sleep(self.latency)
        if fault is not None:
            if fault.action == "drop":
                h.close_connection = True
                return
            if fault.action == "slow":
                time.sleep(fault.delay)
            elif fault.action != "ok":
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                self._error(h, int(fault.action), "Injected fault", headers)
                return
        if route == "unknown":
            self._send(h, 404, b"Not Found", "text/plain")
            return
        token = auth.removeprefix("Bearer ").strip()
        if token not in self.management_keys | self.api_keys:
            # Echo the key back, as careless servers do: orbcast must still never print it.
            self._error(h, 401, f"Invalid API key {token}" if token else "Missing Authentication header")
            return
        management = token in self.management_keys
        if route == "key":
            self._json(h, 200, {"data": {"label": token[:10] + "...xyz", "is_management_key": management}})
        elif route == "analytics":
            if not management:
                self._error(h, 403, MANAGEMENT_ONLY)
            else:
                self._analytics(h, body)
        elif route == "generation":
            self._generation(h, query.get("id", ""))
        elif route == "content":
            gen_id = query.get("id", "")
            if not management:
                self._error(h, 403, MANAGEMENT_ONLY)
            elif gen_id not in self.by_id or gen_id in self.no_content:
                self._error(h, 404, "Resource not found")
            else:
                content = {
                    "input": {"messages": [{"role": "user", "content": f"question {gen_id}"}]},
                    "output": {"completion": f"answer {gen_id}", "reasoning": None},
                    "error": None,
                }
                self._json(h, 200, {"data": content})

    def _generation(self, h: _Handler, gen_id: str) -> None:
        if self.credits_exhausted:
            self._error(h, 402, "Insufficient credits. Add more using https://openrouter.ai/credits")
            return
        with self.lock:
            pending = self.late.get(gen_id, 0)
            if pending:
                self.late[gen_id] = pending - 1
        if pending or gen_id not in self.by_id:
            self._error(h, 404, "Generation not found")
            return
        self._json(h, 200, {"data": self.by_id[gen_id]})

    def _analytics(self, h: _Handler, body: Any) -> None:
        if not isinstance(body, dict) or not body.get("metrics"):
            self._error(h, 400, "metrics is required")
            return
        time_range = body.get("time_range")
        if not isinstance(time_range, dict) or "start" not in time_range or "end" not in time_range:
            self._error(h, 400, "the fake insists on an explicit time_range (the API default is 7 days)")
            return
        start, end = dateparser.isoparse(time_range["start"]), dateparser.isoparse(time_range["end"])
        dims = body.get("dimensions") or []
        limit = body.get("limit", 1000)
        granularity = body.get("granularity")
        if len(dims) > 2 or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            self._error(h, 400, "at most 2 dimensions; limit 1-10000")
            return
        if "generation_id" in dims and end - start > timedelta(days=31):
            self._error(h, 400, "generation_id is limited to 31-day time ranges")
            return
        if granularity == "minute" and end - start > timedelta(hours=3):
            self._error(h, 400, "minute granularity is only available for ranges of 3 hours or less")
            return
        lo = bisect.bisect_left(self.times, start)
        hi = bisect.bisect_right(self.times, end)
        selected = self.generations[lo:hi]
        metrics = body["metrics"]
        if "generation_id" not in dims:
            row: dict[str, Any] = {"request_count": str(len(selected))}
            if "total_usage" in metrics:
                row["total_usage"] = sum(g["total_cost"] for g in selected)
            rows = [row]
        else:
            rows = [self._row(g, dims, metrics, granularity) for g in selected]
        cap = min(limit, self.truncate_at)
        truncated = len(rows) > cap
        rows = rows[:cap]
        meta = {"query_time_ms": 3, "row_count": len(rows), "truncated": truncated}
        self._json(h, 200, {"data": {"data": rows, "metadata": meta}})

    def _row(
        self, gen: dict[str, Any], dims: list[str], metrics: list[str], granularity: str | None
    ) -> dict[str, Any]:
        row: dict[str, Any] = {"generation_id": gen["id"]}
        if "api_key_id" in dims:
            row["api_key_id"] = self.key_name[gen["id"]]
        if "model" in dims:
            row["model"] = gen["model"]
        values = {
            "request_count": "1",
            "total_usage": gen["total_cost"],
            "tokens_prompt": str(gen["tokens_prompt"]),
            "tokens_completion": str(gen["tokens_completion"]),
            "reasoning_tokens": str(gen["native_tokens_reasoning"]),
            "cached_tokens": str(gen["native_tokens_cached"]),
            "avg_latency": gen["latency"],
        }
        row.update({m: values[m] for m in metrics if m in values})
        if granularity == "minute":
            created = dateparser.isoparse(gen["created_at"])
            row["date__minute"] = created.strftime("%Y-%m-%d %H:%M:00")
        return row

    # ------------------------------------------------------------------ responses

    def _error(self, h: _Handler, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        body = {"error": {"code": status, "message": message}, "user_id": None}
        self._json(h, status, body, headers)

    def _json(self, h: _Handler, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._send(h, status, orjson.dumps(body), "application/json", headers)

    @staticmethod
    def _send(
        h: _Handler, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Unknown"
        head = [
            f"HTTP/1.1 {status} {reason}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(data)}",
        ]
        head += [f"{key}: {value}" for key, value in (headers or {}).items()]
        try:
            h.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)  # one write: no Nagle stall
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True
