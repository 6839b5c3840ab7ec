"""A loopback OTLP/HTTP traces receiver for tests.

Every request is decoded and validated with the official classes (:mod:`tests.otlp_schema`); a request
that fails validation is answered 400 and recorded in :attr:`FakeOtlp.invalid`, so tests assert it stays
empty. Accepted spans are stored by (traceId, spanId) with how many times each arrived.

Scripted answers, consumed in order, one per request (then plain 200s again)::

    receiver.script(Answer(429, retry_after="0"), Answer(503), DROP, Answer(200, partial=3))

``Answer(..., delay=s)`` waits before answering (after storing, as a real server that is slow to ack),
``DROP`` closes the connection without an answer, ``Answer(store=False)`` refuses to keep the spans.
``receiver.default`` is the answer once the script runs out.
"""

from __future__ import annotations

import gzip
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from tests.otlp_schema import attributes, parse_request


@dataclass
class Answer:
    status: int = 200
    body: bytes | None = None  # default: {"partialSuccess":{}} on 2xx, a google.rpc.Status otherwise
    content_type: str = "application/json"
    retry_after: str | None = None
    delay: float = 0.0
    partial: int = 0  # 2xx: rejectedSpans
    store: bool | None = None  # default: store on 2xx only
    drop: bool = False


DROP = Answer(drop=True, store=False)


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    spans: int = 0
    answer: int = 0


@dataclass
class Stored:
    name: str
    resource: dict[str, Any]
    attributes: dict[str, Any]
    start: int
    end: int
    parent: str
    times: int = 1


@dataclass
class FakeOtlp:
    server: ThreadingHTTPServer
    requests: list[Request] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    spans: dict[tuple[str, str], Stored] = field(default_factory=dict)
    default: Answer = field(default_factory=Answer)
    forward: Callable[[list[dict[str, Any]]], None] | None = (
        None  # gets the resourceSpans of stored JSON pushes
    )
    lock: threading.Lock = field(default_factory=threading.Lock)
    _script: list[Answer] = field(default_factory=list)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def endpoint(self) -> str:
        return self.url + "/otlp/v1/traces"

    def script(self, *answers: Answer) -> None:
        with self.lock:
            self._script.extend(answers)

    def next_answer(self) -> Answer:
        with self.lock:
            return self._script.pop(0) if self._script else self.default

    # -- views for assertions

    def trace_ids(self) -> set[str]:
        return {trace for trace, _ in self.spans}

    def generation_ids(self) -> set[str]:
        return {s.resource.get("openrouter.trace.id", "") for s in self.spans.values() if not s.parent} - {""}

    def receipts(self) -> Counter[str]:
        """How many times each generation's root span arrived."""
        return Counter(
            {s.resource.get("openrouter.trace.id", ""): s.times for s in self.spans.values() if not s.parent}
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: Any
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def do_POST(self) -> None:  # noqa: N802
        fake: FakeOtlp = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        headers = {k: v for k, v in self.headers.items()}
        answer = fake.next_answer()
        request = Request(self.path, headers, body)
        with fake.lock:
            fake.requests.append(request)
        if answer.drop:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        try:
            message = parse_request(body, headers.get("Content-Type", ""), headers.get("Content-Encoding"))
        except Exception as exc:  # noqa: BLE001 - any decoding failure is a test failure
            with fake.lock:
                fake.invalid.append(f"{type(exc).__name__}: {exc}")
            self._reply(
                400, orjson.dumps({"code": 3, "message": f"invalid request: {exc}"}), "application/json"
            )
            return
        store = answer.store if answer.store is not None else 200 <= answer.status < 300
        count = 0
        for rs in message.resource_spans:
            resource = attributes(rs.resource)
            for ss in rs.scope_spans:
                for span in ss.spans:
                    count += 1
                    if not store:
                        continue
                    key = (span.trace_id.hex(), span.span_id.hex())
                    with fake.lock:
                        if key in fake.spans:
                            fake.spans[key].times += 1
                        else:
                            fake.spans[key] = Stored(
                                span.name,
                                resource,
                                attributes(span),
                                span.start_time_unix_nano,
                                span.end_time_unix_nano,
                                span.parent_span_id.hex(),
                            )
        request.spans = count
        request.answer = answer.status
        if (
            store
            and fake.forward is not None
            and headers.get("Content-Type", "").startswith("application/json")
        ):
            raw = gzip.decompress(body) if headers.get("Content-Encoding") == "gzip" else body
            fake.forward(orjson.loads(raw)["resourceSpans"])
        if answer.delay:
            time.sleep(answer.delay)
        if answer.body is not None:
            body_out = answer.body
        elif 200 <= answer.status < 300:
            partial: dict[str, Any] = {}
            if answer.partial:
                partial = {"rejectedSpans": str(answer.partial), "errorMessage": "some spans were refused"}
            body_out = orjson.dumps({"partialSuccess": partial})
        else:
            body_out = orjson.dumps({"code": 14, "message": f"scripted HTTP {answer.status}"})
        extra = {"Retry-After": answer.retry_after} if answer.retry_after is not None else {}
        self._reply(answer.status, body_out, answer.content_type, extra)

    def _reply(
        self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
    ) -> None:
        try:
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


def start_receiver() -> FakeOtlp:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    fake = FakeOtlp(server)
    server.fake = fake  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, args=(0.02,), name="fake-otlp", daemon=True).start()
    return fake


