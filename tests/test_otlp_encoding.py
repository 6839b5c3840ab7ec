"""The two hand-written encoders against their references, byte for byte.

- :func:`orbcast.spanjson.resource_spans_json` == ``orjson.dumps(spans.resource_spans(...))``;
- :mod:`orbcast.protobuf` == ``opentelemetry-proto``'s ``SerializeToString`` of the same data.
"""

from __future__ import annotations

import base64
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from google.rpc import status_pb2
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from orbcast import protobuf
from orbcast.otlp import encode_body
from orbcast.records import GenerationRecord
from orbcast.spanjson import resource_spans_json, resource_spans_json_traced
from orbcast.spans import SpanOptions, resource_spans, trace_id_for
from tests.fake_otlp import make_record_dicts
from tests.otlp_schema import parse_json_request, parse_protobuf_request

DATA = Path(__file__).parent / "data" / "tempo"


def _reference_pb(request: dict[str, Any]) -> bytes:
    return parse_json_request(request).SerializeToString()


def _recorded_push() -> list[dict[str, Any]]:
    return list(orjson.loads((DATA / "push-batch.default.json").read_bytes())["resourceSpans"])


# ----------------------------------------------------------------------------- strategies

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_maybe_int = st.one_of(
    st.none(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True)
)
_attempt = st.fixed_dictionaries(
    {},
    optional={
        "provider_name": st.one_of(st.none(), _text),
        "status": st.one_of(st.none(), st.integers(-5, 2**64), st.floats(), st.booleans(), _text),
        "latency": st.one_of(st.none(), st.integers(-10, 10**9), st.floats(), st.booleans()),
        "is_byok": st.one_of(st.none(), st.booleans(), st.integers(0, 2)),
        "endpoint_id": st.one_of(st.none(), _text),
        "model_permaslug": st.one_of(st.none(), _text),
    },
)
_generation = st.fixed_dictionaries(
    {
        "id": _text.filter(lambda s: bool(s.strip())),
        "created_at": st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2261, 1, 1)).map(
            lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        ),
    },
    optional={
        "model": st.one_of(st.none(), _text, st.just("openai/gpt-4o"), st.just("/x"), st.just("a/")),
        "api_type": st.one_of(st.none(), st.sampled_from(["completions", "embeddings", "tts", "other"])),
        "finish_reason": st.one_of(st.none(), _text, st.just("error")),
        "native_finish_reason": st.one_of(st.none(), _text),
        "tokens_prompt": _maybe_int,
        "tokens_completion": _maybe_int,
        "native_tokens_prompt": _maybe_int,
        "native_tokens_completion": _maybe_int,
        "native_tokens_cached": _maybe_int,
        "native_tokens_reasoning": _maybe_int,
        "native_tokens_completion_images": _maybe_int,
        "total_cost": st.one_of(st.none(), st.floats(allow_nan=False), st.integers(0, 10)),
        "usage": st.one_of(st.none(), st.floats(allow_nan=False)),
        "streamed": st.one_of(st.none(), st.booleans()),
        "cancelled": st.one_of(st.none(), st.booleans()),
        "is_byok": st.one_of(st.none(), st.booleans()),
        "external_user": st.one_of(st.none(), _text),
        "session_id": st.one_of(st.none(), _text),
        "provider_name": st.one_of(st.none(), _text),
        "generation_time": st.one_of(st.none(), st.floats(), st.integers(-5, 10**12)),
        "latency": st.one_of(st.none(), st.floats(), st.integers(-5, 10**9)),
        "provider_responses": st.one_of(st.none(), st.lists(_attempt, max_size=3)),
        "orbcast": st.fixed_dictionaries(
            {},
            optional={
                "api_key_name": st.one_of(st.none(), _text, st.just("prod")),
                "ttft_ms": _maybe_int,
                "source": st.sampled_from(["api", "csv", "summary"]),
                "estimated": st.lists(_text, max_size=2),
                "content": st.one_of(
                    st.none(),
                    st.fixed_dictionaries(
                        {"input": st.one_of(_text, st.dictionaries(_text, _text, max_size=2))}
                    ),
                ),
            },
        ),
    },
)
_options = st.builds(
    SpanOptions,
    attrs=st.dictionaries(_text, _text, max_size=2),
    api_key_metadata=st.just({"prod": {"team": "search", 'quote"d': "x\\y"}}),
    include_content=st.booleans(),
    privacy=st.booleans(),
)


