"""A fake Tempo on loopback that answers like the real one recorded in ../shared/fixtures/tempo/.

Reproduced quirks: search trace IDs with leading zeros trimmed; unscoped attribute keys, and only the
attributes the query names or select()s (``status`` as a string attribute, span ``name`` only when
named); int64 as JSON strings; trace by ID with base64 IDs and enum names (v2: 200 + empty trace for an
unknown ID; v1: 404); text/plain 400s; ``limit`` (default 20) returning an arbitrary subset with
``completedJobs < totalJobs``; the 168h search and 24h metrics limits; ``end`` clamped to now − 30 s
(start reset to now − 15 min when that puts it after end); no start/end = last 15 minutes.

Backfill visibility: each push is one block whose recorded time range is the spans' range clamped to
[push − slack, push + slack] (slack 2 min by default, as Tempo's ``ingestion_time_range_slack``). A
search finds a trace only if its window overlaps both the block range and the trace's real time; metrics
count a span only if it starts inside both.
"""

from __future__ import annotations

import base64
import gzip
import math
import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import orjson

from tests.fake_traceql import Parsed, ParseError, SpanView, field_value, parse, result_key

NS = 1_000_000_000
_KIND = {0: "SPAN_KIND_UNSPECIFIED", 1: "SPAN_KIND_INTERNAL", 2: "SPAN_KIND_SERVER", 3: "SPAN_KIND_CLIENT"}
_STATUS = {0: "unset", 1: "ok", 2: "error"}


def go_duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60}m{rest % 60}s"


@dataclass
class StoredSpan:
    raw: dict[str, Any]  # the OTLP JSON span as pushed
    view: SpanView  # what TraceQL reads
    start_ns: int
    end_ns: int


@dataclass
class StoredTrace:
    trace_id: str
    resource_spans: list[dict[str, Any]]
    spans: list[StoredSpan]
    block: tuple[int, int]  # recorded range (ns) of the block that holds it

    @property
    def start_ns(self) -> int:
        return min(s.start_ns for s in self.spans)

    @property
    def end_ns(self) -> int:
        return max(s.end_ns for s in self.spans)

    @property
    def root(self) -> StoredSpan:
        return next((s for s in self.spans if not s.raw.get("parentSpanId")), self.spans[0])


