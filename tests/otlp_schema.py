"""Check OTLP payloads against the official schema (the ``opentelemetry-proto`` package).

OTLP/JSON differs from proto3 JSON in one way that matters here: IDs are hex, not base64. The
checker converts them, then parses strictly (unknown fields are errors), so a misspelt key, a
wrong value type or a bad ID fails the test.
"""

from __future__ import annotations

import base64
import gzip
from typing import Any

import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

_ID_FIELDS = {"traceId": 32, "spanId": 16, "parentSpanId": 16}


def _hex_ids_to_base64(node: Any) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                if value == "" and key == "parentSpanId":
                    out[key] = ""
                    continue
                assert len(value) == _ID_FIELDS[key], f"{key} {value!r} is not {_ID_FIELDS[key]} hex chars"
                raw = bytes.fromhex(value)
                assert any(raw), f"{key} is all zeros"
                out[key] = base64.b64encode(raw).decode()
            else:
                out[key] = _hex_ids_to_base64(value)
        return out
    if isinstance(node, list):
        return [_hex_ids_to_base64(v) for v in node]
    return node


def parse_json_request(payload: bytes | str | dict[str, Any]) -> ExportTraceServiceRequest:
    """Strictly parse an OTLP/HTTP JSON body (bytes may be gzip) into the official message."""
    if isinstance(payload, bytes | str):
        raw = payload.encode() if isinstance(payload, str) else payload
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        payload = orjson.loads(raw)
    assert isinstance(payload, dict)
    message = ExportTraceServiceRequest()
    json_format.ParseDict(_hex_ids_to_base64(payload), message, ignore_unknown_fields=False)
    return message


def parse_protobuf_request(body: bytes) -> ExportTraceServiceRequest:
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    message = ExportTraceServiceRequest()
    message.ParseFromString(body)
    return message


def parse_request(
    body: bytes, content_type: str, content_encoding: str | None = None
) -> ExportTraceServiceRequest:
    """A request as a receiver gets it: checks Content-Type and decodes by it."""
    if content_encoding == "gzip":
        body = gzip.decompress(body)
    if content_type.startswith("application/json"):
        return parse_json_request(body)
    assert content_type.startswith("application/x-protobuf"), f"unexpected Content-Type {content_type!r}"
    return parse_protobuf_request(body)


def attributes(span_or_resource: Any) -> dict[str, Any]:
    """Attributes of a proto span/resource as a plain dict of Python values (ints for intValue)."""
    out: dict[str, Any] = {}
    for kv in span_or_resource.attributes:
        which = kv.value.WhichOneof("value")
        value = getattr(kv.value, which) if which else None
        if which == "array_value":
            value = [getattr(v, v.WhichOneof("value")) for v in kv.value.array_value.values]
        out[kv.key] = value
    return out
