"""The record parsers on odd input, the JSONL round trip, CSV rows, and malformed lines with their line
numbers."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orbcast.errors import ExitCode, MalformedInput
from orbcast.records import API_FIELDS, CSV_COLUMNS, GenerationRecord, MalformedRecord, parse_created_at
from orbcast.sources import Problems, iter_csv, iter_jsonl
from tests.conftest import Result

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
INT64_MAX = 2**63 - 1
SAMPLE = {  # the real record from the reference (trimmed)
    "created_at": "2026-09-05T12:54:34.941Z", "model": "google/gemini-3.5-flash-lite-20260721",
    "streamed": True, "cancelled": False, "latency": 639, "generation_time": 692, "tokens_prompt": 6,
    "tokens_completion": 5, "native_tokens_prompt": 16, "native_tokens_completion": 4,
    "native_tokens_reasoning": 0, "native_tokens_cached": 0, "origin": "", "is_byok": False,
    "finish_reason": "length", "native_finish_reason": "MAX_TOKENS", "usage": 1.48e-05,
    "id": "gen-1788612875-1qJQ41IafHPo6WUnyTtZ", "provider_name": "Google", "total_cost": 1.48e-05,
    "provider_responses": [{"provider_name": "Google", "status": 200, "latency": 639}],
    "upstream_inference_cost": 0, "data_region": "global", "brand_new_field": {"x": [1, "ü"]},
}  # fmt: skip


def test_the_reference_sample() -> None:
    record = GenerationRecord.from_api(SAMPLE)
    assert record.start_ns == 1788612874941000000
    assert (record.input_tokens, record.output_tokens, record.duration_ms) == (16, 4, 692)
    assert record.author == "google" and not record.failed
    assert record.extra == {"brand_new_field": {"x": [1, "ü"]}}
    assert record.moderation_latency is None and record.session_id is None  # absent stays unknown


@pytest.mark.parametrize(
    ("field", "raw", "expected"),
    [
        ("native_tokens_prompt", "123", 123),
        ("native_tokens_prompt", " 1,234 ", 1234),
        ("native_tokens_prompt", "12.0", 12),
        ("native_tokens_prompt", 12.9, 12),
        ("native_tokens_prompt", "twelve", None),
        ("native_tokens_prompt", True, None),
        ("native_tokens_prompt", [3], None),
        ("native_tokens_prompt", 2**63, None),  # beyond int64: not a real count
        ("native_tokens_prompt", "9" * 40, None),
        ("native_tokens_prompt", 1e300, None),
        ("native_tokens_prompt", float("nan"), None),
        ("total_cost", "0.0012", 0.0012),
        ("total_cost", float("inf"), None),
        ("total_cost", {"usd": 1}, None),
        ("streamed", "true", True),
        ("streamed", 0, False),
        ("streamed", "maybe", None),
        ("model", 42, "42"),
        ("model", ["a"], None),
        ("provider_responses", '[{"status": 200}, 5]', [{"status": 200}]),
        ("provider_responses", "not json [", None),
        ("provider_responses", {"status": 200}, None),
    ],
)
def test_odd_values_are_coerced_or_unknown(field: str, raw: Any, expected: Any) -> None:
    record = GenerationRecord.from_api({**SAMPLE, field: raw})
    assert getattr(record, field) == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2], "expected a JSON object"),
        ({"created_at": "2026-09-05T12:54:34Z"}, "no generation id"),
        ({"id": "   ", "created_at": "2026-09-05T12:54:34Z"}, "no generation id"),
        ({"id": 17, "created_at": "2026-09-05T12:54:34Z"}, "no generation id"),
        ({"id": "gen-1"}, "created_at is missing"),
        ({"id": "gen-1", "created_at": 1788612874}, "created_at is missing or not a string"),
        ({"id": "gen-1", "created_at": "last tuesday-ish"}, "not a time"),
        ({"id": "gen-1", "created_at": "1969-07-20T20:17:00Z"}, "out of range"),
        ({"id": "gen-1", "created_at": "2026-09-05 12:54:34 PST"}, "not a time"),
    ],
)
def test_unusable_records_are_malformed(data: Any, message: str) -> None:
    with pytest.raises(MalformedRecord, match=message):
        GenerationRecord.from_api(data)


# ----------------------------------------------------------------------------- created_at shapes


@given(
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)),
    st.integers(min_value=0, max_value=9),
    st.integers(min_value=0, max_value=999_999_999),
    st.sampled_from(["Z", "+00:00", "", "+05:30", "-0800", "+14:00", "-03:00"]),
    st.sampled_from(["T", " "]),
)
def test_created_at_with_0_to_9_fractional_digits_and_any_zone(
    moment: datetime, digits: int, nanos: int, zone: str, sep: str
) -> None:
    frac = f"{nanos:09d}"[:digits]
    text = moment.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + (f".{frac}" if digits else "") + zone
    offset = 0
    if zone not in ("Z", ""):
        sign = 1 if zone[0] == "+" else -1
        offset = sign * (int(zone[1:3]) * 3600 + int(zone[-2:]) * 60)
    local = moment.replace(tzinfo=timezone(timedelta(seconds=offset)))
    whole = (local - EPOCH) // timedelta(seconds=1)
    expected = whole * 10**9 + int(frac.ljust(9, "0") if digits else 0)
    assert parse_created_at(text) == expected
    record = GenerationRecord.from_api({"id": "gen-x", "created_at": text})
    assert (record.start_ns, record.created_at) == (expected, text)


# ----------------------------------------------------------------------------- any input


json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=15),
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
odd = st.one_of(
    json_values,
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from(["17", "1,024", "3.5", "1e3", "-0", "9" * 25, "", "  ", "🚀", "null", "true"]),
)
api_objects = st.fixed_dictionaries(
    {
        "id": st.text(min_size=1, max_size=30).filter(str.strip),
        "created_at": st.just("2024-07-15T23:33:19.433273+00:00"),
    },  # noqa: E501
    optional={
        **{name: odd for name in API_FIELDS},
        "orbcast": st.fixed_dictionaries(
            {},
            optional={
                "api_key_name": odd,
                "ttft_ms": odd,
                "source": st.sampled_from(["api", "csv", "summary"]),
                "estimated": st.lists(st.text(max_size=8), max_size=3),
                "content": st.dictionaries(st.sampled_from(["input", "output"]), json_values, max_size=2),
            },
        ),
        "surprise": json_values,
        "ünknown": json_values,
    },
)


@settings(max_examples=250, suppress_health_check=[HealthCheck.too_slow])
@given(api_objects)
def test_every_field_is_what_its_converter_makes_of_the_value(data: dict[str, Any]) -> None:
    # from_api keeps a value of the right type as it is instead of calling the converter: same result
    record = GenerationRecord.from_api(data)
    for name, convert in API_FIELDS.items():
        expected, value = convert(data.get(name)), getattr(record, name)
        assert value == expected and type(value) is type(expected), (name, data.get(name), value)


@pytest.mark.parametrize(
    "text",
    [
        "2023-02-29T00:00:00Z",
        "2024-13-01T00:00:00Z",
        "2024-00-10T00:00:00Z",
        "2024-04-31T00:00:00Z",
        "2024-07-15T24:00:00Z",
        "2024-07-15T23:60:00Z",
        "2024-07-15T23:00:60Z",
        "0000-01-01T00:00:00Z",
    ],
)
def test_impossible_dates_and_times_are_malformed(text: str) -> None:
    with pytest.raises(MalformedRecord, match="not a time"):
        parse_created_at(text)


def test_created_at_shapes_agree_with_datetime() -> None:
    for text, moment in [
        ("2024-02-29T23:59:59.999999999Z", datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)),
        ("1999-12-31 23:00:00-05:30", datetime(2000, 1, 1, 4, 30, tzinfo=UTC)),
        ("2026-11-20T00:00:00.7+0100", datetime(2026, 11, 19, 23, 0, 0, 700000, tzinfo=UTC)),
    ]:
        nanos = int((moment - EPOCH).total_seconds()) * 1_000_000_000 + moment.microsecond * 1000
        extra = 999_999_999 if text.endswith(".999999999Z") else 0
        assert parse_created_at(text) == nanos + extra


@settings(max_examples=250, suppress_health_check=[HealthCheck.too_slow])
@given(api_objects)
def test_any_object_parses_to_typed_fields_and_round_trips_through_jsonl(data: dict[str, Any]) -> None:
    record = GenerationRecord.from_api(data)
    for name in API_FIELDS:
        value = getattr(record, name)
        if value is None:
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            assert -INT64_MAX - 1 <= value <= INT64_MAX
        assert isinstance(value, bool | int | float | str | list), (name, value)
    assert set(record.extra) == set(data) - set(API_FIELDS) - {"id", "created_at", "orbcast"}
    line = record.to_json_line()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert GenerationRecord.from_jsonl_line(line) == record
    again = GenerationRecord.from_jsonl_line(line).to_json_line()
    assert again == line


def test_unknown_fields_with_huge_numbers_still_write_a_jsonl_line() -> None:
    record = GenerationRecord.from_api({**SAMPLE, "future_counter": 2**70})
    assert orjson.loads(GenerationRecord.from_api(SAMPLE).to_json_line())["id"] == SAMPLE["id"]
    assert b'"future_counter":1180591620717411303424' in record.to_json_line()


# ----------------------------------------------------------------------------- CSV rows


def _csv_row(**values: str) -> dict[str, str]:
    row = dict.fromkeys(CSV_COLUMNS, "")
    row.update(values)
    return row


def test_csv_row_maps_the_export_columns() -> None:
    row = _csv_row(
        generation_id="gen-1770404070-abc", created_at="2026-02-06 18:54:30.040", cost_total="0.00123",
        cost_cache="-0.0004", tokens_prompt="1,200", tokens_completion="80", tokens_reasoning="20",
        tokens_cached="600", model_permaslug="anthropic/claude-4-sonnet", provider_name="Amazon Bedrock",
        cancelled="false", streamed="true", user="user_7", finish_reason_raw="end_turn",
        finish_reason_normalized="stop", generation_time_ms="2300", time_to_first_token_ms="640",
        api_key_name="prod key", app_name="Support bot",
    )  # fmt: skip
    record = GenerationRecord.from_csv_row(row)
    assert record.start_ns == parse_created_at("2026-02-06T18:54:30.040Z")  # no zone: UTC
    assert (record.total_cost, record.native_tokens_prompt, record.native_tokens_cached) == (
        0.00123,
        1200,
        600,
    )
    assert (record.ttft_ms, record.api_key_name, record.app_name, record.source) == (
        640.0,
        "prod key",
        "Support bot",
        "csv",
    )
    assert (record.streamed, record.cancelled, record.external_user) == (True, False, "user_7")
    assert record.extra == {"cost_cache": "-0.0004"}
    assert GenerationRecord.from_jsonl_line(record.to_json_line()) == record


@given(st.dictionaries(st.sampled_from(CSV_COLUMNS), st.text(max_size=12)))
def test_any_csv_row_parses_or_is_malformed(values: dict[str, str]) -> None:
    row = _csv_row(**{"generation_id": "gen-1", "created_at": "2026-02-06 18:54:30", **values})
    try:
        record = GenerationRecord.from_csv_row(row)
    except MalformedRecord:
        return
    assert record.source == "csv" and record.id == row["generation_id"].strip()


# ----------------------------------------------------------------------------- files and line numbers


def _jsonl(tmp_path: Path) -> Path:
    good = orjson.dumps(SAMPLE).decode()
    lines = [
        good,
        "",
        '{"id": "gen-2", "created_at": "2026-09-05T12:54:34Z"',
        "[1, 2]",
        good.replace("gen-", "gen2-"),
    ]
    path = tmp_path / "history.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_jsonl_malformed_lines_are_counted_with_their_numbers(tmp_path: Path) -> None:
    path = _jsonl(tmp_path)
    problems = Problems()
    records = list(iter_jsonl(str(path), problems))
    assert [r.id for r in records] == [SAMPLE["id"], SAMPLE["id"].replace("gen-", "gen2-")]
    assert problems.count == 2
    assert [(line, reason.split(" (")[0]) for _, line, reason in problems.items] == [
        (3, "not valid JSON"),
        (4, "expected a JSON object, got list"),
    ]


def test_jsonl_under_strict_stops_at_the_first_bad_line_with_exit_2(tmp_path: Path) -> None:
    path = _jsonl(tmp_path)
    with pytest.raises(MalformedInput) as info:
        list(iter_jsonl(str(path), Problems(strict=True)))
    assert (info.value.line, info.value.exit_code) == (3, ExitCode.USAGE)
    assert info.value.message.startswith(f"{path}:3: not valid JSON")


def test_csv_bad_rows_are_reported_by_line(tmp_path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerow(_csv_row(generation_id="gen-1", created_at="2026-02-06 18:54:30"))
    writer.writerow(_csv_row(generation_id="", created_at="2026-02-06 18:54:30"))
    writer.writerow(_csv_row(generation_id="gen-3", created_at="yesterday"))
    path = tmp_path / "export.csv"
    path.write_text(buffer.getvalue() + "gen-4,2026-02-06 18:54:30" + "," * len(CSV_COLUMNS) + "\n")
    problems = Problems()
    assert [r.id for r in iter_csv(str(path), problems)] == ["gen-1"]
    assert [line for _, line, _ in problems.items] == [3, 4, 5]
    with pytest.raises(MalformedInput, match=r"export\.csv:3: the row has no generation_id"):
        list(iter_csv(str(path), Problems(strict=True)))


def test_strict_on_the_command_line_is_exit_2_with_the_line_number(
    cli: Callable[..., Result], tmp_path: Path
) -> None:  # noqa: E501
    path = _jsonl(tmp_path)
    result = cli("fetch", "--source", f"jsonl:{path}", "--strict", "-o", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 2, result.output
    assert f"{path}:3:" in result.stderr and "Traceback" not in result.output