# ----------------------------------------------------------------------------- JSON fast path


def test_fast_json_equals_reference_on_realistic_records() -> None:
    records = [GenerationRecord.from_api(d) for d in make_record_dicts(300, seed=3)]
    options = SpanOptions(attrs={"environment": "production"}, api_key_metadata={"k": {"team": "a"}})
    for record in records:
        for opts in (SpanOptions(), options):
            assert resource_spans_json(record, opts) == orjson.dumps(resource_spans(record, opts))
        fragment, trace_id = resource_spans_json_traced(record, options)
        assert (fragment, trace_id) == (resource_spans_json(record, options), trace_id_for(record.id))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_generation, options=_options)
def test_fast_json_equals_reference_on_any_record(data: dict[str, Any], options: SpanOptions) -> None:
    try:
        record = GenerationRecord.from_api(data)
    except ValueError:
        assume(False)  # not a record (e.g. a created_at out of range): nothing to encode
        return
    assert resource_spans_json(record, options) == orjson.dumps(resource_spans(record, options))


def test_joined_fragments_are_a_valid_request() -> None:
    records = [GenerationRecord.from_api(d) for d in make_record_dicts(50, seed=4)]
    body = encode_body([resource_spans_json(r) for r in records], "json")
    message = parse_json_request(body)
    assert [rs.resource.attributes[2].value.string_value for rs in message.resource_spans] == [
        r.id for r in records
    ]


# ----------------------------------------------------------------------------- protobuf


def test_protobuf_matches_official_serializer_on_recorded_push() -> None:
    recorded = _recorded_push()
    request = {"resourceSpans": recorded}
    assert protobuf.encode_request(request) == _reference_pb(request)
    # fragments join into the same request
    fragments = [protobuf.resource_spans_fragment(rs) for rs in recorded]
    assert encode_body(fragments, "protobuf") == _reference_pb(request)


def test_protobuf_matches_official_serializer_on_converted_records() -> None:
    records = [GenerationRecord.from_api(d) for d in make_record_dicts(200, seed=5)]
    for record in records:
        rs = resource_spans(record, SpanOptions(attrs={"team": "ünïcode ✓"}))
        assert protobuf.encode_request([rs]) == _reference_pb({"resourceSpans": [rs]})


