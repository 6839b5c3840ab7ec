"""The end-to-end part of ``test-connection``: one labelled span pushed, then looked up in Tempo.

Tempo's v2 trace-by-id answers ``200 {"trace":{},"metrics":{}}`` while a trace is unknown (recorded
fixture ``trace-v2-unknown``), so "found" means "the answer holds spans", not "the status is 200".
The lookup goes without start/end so the trace is found however its time compares with "now".
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from orbcast import __version__
from orbcast import diagnosis as dx
from orbcast import tracing_diagnosis as td
from orbcast.config import Settings
from orbcast.errors import ExitCode
from orbcast.retry import backoff_scale
from orbcast.spans import encode_json
from orbcast.timeparse import to_unix_nano

TEST_SERVICE = "orbcast-test-connection"
TEST_SPAN_NAME = "orbcast test-connection round trip"
FIRST_WAIT = 0.25  # seconds between lookups, growing by half each time up to MAX_WAIT
MAX_WAIT = 2.0


def labelled_span(now: datetime | None = None) -> tuple[str, bytes]:
    """One clearly labelled span under its own service name; returns (trace id, OTLP/JSON body)."""
    end = now or datetime.now(UTC)
    end_ns = to_unix_nano(end)
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    span = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": TEST_SPAN_NAME,
        "kind": 1,
        "startTimeUnixNano": str(end_ns - 1_000_000),
        "endTimeUnixNano": str(end_ns),
        "attributes": [
            {"key": "orbcast.test_connection", "value": {"boolValue": True}},
            {"key": "orbcast.note", "value": {"stringValue": "sent by orbcast test-connection; ignore it"}},
        ],
    }
    resource = [
        {"key": "service.name", "value": {"stringValue": TEST_SERVICE}},
        {"key": "service.version", "value": {"stringValue": __version__}},
    ]
    rs = {
        "resource": {"attributes": resource},
        "scopeSpans": [{"scope": {"name": "orbcast", "version": __version__}, "spans": [span]}],
    }
    return trace_id, encode_json([rs])


def has_spans(data: Any) -> bool:
    """A trace-by-id answer holds spans (v2 ``{"trace":{...}}``, v1 ``resourceSpans``/``batches``)."""
    if not isinstance(data, dict):
        return False
    trace = data.get("trace", data)
    if not isinstance(trace, dict):
        return False
    for rs in trace.get("resourceSpans") or trace.get("batches") or []:
        for ss in rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or []:
            if ss.get("spans"):
                return True
    return False


def rejected_spans(response: httpx.Response) -> str | None:
    """The receiver's reason when an accepted export still rejected spans (OTLP partial success)."""
    try:
        body = orjson.loads(response.content) if response.content else {}
    except orjson.JSONDecodeError:
        return None
    partial = body.get("partialSuccess") if isinstance(body, dict) else None
    if isinstance(partial, dict) and int(partial.get("rejectedSpans") or 0):
        return str(partial.get("errorMessage") or "no reason given")
    return None


@dataclass
class Found:
    delay: float
    lookups: int


def poll(
    lookup: Callable[[float], httpx.Response | dx.Diagnosis],
    *,
    started: float,
    deadline: float,
    timeout: float,
    settings: Settings,
    trace_id: str,
    total: float,
) -> Found | dx.Diagnosis:
    """Look the trace up until it has spans or ``deadline`` (monotonic) passes.

    ``lookup(timeout)`` sends one GET. Slow answers, 404, 429 and 5xx mean "not yet"; 401/403 and
    other network failures end the wait at once with their diagnosis.
    """
    lookups, not_found, wait = 0, 0, FIRST_WAIT
    while (remaining := deadline - time.monotonic()) > 0:
        answer = lookup(min(timeout, max(remaining, 0.05)))
        lookups += 1
        if isinstance(answer, dx.Diagnosis):
            if not answer.detail.startswith("timed out"):
                return answer
        elif answer.status_code == 200 and has_spans(json_body(answer)):
            return Found(time.monotonic() - started, lookups)
        elif answer.status_code in (401, 403):
            return td.tempo_auth(answer, settings)
        elif answer.status_code == 404:
            not_found += 1
        elif answer.status_code not in (200, 429) and answer.status_code < 500:
            hint = "Tempo refused a trace lookup by ID: check that --tempo-url is Tempo's query base"
            return dx.Diagnosis(dx.status_detail(answer), hint, dx.code_for_status(answer.status_code))
        pause = max(wait * backoff_scale(), 0.02)
        time.sleep(max(0.0, min(pause, deadline - time.monotonic())))
        wait = min(wait * 1.5, MAX_WAIT)
    if lookups and not_found == lookups:
        hint = (
            "every lookup answered 404: this Tempo may lack the /api/v2/traces API, "
            "or the Tempo URL is not the stack the OTLP endpoint writes to"
        )
    else:
        hint = td.region_note(settings) or (
            "the push was accepted but Tempo did not return the span: check that the OTLP endpoint "
            "and the Tempo URL belong to the same stack, or raise --round-trip-timeout"
        )
    return dx.Diagnosis(
        f"test span (trace {trace_id}) not visible in Tempo after {total:g} s ({lookups} lookups)",
        hint,
        ExitCode.UNAVAILABLE,
    )


def json_body(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
