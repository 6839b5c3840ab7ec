"""OTLP protobuf, written by hand: the OTLP/HTTP JSON dicts of :mod:`orbcast.spans` as binary protobuf.

The encoder walks the same structure the JSON export sends (hex IDs, integer enums, int64 as strings or
numbers) and produces exactly the bytes ``opentelemetry-proto``'s ``SerializeToString`` gives for the
same data (tests/test_otlp_encoding.py checks it byte for byte): fields in field-number order,
proto3 defaults left out, oneof members and present sub-messages always written. No dependency, and
faster than building the official message classes.

Field numbers come from ``opentelemetry/proto/{collector/trace,trace,common,resource}/v1/*.proto``.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterable, Mapping
from typing import Any

_pack_double = struct.Struct("<d").pack
_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack

# Wire-format tags: (field number << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).
_LEN1, _LEN2, _LEN3, _LEN4, _LEN5, _LEN6, _LEN7 = (bytes([n << 3 | 2]) for n in range(1, 8))
_LEN9, _LEN11, _LEN13, _LEN15 = (bytes([n << 3 | 2]) for n in (9, 11, 13, 15))
_SPAN_FLAGS_TAG = b"\x85\x01"  # field 16, fixed32 (two-byte tag)
_VARINT_TAGS = {n: bytes([n << 3]) for n in range(1, 16)}
_FIXED64_TAGS = {n: bytes([n << 3 | 1]) for n in range(1, 16)}
_FIXED32_TAGS = {n: bytes([n << 3 | 5]) for n in range(1, 16)}

_SMALL = [bytes([n]) for n in range(128)]

SPAN_KINDS = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
STATUS_CODES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


class EncodeError(ValueError):
    """A value that has no OTLP protobuf form (bad hex ID, non-numeric timestamp, unknown enum name)."""


def varint(value: int) -> bytes:
    """Unsigned LEB128; negative numbers as their 64-bit two's complement (10 bytes), as int64 requires."""
    if 0 <= value < 128:
        return _SMALL[value]
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _ld(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field."""
    n = len(payload)
    return tag + (_SMALL[n] if n < 128 else varint(n)) + payload


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise EncodeError(f"{what}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise EncodeError(f"{what}: expected an integer, got {value!r}")


def _id(value: Any, size: int, what: str) -> bytes:
    if not isinstance(value, str):
        raise EncodeError(f"{what}: expected a hex string, got {value!r}")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise EncodeError(f"{what} {value!r} is not hex") from None
    if raw and len(raw) != size:
        raise EncodeError(f"{what} {value!r} is not {size * 2} hex characters")
    return raw


def _enum(value: Any, names: Mapping[str, int], what: str) -> int:
    if isinstance(value, str) and value in names:
        return names[value]
    return _int(value, what)


# ----------------------------------------------------------------------------- common.proto

_KEY_CACHE: dict[str, bytes] = {}


def _key(key: str) -> bytes:
    """KeyValue.key (field 1), cached: attribute names repeat on every span."""
    encoded = _KEY_CACHE.get(key)
    if encoded is None:
        encoded = _ld(_LEN1, key.encode("utf-8"))
        if len(_KEY_CACHE) < 4096:
            _KEY_CACHE[key] = encoded
    return encoded


def any_value(value: Mapping[str, Any]) -> bytes:
    """An AnyValue body (without its own tag)."""
    if not value:
        return b""
    if "stringValue" in value:
        return _ld(_LEN1, str(value["stringValue"]).encode("utf-8"))
    if "intValue" in value:
        return _VARINT_TAGS[3] + varint(_int(value["intValue"], "intValue"))
    if "doubleValue" in value:
        number = value["doubleValue"]
        if isinstance(number, str):  # proto3 JSON spells non-finite doubles as strings
            number = float(number)
        return b"\x21" + _pack_double(float(number))
    if "boolValue" in value:
        return b"\x10\x01" if value["boolValue"] else b"\x10\x00"
    if "arrayValue" in value:
        values = (value["arrayValue"] or {}).get("values") or ()
        return _ld(_LEN5, b"".join([_ld(_LEN1, any_value(v)) for v in values]))
    if "kvlistValue" in value:
        pairs = (value["kvlistValue"] or {}).get("values") or ()
        return _ld(_LEN6, b"".join([_ld(_LEN1, key_value(kv)) for kv in pairs]))
    if "bytesValue" in value:
        return _ld(_LEN7, base64.b64decode(value["bytesValue"]))
    return b""


def key_value(kv: Mapping[str, Any]) -> bytes:
    """A KeyValue body: key (1), value (2, present whenever the JSON has it)."""
    out = _key(kv["key"]) if kv.get("key") else b""
    if "value" in kv:
        out += _ld(_LEN2, any_value(kv["value"] or {}))
    return out


def _attributes(tag: bytes, attrs: Iterable[Mapping[str, Any]] | None) -> bytes:
    if not attrs:
        return b""
    return b"".join([_ld(tag, key_value(kv)) for kv in attrs])


def _uint(tag_no: int, value: Any, what: str) -> bytes:
    number = _int(value, what) if value is not None else 0
    return _VARINT_TAGS[tag_no] + varint(number) if number else b""


def _str(tag: bytes, value: Any) -> bytes:
    return _ld(tag, value.encode("utf-8")) if value else b""


# ----------------------------------------------------------------------------- trace.proto


def _status(status: Mapping[str, Any]) -> bytes:
    out = _str(_LEN2, status.get("message"))
    code = _enum(status.get("code", 0), STATUS_CODES, "status.code")
    if code:
        out += _VARINT_TAGS[3] + varint(code)
    return out


def _event(event: Mapping[str, Any]) -> bytes:
    out = b""
    t = _int(event.get("timeUnixNano", 0), "timeUnixNano")
    if t:
        out += _FIXED64_TAGS[1] + _pack_fixed64(t)
    out += _str(_LEN2, event.get("name"))
    out += _attributes(_LEN3, event.get("attributes"))
    out += _uint(4, event.get("droppedAttributesCount"), "droppedAttributesCount")
    return out


def _link(link: Mapping[str, Any]) -> bytes:
    out = b""
    trace_id = _id(link.get("traceId", ""), 16, "link traceId")
    if trace_id:
        out += _ld(_LEN1, trace_id)
    span_id = _id(link.get("spanId", ""), 8, "link spanId")
    if span_id:
        out += _ld(_LEN2, span_id)
    out += _str(_LEN3, link.get("traceState"))
    out += _attributes(_LEN4, link.get("attributes"))
    out += _uint(5, link.get("droppedAttributesCount"), "droppedAttributesCount")
    flags = _int(link.get("flags", 0), "flags")
    if flags:
        out += _FIXED32_TAGS[6] + _pack_fixed32(flags)
    return out


def span(s: Mapping[str, Any]) -> bytes:
    """A Span body, fields 1-16 in order."""
    parts: list[bytes] = []
    append = parts.append
    trace_id = _id(s.get("traceId", ""), 16, "traceId")
    if trace_id:
        append(_ld(_LEN1, trace_id))
    span_id = _id(s.get("spanId", ""), 8, "spanId")
    if span_id:
        append(_ld(_LEN2, span_id))
    if s.get("traceState"):
        append(_str(_LEN3, s["traceState"]))
    parent = s.get("parentSpanId")
    if parent:
        append(_ld(_LEN4, _id(parent, 8, "parentSpanId")))
    if s.get("name"):
        append(_ld(_LEN5, s["name"].encode("utf-8")))
    kind = _enum(s.get("kind", 0), SPAN_KINDS, "kind")
    if kind:
        append(_VARINT_TAGS[6] + varint(kind))
    start = _int(s.get("startTimeUnixNano", 0), "startTimeUnixNano")
    if start:
        append(b"\x39" + _pack_fixed64(start))
    end = _int(s.get("endTimeUnixNano", 0), "endTimeUnixNano")
    if end:
        append(b"\x41" + _pack_fixed64(end))
    attrs = s.get("attributes")
    if attrs:
        append(_attributes(_LEN9, attrs))
    if s.get("droppedAttributesCount"):
        append(_uint(10, s["droppedAttributesCount"], "droppedAttributesCount"))
    for event in s.get("events") or ():
        append(_ld(_LEN11, _event(event)))
    if s.get("droppedEventsCount"):
        append(_uint(12, s["droppedEventsCount"], "droppedEventsCount"))
    for link in s.get("links") or ():
        append(_ld(_LEN13, _link(link)))
    if s.get("droppedLinksCount"):
        append(_uint(14, s["droppedLinksCount"], "droppedLinksCount"))
    if "status" in s:
        append(_ld(_LEN15, _status(s["status"] or {})))
    flags = s.get("flags")
    if flags:
        append(_SPAN_FLAGS_TAG + _pack_fixed32(_int(flags, "flags")))
    return b"".join(parts)


def _scope(scope: Mapping[str, Any]) -> bytes:
    out = _str(_LEN1, scope.get("name")) + _str(_LEN2, scope.get("version"))
    out += _attributes(_LEN3, scope.get("attributes"))
    out += _uint(4, scope.get("droppedAttributesCount"), "droppedAttributesCount")
    return out


def _scope_spans(ss: Mapping[str, Any]) -> bytes:
    out = _ld(_LEN1, _scope(ss["scope"] or {})) if "scope" in ss else b""
    out += b"".join([_ld(_LEN2, span(s)) for s in ss.get("spans") or ()])
    return out + _str(_LEN3, ss.get("schemaUrl"))


def resource_spans(rs: Mapping[str, Any]) -> bytes:
    """A ResourceSpans body."""
    out = b""
    if "resource" in rs:
        resource = rs["resource"] or {}
        body = _attributes(_LEN1, resource.get("attributes"))
        body += _uint(2, resource.get("droppedAttributesCount"), "droppedAttributesCount")
        out += _ld(_LEN1, body)
    out += b"".join([_ld(_LEN2, _scope_spans(ss)) for ss in rs.get("scopeSpans") or ()])
    return out + _str(_LEN3, rs.get("schemaUrl"))


# ----------------------------------------------------------------------------- requests


def resource_spans_fragment(rs: Mapping[str, Any]) -> bytes:
    """One ResourceSpans as it sits inside an ExportTraceServiceRequest (field 1, length-delimited).

    A request body is the plain concatenation of such fragments, so batches are joined, not re-encoded.
    """
    return _ld(_LEN1, resource_spans(rs))


def encode_request(request: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> bytes:
    """An ExportTraceServiceRequest from its JSON dict (``{"resourceSpans": [...]}``) or the list itself."""
    items = request.get("resourceSpans") or () if isinstance(request, Mapping) else request
    return b"".join([resource_spans_fragment(rs) for rs in items])


# ----------------------------------------------------------------------------- responses


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise EncodeError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> Iterable[tuple[int, int, Any]]:
    """(field number, wire type, value) of a message; length-delimited values as bytes."""
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _read_varint(data, pos)
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 2:
            size, pos = _read_varint(data, pos)
            if pos + size > len(data):
                raise EncodeError("truncated field")
            value, pos = data[pos : pos + size], pos + size
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise EncodeError(f"unsupported wire type {wire}")
        yield number, wire, value


def decode_partial_success(body: bytes) -> tuple[int, str] | None:
    """``ExportTraceServiceResponse.partial_success`` -> (rejected spans, error message), else None."""
    for number, wire, value in _fields(body):
        if number == 1 and wire == 2:
            rejected, message = 0, ""
            for n, w, v in _fields(value):
                if n == 1 and w == 0:
                    rejected = v - (1 << 64) if v >= 1 << 63 else v
                elif n == 2 and w == 2:
                    message = v.decode("utf-8", "replace")
            return rejected, message
    return None


def decode_status_message(body: bytes) -> str | None:
    """``google.rpc.Status.message`` (field 2) from a protobuf error body."""
    for number, wire, value in _fields(body):
        if number == 2 and wire == 2:
            return str(value.decode("utf-8", "replace"))
    return None