def _attrs(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        value = item.get("value") or {}
        if "intValue" in value:
            out[item["key"]] = int(value["intValue"])
        elif "doubleValue" in value:
            out[item["key"]] = float(value["doubleValue"])
        else:
            out[item["key"]] = next(iter(value.values()), None)
    return out


@dataclass
class Fault:
    path: str
    status: int = 503
    body: str = "service unavailable"
    headers: dict[str, str] = field(default_factory=dict)
    mode: str = "status"  # status | drop | cut (200 with half the body)


class FakeTempo:
    def __init__(
        self,
        *,
        slack_s: int = 120,
        max_search_s: int = 168 * 3600,
        max_metrics_s: int = 24 * 3600,
        max_limit: int = 0,
        auth: str | None = None,  # the exact Authorization header required
    ) -> None:
        self.slack_ns = slack_s * NS
        self.max_search_s = max_search_s
        self.max_metrics_s = max_metrics_s
        self.max_limit = max_limit
        self.auth = auth
        self.traces: dict[str, StoredTrace] = {}
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeTempo:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def now_ns(self) -> int:
        return time.time_ns()

    # ------------------------------------------------------------------------- data

    def push(self, resource_spans: list[dict[str, Any]], ingested_ns: int | None = None) -> None:
        """Store a push as one block, as the live-store would."""
        ingest = ingested_ns or self.now_ns()
        grouped: dict[str, list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]] = {}
        for rs in resource_spans:
            for ss in rs.get("scopeSpans") or []:
                for span in ss.get("spans") or []:
                    grouped.setdefault(span["traceId"].lower(), []).append((rs, ss, span))
        starts = [int(s["startTimeUnixNano"]) for v in grouped.values() for _, _, s in v]
        ends = [int(s["endTimeUnixNano"]) for v in grouped.values() for _, _, s in v]
        if not starts:
            return
        lo = max(min(starts), ingest - self.slack_ns)
        hi = max(min(max(ends), ingest + self.slack_ns), lo)
        for trace_id, items in grouped.items():
            spans = []
            for rs, _ss, span in items:
                start, end = int(span["startTimeUnixNano"]), int(span["endTimeUnixNano"])
                view = {
                    "name": span.get("name", ""),
                    "duration": end - start,
                    "status": _STATUS.get((span.get("status") or {}).get("code", 0), "unset"),
                    "kind": "client",
                    "attrs": _attrs(span.get("attributes")),
                    "resource": _attrs((rs.get("resource") or {}).get("attributes")),
                }
                spans.append(StoredSpan(span, view, start, end))
            with self.lock:
                old = self.traces.get(trace_id)
                if old is not None:
                    spans = old.spans + [
                        s for s in spans if s.raw["spanId"] not in {o.raw["spanId"] for o in old.spans}
                    ]
                rs_all = list(old.resource_spans) if old else []
                for rs, ss, span in items:
                    if rs_all and rs_all[-1]["resource"] is rs.get("resource"):
                        rs_all[-1]["scopeSpans"][0]["spans"].append(span)
                    else:
                        scope = {"scope": ss.get("scope") or {}, "spans": [span]}
                        rs_all.append({"resource": rs.get("resource"), "scopeSpans": [scope]})
                self.traces[trace_id] = StoredTrace(trace_id, rs_all, spans, (lo, hi))

    def fail_next(self, path: str, status: int = 503, times: int = 1, **kw: Any) -> None:
        self.faults.extend(Fault(path, status, **kw) for _ in range(times))

    def _fault(self, path: str) -> Fault | None:
        with self.lock:
            for n, fault in enumerate(self.faults):
                if path.startswith(fault.path):
                    return self.faults.pop(n)
        return None

    # ------------------------------------------------------------------------- endpoints

    def search(self, params: dict[str, str]) -> tuple[int, Any]:
        now = self.now_ns()
        if "start" in params and "end" in params:
            start, end = int(params["start"]) * NS, int(params["end"]) * NS
        else:
            start, end = now - 15 * 60 * NS, now
        end = min(end, now - 30 * NS)
        if end < start:
            start = now - 15 * 60 * NS
        if (end - start) // NS > self.max_search_s:
            return 400, (
                f"range specified by start and end exceeds {go_duration(self.max_search_s)}. "
                f"received start={start // NS} end={end // NS}"
            )
        limit = int(params.get("limit", 20))
        if self.max_limit and limit > self.max_limit:
            return 400, f"limit {limit} exceeds max limit {self.max_limit}"
        spss = int(params.get("spss", 3))
        if spss > 100:
            return 400, f"spans per span set exceeds 100. received {spss}"
        try:
            query = parse(params.get("q", "{}"))
        except ParseError as exc:
            return 400, str(exc)
        if query.metric:
            return 400, "invalid TraceQL query: metrics queries are not allowed in search"
        found = []
        for trace in list(self.traces.values()):
            if trace.block[1] < start or trace.block[0] > end:
                continue
            if trace.end_ns < start or trace.start_ns > end:
                continue
            spans = _match(trace, query)
            if spans:
                found.append((trace, spans))
        total_jobs = 3
        done = total_jobs
        if len(found) > limit:
            random.Random(params.get("q", "") + str(start)).shuffle(found)
            found = found[:limit]
            done = 1
        found.sort(key=lambda item: -item[0].start_ns)
        body: dict[str, Any] = {"traces": [_search_trace(t, s, query, spss) for t, s in found]}
        body["metrics"] = (
            {"inspectedBytes": "20278", "completedJobs": done, "totalJobs": total_jobs} if self.traces else {}
        )
        return 200, body

    def trace_by_id(self, raw_id: str, v2: bool, params: dict[str, str]) -> tuple[int, Any]:
        if not raw_id or len(raw_id) > 32 or any(c not in "0123456789abcdefABCDEF" for c in raw_id):
            bad = next((i for i, c in enumerate(raw_id) if c not in "0123456789abcdefABCDEF"), 0)
            return (
                400,
                "trace IDs can only contain hex characters: "
                f"invalid character '{raw_id[bad : bad + 1]}' at position {bad + 1}",
            )
        trace = self.traces.get(raw_id.lower().rjust(32, "0"))
        if trace is not None and "start" in params and "end" in params:
            start, end = int(params["start"]) * NS, int(params["end"]) * NS
            if trace.block[1] < start or trace.block[0] > end:
                trace = None
        if trace is None:
            return (200, {"trace": {}, "metrics": {}}) if v2 else (404, None)
        batches = [_otlp_read_shape(rs, trace.trace_id) for rs in trace.resource_spans]
        if v2:
            return 200, {"trace": {"resourceSpans": batches}, "metrics": {"inspectedBytes": "97986"}}
        return 200, {"batches": batches}

    def metrics(self, params: dict[str, str]) -> tuple[int, Any]:
        now = self.now_ns()
        start, end = int(params["start"]) * NS, int(params["end"]) * NS
        if (end - start) // NS > self.max_metrics_s:
            return (
                400,
                "metrics query time range exceeds the maximum allowed duration of "
                + go_duration(self.max_metrics_s),
            )
        end = min(end, now - 30 * NS)
        if end <= start:
            return 400, "query window falls entirely within query_end_cutoff"
        try:
            query = parse(params["q"])
        except ParseError as exc:
            return 400, str(exc)
        if not query.metric:
            return 400, "invalid TraceQL query: not a metrics query"
        groups: dict[tuple[str | None, ...], list[float]] = {}
        for trace in list(self.traces.values()):
            for span in _match(trace, query):
                if not (start <= span.start_ns < end and trace.block[0] <= span.start_ns <= trace.block[1]):
                    continue
                key = tuple(_label(field_value(b, span.view)) for b in query.by)
                groups.setdefault(key, []).append(_metric_input(query, span))
        return 200, {"series": _series(query, groups), "metrics": {"completedJobs": 1, "totalJobs": 1}}

    # ------------------------------------------------------------------------- HTTP

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(
                self, status: int, body: Any, headers: dict[str, str] | None = None, cut: bool = False
            ) -> None:
                if body is None:
                    data, ctype = b"", None
                elif isinstance(body, str):
                    data, ctype = body.encode(), "text/plain; charset=utf-8"
                else:
                    data, ctype = orjson.dumps(body), "application/json"
                self.send_response(status)
                if ctype:
                    self.send_header("Content-Type", ctype)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2] if cut else data)
                if cut:
                    self.wfile.flush()
                    self.close_connection = True

            def do_GET(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                params = {k: v[-1] for k, v in parse_qs(url.query).items()}
                fake.requests.append((url.path, params))
                if fake.auth and self.headers.get("Authorization") != fake.auth:
                    return self._send(401, "Unauthorized")
                fault = fake._fault(url.path)
                if fault and fault.mode == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return None
                if fault and fault.mode == "status":
                    return self._send(fault.status, fault.body, fault.headers)
                status, body = fake.route(url.path, params)
                return self._send(status, body, cut=bool(fault and fault.mode == "cut"))

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length)
                if self.headers.get("Content-Encoding") == "gzip":
                    data = gzip.decompress(data)
                if urlparse(self.path).path != "/v1/traces":
                    return self._send(404, "404 page not found")
                fake.push(orjson.loads(data).get("resourceSpans") or [])
                return self._send(200, {"partialSuccess": {}})

        return Handler

    def route(self, path: str, params: dict[str, str]) -> tuple[int, Any]:
        if path == "/api/echo":
            return 200, "echo"
        if path == "/api/search":
            return self.search(params)
        if path.startswith("/api/v2/traces/"):
            return self.trace_by_id(unquote(path[len("/api/v2/traces/") :]), True, params)
        if path.startswith("/api/traces/"):
            return self.trace_by_id(unquote(path[len("/api/traces/") :]), False, params)
        if path == "/api/metrics/query":
            return self.metrics(params)
        return 404, "404 page not found"


