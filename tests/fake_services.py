"""Loopback fakes of OpenRouter, an OTLP/HTTP receiver and Tempo, each scriptable to fail.

Every fake is a real threaded HTTP server on 127.0.0.1 (port chosen by the OS). The default answers
copy recorded real ones (``tests/data/tempo/*.default.json``, from ``shared/fixtures/tempo``).
``fake.script(path, Reply(...))`` overrides the answer for paths starting with ``path``; a
``Reply(delay=...)`` answers late (for timeouts), ``Reply(drop=True)`` closes the connection unanswered.
Every OTLP body the receiver gets is validated with :mod:`tests.otlp_schema`.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.otlp_schema import parse_request

FIXTURES = Path(__file__).resolve().parent / "data" / "tempo"


def fixture_response(name: str) -> dict[str, Any]:
    """The recorded response of ``<name>.default.json``: status, content_type, body."""
    return json.loads((FIXTURES / f"{name}.default.json").read_text())["response"]


def basic(user: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()


@dataclass
class Reply:
    status: int = 200
    body: Any = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False

    def encoded(self) -> tuple[bytes, str | None]:
        if isinstance(self.body, dict | list):
            return json.dumps(self.body).encode(), self.content_type or "application/json"
        if isinstance(self.body, str):
            return self.body.encode(), self.content_type or "text/plain; charset=utf-8"
        return bytes(self.body or b""), self.content_type


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes


NOT_FOUND = Reply(404, "404 page not found\n")


class FakeServer:
    """A threaded loopback HTTP server; subclasses answer in :meth:`route`."""

    def __init__(self, tls: tuple[str, str] | None = None) -> None:
        self.requests: list[Request] = []
        self._scripts: list[tuple[str, Reply | Callable[[Request], Reply]]] = []
        self._stop = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                fake.requests.append(request)
                reply = fake.answer(request)
                if reply.delay:
                    fake._stop.wait(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    return
                data, ctype = reply.encoded()
                self.send_response(reply.status)
                if ctype:
                    self.send_header("Content-Type", ctype)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.scheme = "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.httpd.server_address[1]}"

    def script(self, path: str, reply: Reply | Callable[[Request], Reply]) -> None:
        """Answer every request whose path starts with ``path`` with ``reply`` (newest script wins)."""
        self._scripts.insert(0, (path, reply))

    def answer(self, request: Request) -> Reply:
        for prefix, reply in self._scripts:
            if request.path.startswith(prefix):
                return reply(request) if callable(reply) else reply
        return self.route(request)

    def route(self, request: Request) -> Reply:
        return NOT_FOUND

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def close(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class FakeOpenRouter(FakeServer):
    """``/api/v1/key`` and ``/api/v1/analytics/query`` for the keys in ``keys`` (key -> /key data)."""

    def __init__(self, keys: dict[str, dict[str, Any]]) -> None:
        super().__init__()
        self.keys = keys
        self.queries: list[dict[str, Any]] = []

    @staticmethod
    def error(status: int, message: str) -> Reply:
        return Reply(status, {"error": {"code": status, "message": message}, "user_id": None})

    def route(self, request: Request) -> Reply:
        auth = request.headers.get("authorization", "")
        key = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        if request.path == "/api/v1/key" and request.method == "GET":
            if key not in self.keys:
                return self.error(401, "Missing Authentication header" if key is None else "User not found.")
            return Reply(200, {"data": self.keys[key]})
        if request.path == "/api/v1/analytics/query" and request.method == "POST":
            if key not in self.keys:
                return self.error(401, "User not found.")
            if not self.keys[key].get("is_management_key"):
                return self.error(403, "Only management keys can perform this operation")
            query = json.loads(request.body)
            if not query.get("metrics"):
                return self.error(400, "metrics is required")
            self.queries.append(query)
            rows = [{"request_count": "3"}]
            meta = {"query_time_ms": 4, "row_count": 1, "truncated": False}
            return Reply(200, {"data": {"data": rows, "metadata": meta}})
        return self.error(404, "Not Found")


class FakeOTLP(FakeServer):
    """An OTLP/HTTP JSON receiver under ``prefix`` that wants Basic user:token and ``traces:write``."""

    def __init__(
        self,
        user: str,
        token: str,
        prefix: str = "/otlp",
        scopes: frozenset[str] = frozenset({"traces:write"}),
    ) -> None:
        super().__init__()
        self.auth, self.prefix, self.scopes = basic(user, token), prefix, scopes
        self.exports: list[Any] = []  # ExportTraceServiceRequest messages, schema-checked
        self.traces: dict[str, list[dict[str, Any]]] = {}  # hex trace id -> resourceSpans (as pushed)

    def route(self, request: Request) -> Reply:
        if request.path != f"{self.prefix}/v1/traces":
            return NOT_FOUND
        if request.method != "POST":
            return Reply(405, "405 method not allowed\n")
        if request.headers.get("authorization") != self.auth:
            return Reply(
                401, {"status": "error", "error": "authentication error: invalid authentication credentials"}
            )
        if "traces:write" not in self.scopes:
            return Reply(403, {"status": "error", "error": "authentication error: invalid scope requested"})
        ctype = request.headers.get("content-type", "")
        if not ctype.startswith(("application/json", "application/x-protobuf")):
            recorded = fixture_response("push-wrong-content-type")
            return Reply(recorded["status"], recorded["body"], recorded["content_type"])
        message = parse_request(request.body, ctype, request.headers.get("content-encoding"))
        self.exports.append(message)
        for rs in json.loads(request.body).get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                for span in ss.get("spans", []):
                    self.traces.setdefault(span["traceId"], []).append(rs)
        recorded = fixture_response("push-empty")
        return Reply(recorded["status"], recorded["body"])


class FakeTempo(FakeServer):
    """Tempo's query API under ``prefix``: echo, build info, search tags, v2 trace by id.

    A trace pushed to ``otlp`` becomes visible after ``visible_after`` lookups (never when ``None``);
    before that the lookup answers the recorded ``200 {"trace":{},"metrics":{}}``.
    """

    def __init__(
        self,
        user: str,
        token: str,
        prefix: str = "/tempo",
        scopes: frozenset[str] = frozenset({"traces:read"}),
        otlp: FakeOTLP | None = None,
        visible_after: int | None = 2,
        tls: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(tls=tls)
        self.auth, self.prefix, self.scopes = basic(user, token), prefix, scopes
        self.otlp, self.visible_after = otlp, visible_after
        self.lookups: dict[str, int] = {}

    def route(self, request: Request) -> Reply:
        if not request.path.startswith(self.prefix + "/api/"):
            return NOT_FOUND
        path = request.path.removeprefix(self.prefix)
        if path == "/api/echo":
            recorded = fixture_response("echo")
            return Reply(recorded["status"], recorded["body"], recorded["content_type"])
        if request.headers.get("authorization") != self.auth:
            return Reply(401, "Unauthorized\n")
        if "traces:read" not in self.scopes:
            return Reply(403, "Forbidden: the access policy lacks the required scope\n")
        if path == "/api/status/buildinfo":
            return Reply(200, fixture_response("buildinfo")["body"])
        if path == "/api/v2/search/tags":
            return Reply(200, {"scopes": [{"name": "resource", "tags": ["service.name"]}], "metrics": {}})
        if path.startswith("/api/v2/traces/"):
            trace_id = path.rsplit("/", 1)[1]
            seen = self.lookups[trace_id] = self.lookups.get(trace_id, 0) + 1
            pushed = self.otlp.traces.get(trace_id) if self.otlp else None
            if pushed and self.visible_after is not None and seen > self.visible_after:
                return Reply(200, {"trace": {"resourceSpans": pushed}, "metrics": {}})
            return Reply(200, fixture_response("trace-v2-unknown")["body"])
        return NOT_FOUND
