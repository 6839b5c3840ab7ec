"""Span mapping on odd records: whatever a record holds, the spans are schema-valid OTLP."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orbcast.records import API_FIELDS, GenerationRecord
from orbcast.spans import SpanOptions, encode_json, resource_spans, trace_id_for
from tests.otlp_schema import attributes, parse_json_request

INT64_MAX = 2**63 - 1
BASE = {"id": "gen-1788612875-1qJQ41IafHPo6WUnyTtZ", "created_at": "2026-09-05T12:54:34.941Z"}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["12", "1,234", "9" * 30, "-1", "1e400", "nan", "", " 42 ", "ünïcødé 🚀"]),
)
attempt = st.dictionaries(
    st.sampled_from(
        ["provider_name", "status", "latency", "is_byok", "endpoint_id", "model_permaslug", "id"]
    ),
    scalars,
)
field_values = st.fixed_dictionaries(
    {}, optional={name: scalars for name in API_FIELDS if name != "provider_responses"}
).flatmap(
    lambda d: st.fixed_dictionaries(
        {"provider_responses": st.one_of(st.none(), st.lists(st.one_of(attempt, scalars), max_size=4))}
    ).map(lambda extra: {**d, **extra})
)
own = st.fixed_dictionaries(
    {},
    optional={
        "api_key_name": scalars,
        "ttft_ms": scalars,
        "source": st.sampled_from(["api", "csv", "demo"]),
        "estimated": st.lists(st.text(max_size=8), max_size=3),
    },
)


def _check(record: GenerationRecord, options: SpanOptions | None = None) -> Any:
    rs = resource_spans(record, options)
    message = parse_json_request(encode_json([rs]))  # strict: any bad type, ID or number fails here
    spans = message.resource_spans[0].scope_spans[0].spans
    root = spans[0]
    assert root.trace_id.hex() == trace_id_for(record.id)
    assert root.end_time_unix_nano >= root.start_time_unix_nano > 0
    for child in spans[1:]:
        assert child.parent_span_id == root.span_id
        assert child.end_time_unix_nano >= child.start_time_unix_nano
    assert len({s.span_id for s in spans}) == len(spans)
    return root


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(field_values, own, st.text(min_size=1, max_size=40).filter(str.strip))
def test_any_record_gives_schema_valid_spans(
    fields: dict[str, Any], extra: dict[str, Any], gen_id: str
) -> None:
    record = GenerationRecord.from_api({**BASE, **fields, "id": gen_id, "orbcast": extra})
    root = _check(record)
    attrs = attributes(root)
    for key, value in attrs.items():
        if isinstance(value, int) and not isinstance(value, bool):
            assert -INT64_MAX - 1 <= value <= INT64_MAX, key


def test_missing_duration_gives_a_zero_length_span() -> None:
    record = GenerationRecord.from_api({**BASE, "generation_time": None, "latency": None})
    root = _check(record)
    assert root.end_time_unix_nano == root.start_time_unix_nano


@pytest.mark.parametrize("generation_time", [0, -5, 90_000_000, 1e300, "soon"])
def test_impossible_durations_are_unknown_not_sent(generation_time: Any) -> None:
    record = GenerationRecord.from_api({**BASE, "generation_time": generation_time, "latency": None})
    assert record.duration_ms is None
    root = _check(record)
    assert root.end_time_unix_nano == root.start_time_unix_nano


def test_latency_stands_in_for_a_missing_generation_time() -> None:
    record = GenerationRecord.from_api({**BASE, "generation_time": None, "latency": 639})
    root = _check(record)
    assert root.end_time_unix_nano - root.start_time_unix_nano == 639_000_000


def test_token_counts_beyond_int64_are_dropped_not_crashing() -> None:
    record = GenerationRecord.from_api(
        {
            **BASE,
            "native_tokens_prompt": 2**64,
            "native_tokens_completion": "99999999999999999999999",
            "tokens_prompt": 12,
        }  # noqa: E501
    )
    attrs = attributes(_check(record))
    assert "gen_ai.usage.input_tokens" not in attrs or attrs["gen_ai.usage.input_tokens"] == 12
    assert "gen_ai.usage.output_tokens" not in attrs
    assert attrs["trace.metadata.openrouter_generation.tokens_prompt"] == 12


def test_huge_values_inside_provider_attempts_do_not_break_the_request() -> None:
    record = GenerationRecord.from_api(
        {
            **BASE,
            "generation_time": 1e300,
            "provider_responses": [
                {"provider_name": "Big", "status": 2**70, "latency": 10**40, "endpoint_id": 7},
                {"provider_name": None, "status": "200", "latency": -5},
            ],
        }
    )
    root = _check(record)
    attrs = attributes(root)
    assert "Big" in attrs["trace.metadata.openrouter.provider_responses"]


def test_unicode_survives_the_mapping() -> None:
    record = GenerationRecord.from_api(
        {
            **BASE,
            "model": "qwen/通义千问-max",
            "external_user": "üser-🚀",
            "session_id": "sess\u00a0\u2028x",
            "provider_responses": [{"provider_name": "Zhipu 智谱", "status": 200, "latency": 10}],
            "orbcast": {"api_key_name": "clé «prod»"},
        }
    )
    message = parse_json_request(encode_json([resource_spans(record, SpanOptions(attrs={"équipe": "ü"}))]))
    spans = message.resource_spans[0].scope_spans[0].spans
    attrs = attributes(spans[0])
    assert attrs["gen_ai.request.model"] == "qwen/通义千问-max"
    assert attrs["user.id"] == "üser-🚀" and attrs["session.id"] == "sess\u00a0\u2028x"
    assert attrs["trace.metadata.openrouter.api_key_name"] == "clé «prod»"
    assert attrs["trace.metadata.équipe"] == "ü"
    assert spans[1].name == "provider attempt 1: Zhipu 智谱"


def test_failed_and_fallback_status_rules() -> None:
    fallback = GenerationRecord.from_api(
        {**BASE, "finish_reason": "stop", "provider_responses": [{"status": 503}, {"status": 200}]}
    )
    assert _check(fallback).status.code == 1
    all_failed = GenerationRecord.from_api(
        {**BASE, "provider_responses": [{"status": 429}, {"status": "502"}]}
    )
    root = _check(all_failed)
    assert (root.status.code, root.status.message) == (2, "Provider returned error")
    broke_off = GenerationRecord.from_api(
        {**BASE, "finish_reason": "error", "provider_responses": [{"status": 200}]}
    )  # noqa: E501
    assert _check(broke_off).status.code == 2
    unknown = GenerationRecord.from_api({**BASE, "provider_responses": [{"status": None}]})
    assert _check(unknown).status.code == 1