# ----------------------------------------------------------------------------- shapes


def _match(trace: StoredTrace, query: Parsed) -> list[StoredSpan]:
    spans = trace.spans
    for pred in query.filters:
        spans = [s for s in spans if pred(s.view)]
    return spans


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": int(value) if value == 0 else value}
    return {"stringValue": str(value)}


def _search_span(span: StoredSpan, query: Parsed) -> dict[str, Any]:
    out: dict[str, Any] = {"spanID": span.raw["spanId"]}
    named = {result_key(r) for r in query.referenced}
    if "name" in named:
        out["name"] = span.view["name"]
    out["startTimeUnixNano"] = str(span.start_ns)
    out["durationNanos"] = str(span.end_ns - span.start_ns)
    attributes = []
    for ref in dict.fromkeys(query.referenced):
        key = result_key(ref)
        if key in ("name", "duration", "kind"):
            continue
        value = field_value(ref, span.view)
        if value is not None:
            attributes.append({"key": key, "value": _value(value)})
    if attributes:
        out["attributes"] = attributes
    return out


def _search_trace(trace: StoredTrace, spans: list[StoredSpan], query: Parsed, spss: int) -> dict[str, Any]:
    root = trace.root
    spanset = {"spans": [_search_span(s, query) for s in spans[:spss]], "matched": len(spans)}
    errors = sum(1 for s in trace.spans if s.view["status"] == "error")
    stats: dict[str, Any] = {"spanCount": len(trace.spans)}
    if errors:
        stats["errorCount"] = errors
    return {
        "traceID": trace.trace_id.lstrip("0") or "0",
        "rootServiceName": root.view["resource"].get("service.name", "<root span not yet received>"),
        "rootTraceName": root.view["name"],
        "startTimeUnixNano": str(trace.start_ns),
        "durationMs": (trace.end_ns - trace.start_ns) // 1_000_000,
        "spanSet": spanset,
        "spanSets": [spanset],
        "serviceStats": {root.view["resource"].get("service.name", "unknown"): stats},
    }