# ----------------------------------------------------------------------------- test data


def make_record_dicts(n: int, seed: int = 1, start: datetime | None = None) -> list[dict[str, Any]]:
    """``n`` /generation-shaped objects with variety: nulls, fallbacks, failures, unicode, odd values."""
    rnd = random.Random(seed)
    base = start or datetime(2026, 11, 20, tzinfo=UTC)
    models = ["openai/gpt-4o", "anthropic/claude-sonnet-4", "google/gemini-2.5-pro", "mistral-large", None]
    providers = ["OpenAI", "Anthropic", "Google", "Together", "Fournisseur é"]
    out = []
    for i in range(n):
        attempts: list[dict[str, Any]] = [
            {"provider_name": rnd.choice(providers), "status": 200, "latency": rnd.randint(50, 4000)}
        ]
        roll = rnd.random()
        if roll < 0.2:  # a fallback after a failed provider
            attempts.insert(
                0, {"provider_name": rnd.choice(providers), "status": 429, "latency": 40, "is_byok": False}
            )
        elif roll < 0.25:  # every provider failed
            attempts = [{"provider_name": rnd.choice(providers), "status": 502, "latency": 10}]
        when = base + timedelta(seconds=37 * i, microseconds=rnd.randint(0, 999_999))
        data: dict[str, Any] = {
            "id": f"gen-{1790000000 + i}-{seed}{rnd.getrandbits(40):010x}",
            "created_at": when.strftime("%Y-%m-%dT%H:%M:%S.%f")[: rnd.choice([19, 23, 26])] + "Z",
            "model": rnd.choice(models),
            "total_cost": rnd.choice([round(rnd.random() / 50, 7), 0.0, None]),
            "usage": round(rnd.random() / 50, 7),
            "generation_time": rnd.choice([rnd.randint(100, 20000), None]),
            "latency": rnd.randint(50, 3000),
            "tokens_prompt": rnd.randint(1, 9000),
            "tokens_completion": rnd.choice([rnd.randint(0, 3000), None]),
            "native_tokens_prompt": rnd.randint(1, 9000),
            "native_tokens_completion": rnd.randint(0, 3000),
            "native_tokens_reasoning": rnd.choice([0, 120, None]),
            "native_tokens_cached": rnd.choice([0, 512, None]),
            "finish_reason": "error"
            if roll < 0.25 and roll >= 0.2
            else rnd.choice(["stop", "length", "tool_calls"]),
            "native_finish_reason": rnd.choice(["stop", "MAX_TOKENS", None]),
            "streamed": rnd.choice([True, False, None]),
            "cancelled": False,
            "is_byok": False,
            "external_user": rnd.choice([None, f"user-{rnd.randint(1, 9)}", "ユーザー"]),
            "session_id": rnd.choice([None, f"sess-{rnd.randint(1, 5)}"]),
            "api_type": "completions",
            "provider_name": attempts[-1]["provider_name"],
            "provider_responses": attempts,
            "origin": "",
        }
        if rnd.random() < 0.3:
            data["orbcast"] = {"source": "csv", "api_key_name": rnd.choice(["prod", "dev"]), "ttft_ms": 412.7}
        out.append(data)
    return out


def write_jsonl(path: Path, dicts: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in dicts))
    return path