def test_protobuf_every_field_and_edge_value() -> None:
    span = {
        "traceId": "0" * 31 + "1",
        "spanId": "ABCDEF0123456789",  # upper-case hex is valid OTLP
        "traceState": "a=1",
        "parentSpanId": "",
        "flags": 257,
        "name": "",
        "kind": 0,
        "startTimeUnixNano": 1,
        "endTimeUnixNano": "18446744073709551615",
        "attributes": [
            {"key": "empty", "value": {}},
            {"key": "s", "value": {"stringValue": ""}},
            {"key": "neg", "value": {"intValue": "-5"}},
            {"key": "big", "value": {"intValue": 9223372036854775807}},
            {"key": "zero", "value": {"doubleValue": 0}},
            {"key": "nzero", "value": {"doubleValue": -0.0}},
            {"key": "f", "value": {"boolValue": False}},
            {"key": "arr", "value": {"arrayValue": {}}},
            {"key": "arr2", "value": {"arrayValue": {"values": [{"intValue": 3}, {"stringValue": "x"}]}}},
            {
                "key": "kv",
                "value": {"kvlistValue": {"values": [{"key": "b", "value": {"bytesValue": "AAE="}}]}},
            },
            {"key": "", "value": {"stringValue": "no key"}},
        ],
        "droppedAttributesCount": 7,
        "events": [
            {"timeUnixNano": "5", "name": "ev", "attributes": [{"key": "k", "value": {"stringValue": "v"}}]},
            {"droppedAttributesCount": 2},
        ],
        "droppedEventsCount": 3,
        "links": [
            {
                "traceId": "ab" * 16,
                "spanId": "cd" * 8,
                "traceState": "x",
                "flags": 256,
                "droppedAttributesCount": 1,
            }
        ],
        "droppedLinksCount": 4,
        "status": {},
    }
    request = {
        "resourceSpans": [
            {
                "resource": {"attributes": [], "droppedAttributesCount": 1},
                "scopeSpans": [
                    {"scope": {}, "spans": [span], "schemaUrl": "s"},
                    {
                        "scope": {
                            "name": "n",
                            "version": "v",
                            "attributes": [{"key": "a", "value": {"boolValue": True}}],
                        }
                    },
                ],
                "schemaUrl": "r",
            },
            {"scopeSpans": []},
        ]
    }
    assert protobuf.encode_request(request) == _reference_pb(request)
    status_variants = [{"code": 2, "message": "boom"}, {"code": 1}, {"message": "only"}]
    for status in status_variants:
        one = {"resourceSpans": [{"scopeSpans": [{"spans": [{**span, "status": status}]}]}]}
        assert protobuf.encode_request(one) == _reference_pb(one)


def test_protobuf_accepts_enum_names_and_rejects_bad_ids() -> None:
    named = {
        "traceId": "ab" * 16,
        "spanId": "cd" * 8,
        "kind": "SPAN_KIND_CLIENT",
        "status": {"code": "STATUS_CODE_OK"},
    }
    numbered = {**named, "kind": 3, "status": {"code": 1}}
    assert protobuf.span(named) == protobuf.span(numbered)
    with pytest.raises(protobuf.EncodeError):
        protobuf.span({"traceId": "xyz", "spanId": "cd" * 8})
    with pytest.raises(protobuf.EncodeError):
        protobuf.span({"traceId": "ab" * 8, "spanId": "cd" * 8})
    with pytest.raises(protobuf.EncodeError):
        protobuf.span({"traceId": "ab" * 16, "spanId": "cd" * 8, "startTimeUnixNano": "soon"})


def test_varint_matches_protobuf() -> None:
    for value in (0, 1, 127, 128, 300, 2**31, 2**63 - 1, -1, -(2**63)):
        request = {
            "resourceSpans": [
                {
                    "scopeSpans": [
                        {"spans": [{"attributes": [{"key": "v", "value": {"intValue": str(value)}}]}]}
                    ]
                }
            ]
        }
        assert protobuf.encode_request(request) == _reference_pb(request)


def test_decodes_official_responses() -> None:
    response = ExportTraceServiceResponse()
    response.partial_success.rejected_spans = 7
    response.partial_success.error_message = "too old"
    assert protobuf.decode_partial_success(response.SerializeToString()) == (7, "too old")
    assert protobuf.decode_partial_success(ExportTraceServiceResponse().SerializeToString()) is None
    status = status_pb2.Status(code=3, message="trace ids must be 128 bit")
    assert protobuf.decode_status_message(status.SerializeToString()) == "trace ids must be 128 bit"
    with pytest.raises(protobuf.EncodeError):
        protobuf.decode_partial_success(b"\x0a\x05\x08")


def test_parsed_back_with_the_official_classes() -> None:
    records = [GenerationRecord.from_api(d) for d in make_record_dicts(20, seed=6)]
    body = encode_body([protobuf.resource_spans_fragment(resource_spans(r)) for r in records], "protobuf")
    message = parse_protobuf_request(body)
    root = message.resource_spans[0].scope_spans[0].spans[0]
    assert root.name == "LLM Generation"
    assert root.trace_id.hex() == resource_spans(records[0])["scopeSpans"][0]["spans"][0]["traceId"]
    assert base64.b64encode(root.span_id)  # 8 bytes, non-empty
    assert len(message.resource_spans) == 20