def _b64(hex_id: str | None) -> str | None:
    return base64.b64encode(bytes.fromhex(hex_id)).decode() if hex_id else None


def _otlp_read_shape(rs: dict[str, Any], trace_id: str) -> dict[str, Any]:
    """What trace by ID returns: base64 IDs, enum names, status code names."""
    out_groups = []
    for ss in rs.get("scopeSpans") or []:
        spans = []
        for span in ss.get("spans") or []:
            item: dict[str, Any] = {"traceId": _b64(span["traceId"]), "spanId": _b64(span["spanId"])}
            if span.get("parentSpanId"):
                item["parentSpanId"] = _b64(span["parentSpanId"])
            item["name"] = span.get("name", "")
            item["kind"] = _KIND.get(int(span.get("kind", 0)), "SPAN_KIND_CLIENT")
            item["startTimeUnixNano"] = str(span["startTimeUnixNano"])
            item["endTimeUnixNano"] = str(span["endTimeUnixNano"])
            item["attributes"] = span.get("attributes") or []
            status = span.get("status") or {}
            code = {1: "STATUS_CODE_OK", 2: "STATUS_CODE_ERROR"}.get(int(status.get("code", 0)))
            item["status"] = {k: v for k, v in (("code", code), ("message", status.get("message"))) if v}
            spans.append(item)
        out_groups.append({"scope": ss.get("scope") or {}, "spans": spans})
    return {"resource": rs.get("resource") or {}, "scopeSpans": out_groups}


def _label(value: Any) -> str:
    return "nil" if value is None else str(value)


def _metric_input(query: Parsed, span: StoredSpan) -> float:
    if query.metric in ("count_over_time", "rate") or not query.metric_args:
        return 1.0
    value = field_value(query.metric_args[0], span.view)
    if value is None:
        return math.nan
    return float(value) / NS if query.metric_args[0] in ("duration", "span:duration") else float(value)


def _bucket(value: float) -> float:
    """Tempo's quantiles: values land in power-of-two buckets (of nanoseconds for durations)."""
    return 2.0 ** math.ceil(math.log2(value)) if value > 0 else 0.0


def _series(query: Parsed, groups: dict[tuple[str | None, ...], list[float]]) -> list[dict[str, Any]]:
    out = []
    for key, values in sorted(groups.items(), key=lambda kv: str(kv[0])):
        labels: list[dict[str, Any]] = [
            {"key": b, "value": {"stringValue": k}} for b, k in zip(query.by, key, strict=True)
        ]
        present = [v for v in values if not math.isnan(v)]
        if query.metric == "quantile_over_time":
            labels = [lab for lab in labels if lab["value"]["stringValue"] != "nil"]
            is_duration = query.metric_args[0] in ("duration", "span:duration")
            scale = NS if is_duration else 1.0
            buckets = sorted(_bucket(v * scale) / scale for v in present)
            for q in query.metric_args[1:]:
                p = float(q)
                series: dict[str, Any] = {"labels": [*labels, {"key": "p", "value": {"doubleValue": p}}]}
                if buckets:
                    series["value"] = buckets[min(len(buckets) - 1, max(0, math.ceil(p * len(buckets)) - 1))]
                out.append(series)
            continue
        if query.metric == "sum_over_time" and not present:
            continue
        value: float
        if query.metric in ("count_over_time", "rate"):
            value = len(values)
        else:
            value = {"sum_over_time": sum(present), "max_over_time": max(present, default=0.0),
                     "min_over_time": min(present, default=0.0)}[query.metric or ""]  # fmt: skip
        series = {"labels": labels}
        if value:
            series["value"] = value
        out.append(series)
    return out


if __name__ == "__main__":  # a standalone fake for trying commands by hand: python -m tests.fake_tempo
    import sys

    with FakeTempo(slack_s=int(sys.argv[1]) if len(sys.argv) > 1 else 120) as fake:
        print(fake.url, flush=True)
        threading.Event().wait()
