"""Tempo's read-API JSON, decoded: the quirks of what a real Tempo answers, in one place.

- ``/api/search`` prints trace IDs as hex **with leading zeros trimmed**; they are left-padded here.
- Search spansets list attributes **without their scope** (``gen_ai.request.model``), the intrinsic
  ``status`` shows up as an ordinary attribute, and int64 values are JSON **strings**.
- Trace by ID (v1 and v2) carries IDs as **base64** of the raw bytes and enums as **names**
  (``SPAN_KIND_CLIENT``, ``STATUS_CODE_ERROR``); an unknown ID on v2 is a 200 with an empty trace.

:class:`TraceSplitter` cuts a search response into one JSON object per trace while it streams, so a
50,000-trace answer is never held as one parsed document.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

HEX = re.compile(r"^[0-9a-fA-F]+$")
_MARK = b'{"traceID":"'
_BLANKS = b" \t\r\n"
_COMMA = ord(",")


def pad_trace_id(text: str) -> str:
    """A trace ID as the full 32 lowercase hex characters (search trims leading zeros)."""
    value = text.strip().lower()
    if value.startswith("0x"):
        value = value[2:]
    if not value or len(value) > 32 or not HEX.match(value):
        raise ValueError(f"not a trace ID: {text!r} (expected up to 32 hex characters)")
    return value.rjust(32, "0")


def id_to_hex(value: str | None, size: int) -> str | None:
    """A span or trace ID from trace-by-ID JSON (base64) or from search (hex) as hex of ``size`` bytes."""
    if not value:
        return None
    if len(value) <= size * 2 and HEX.match(value):
        return value.lower().rjust(size * 2, "0")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return value
    return raw.hex().rjust(size * 2, "0")


def any_value(value: Mapping[str, Any] | None) -> Any:
    """An OTLP ``AnyValue`` as a Python value; ``intValue`` strings become ints."""
    if not value:
        return None
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        raw = value["intValue"]
        try:
            return int(raw)
        except (TypeError, ValueError):
            return raw
    if "doubleValue" in value:
        raw = value["doubleValue"]
        try:
            return float(raw)
        except (TypeError, ValueError):
            return raw
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [any_value(v) for v in (value["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in value:
        return attributes((value["kvlistValue"] or {}).get("values", []))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def attributes(items: Iterable[Mapping[str, Any]] | None) -> dict[str, Any]:
    """``[{"key":..., "value":{...}}]`` as a plain dict."""
    return {item["key"]: any_value(item.get("value")) for item in items or () if "key" in item}


def nanos(value: Any) -> int:
    """A nanosecond timestamp or duration (Tempo writes int64 as strings)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


# ----------------------------------------------------------------------------- streaming search bodies


class TraceSplitter:
    """Cut a streamed ``/api/search`` body into one JSON object per trace.

    Tempo writes compact JSON with ``traceID`` as the first key of every trace, and a JSON string can
    never contain an unescaped ``{"traceID":"``; so the text between two such marks is one trace. A body
    of any other shape (whitespace, another key order) is kept whole and parsed at the end instead.
    The pieces :meth:`feed` returns are already without the deprecated ``spanSet`` copy.
    """

    def __init__(self) -> None:
        self._buf = b""
        self._started = False
        self._whole = False
        self.rest: dict[str, Any] = {}

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buf += chunk
        if self._whole:
            return []
        start = self._buf.find(_MARK)
        if start < 0:
            return []
        if not self._started:
            head = self._buf[:start].replace(b" ", b"").replace(b"\n", b"").replace(b"\r", b"")
            if head != b'{"traces":[':
                self._whole = True
                return []
            self._started = True
        out: list[bytes] = []
        buf = self._buf
        while True:
            nxt = buf.find(_MARK, start + len(_MARK))
            if nxt < 0:
                break
            end = nxt - 1  # the last byte of the trace: before the comma and blanks that follow it
            while buf[end] in _BLANKS:
                end -= 1
            if buf[end] == _COMMA:
                end -= 1
            # the deprecated spanSet copy of spanSets[0] is cut out here, unparsed (only a trace has keys
            # of those names, and a JSON string cannot hold "spanSet":)
            i = buf.find(_SPANSET, start, end)
            j = buf.find(_SPANSETS, i, end) if i > 0 else -1
            out.append(buf[start:i] + buf[j + 1 : end + 1] if j > 0 else buf[start : end + 1])
            start = nxt
        self._buf = buf[start:]
        return out

    def finish(self) -> list[dict[str, Any]]:
        """The traces still buffered (parsed); the rest of the document lands in :attr:`rest`."""
        body = self._buf
        self._buf = b""
        if self._started and not self._whole:
            body = b'{"traces":[' + body
        if not body.strip():
            self.rest = {}
            return []
        doc = orjson.loads(body)
        if not isinstance(doc, dict):
            raise ValueError("search answer is not a JSON object")
        traces = doc.pop("traces", None) or []
        self.rest = doc
        return [t for t in traces if isinstance(t, dict)]


_SPANSET = b'"spanSet":'
_SPANSETS = b',"spanSets":'


# ----------------------------------------------------------------------------- trace by ID

_KINDS = {
    0: "unspecified",
    1: "internal",
    2: "server",
    3: "client",
    4: "producer",
    5: "consumer",
}
_STATUS = {0: "unset", 1: "ok", 2: "error"}


def _enum_name(value: Any, table: Mapping[int, str], prefix: str) -> str:
    if isinstance(value, int):
        return table.get(value, str(value))
    if isinstance(value, str):
        if value.isdigit():
            return table.get(int(value), value)
        return value.removeprefix(prefix).lower()
    return table[0]


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: str
    start_ns: int
    end_ns: int
    status: str  # ok | error | unset
    status_message: str | None
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str | None
    children: list[Span] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e6


def trace_spans(body: Mapping[str, Any]) -> list[Span]:
    """Every span of a v1 or v2 trace-by-ID answer, IDs as hex, enums as plain names."""
    container = body.get("trace", body) if isinstance(body.get("trace"), dict) else body
    batches = container.get("resourceSpans") or container.get("batches") or []
    spans: list[Span] = []
    for rs in batches:
        resource = attributes((rs.get("resource") or {}).get("attributes"))
        scope_groups = rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or []
        for group in scope_groups:
            scope = (group.get("scope") or group.get("instrumentationLibrary") or {}).get("name")
            for s in group.get("spans") or []:
                status = s.get("status") or {}
                spans.append(
                    Span(
                        trace_id=id_to_hex(s.get("traceId"), 16) or "",
                        span_id=id_to_hex(s.get("spanId"), 8) or "",
                        parent_id=id_to_hex(s.get("parentSpanId"), 8),
                        name=str(s.get("name") or ""),
                        kind=_enum_name(s.get("kind"), _KINDS, "SPAN_KIND_"),
                        start_ns=nanos(s.get("startTimeUnixNano")),
                        end_ns=nanos(s.get("endTimeUnixNano")),
                        status=_enum_name(status.get("code"), _STATUS, "STATUS_CODE_"),
                        status_message=status.get("message") or None,
                        attributes=attributes(s.get("attributes")),
                        resource=resource,
                        scope=scope,
                    )
                )
    return spans


def span_tree(spans: list[Span]) -> list[Span]:
    """Link children to parents; the roots (no parent, or a parent not in the trace), by start time."""
    by_id = {s.span_id: s for s in spans}
    roots: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start_ns, s.name)):
        parent = by_id.get(span.parent_id or "")
        if parent is not None and parent is not span:
            parent.children.append(span)
        else:
            roots.append(span)
    return roots
