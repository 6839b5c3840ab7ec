"""The span mapping: Broadcast's shape, checked against the official schema and a recorded push."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from orbcast.records import GenerationRecord
from orbcast.spans import SpanOptions, encode_json, resource_spans, root_span_id_for, trace_id_for
from orbcast.timeparse import from_unix_nano
from tests.otlp_schema import attributes, parse_json_request

DATA = Path(__file__).parent / "data" / "tempo"


def _dataset() -> list[dict[str, Any]]:
    return orjson.loads((DATA / "dataset.json").read_bytes())["runs"]["default"]["generations"]


def _record_for(gen: dict[str, Any]) -> GenerationRecord:
    """A /generation record describing one generation of the recorded dataset."""
    start = from_unix_nano(gen["start_unix_nano"])
    frac = gen["start_unix_nano"] % 1_000_000_000
    created = start.strftime("%Y-%m-%dT%H:%M:%S.") + f"{frac:09d}Z"
    attempts = [
        {"provider_name": a["provider"], "status": a["status_code"], "latency": a["duration_ms"]}
        for a in gen["attempts"]
    ]
    return GenerationRecord.from_api(
        {
            "id": gen["gen_id"],
            "created_at": created,
            "model": gen["model"],
            "provider_name": gen["provider"],
            "generation_time": gen["duration_ms"],
            "native_tokens_prompt": gen["input_tokens"],
            "native_tokens_completion": gen["output_tokens"],
            "total_cost": gen["cost"],
            "external_user": gen["user_id"],
            "session_id": gen["session_id"],
            "finish_reason": "error" if gen["status"] == "error" else "stop",
            "provider_responses": attempts,
        }
    )


def test_broadcast_worked_example_ids() -> None:
    gen = "gen-1788612875-1qJQ41IafHPo6WUnyTtZ"
    assert trace_id_for(gen) == "7bb1830b2921c9336483b844723fccfd"
    assert root_span_id_for(gen) == "7bb1830b2921c933"


@pytest.mark.parametrize("index", [0, 5, 17, 42])
def test_matches_recorded_broadcast_shape(index: int) -> None:
    gen = _dataset()[index]
    pushed = orjson.loads((DATA / "push-batch.default.json").read_bytes())["resourceSpans"]
    expected = next(
        rs for rs in pushed if rs["resource"]["attributes"][2]["value"]["stringValue"] == gen["gen_id"]
    )
    ours = resource_spans(
        _record_for(gen), SpanOptions(attrs={"environment": gen["environment"], "feature": gen["feature"]})
    )

    assert ours["resource"] == expected["resource"]
    assert ours["scopeSpans"][0]["scope"] == expected["scopeSpans"][0]["scope"]
    got_spans = ours["scopeSpans"][0]["spans"]
    want_spans = expected["scopeSpans"][0]["spans"]
    assert [(s["traceId"], s["spanId"], s.get("parentSpanId"), s["name"], s["kind"]) for s in got_spans] == [
        (s["traceId"], s["spanId"], s.get("parentSpanId"), s["name"], s["kind"]) for s in want_spans
    ]
    root, want_root = got_spans[0], want_spans[0]
    assert (root["startTimeUnixNano"], root["endTimeUnixNano"]) == (
        want_root["startTimeUnixNano"],
        want_root["endTimeUnixNano"],
    )
    assert root["status"] == want_root["status"]
    got_attrs = {a["key"]: a["value"] for a in root["attributes"]}
    for attr in want_root["attributes"]:
        if attr["key"] == "trace.metadata.openrouter.first_token_ms":
            continue  # /generation has no time to first token; only the CSV export carries it
        assert got_attrs.get(attr["key"]) == attr["value"], attr["key"]
    for got, want in zip(got_spans[1:], want_spans[1:], strict=True):
        want_attrs = {a["key"]: a["value"] for a in want["attributes"]}
        got_attrs = {a["key"]: a["value"] for a in got["attributes"]}
        assert {k: got_attrs.get(k) for k in want_attrs} == want_attrs
        assert got["status"] == want["status"] == {}


def test_every_dataset_generation_is_schema_valid() -> None:
    body = encode_json(resource_spans(_record_for(g)) for g in _dataset())
    message = parse_json_request(body)
    assert len(message.resource_spans) == 60
    for rs, gen in zip(message.resource_spans, _dataset(), strict=True):
        root = rs.scope_spans[0].spans[0]
        assert root.trace_id.hex() == gen["trace_id"]
        assert root.span_id.hex() == gen["root_span_id"]
        attrs = attributes(root)
        assert attrs["gen_ai.usage.input_tokens"] == gen["input_tokens"]
        assert attrs["gen_ai.usage.total_cost"] == pytest.approx(gen["cost"])
        assert root.kind == 3
        assert root.status.code == (2 if gen["status"] == "error" else 1)


def test_content_only_when_asked_and_never_under_privacy() -> None:
    record = _record_for(_dataset()[0])
    record.content = {
        "input": {"messages": [{"role": "user", "content": "héllo"}]},
        "output": {"completion": "hi"},
    }

    def keys(options: SpanOptions) -> set[str]:
        return {a["key"] for a in resource_spans(record, options)["scopeSpans"][0]["spans"][0]["attributes"]}

    assert "gen_ai.prompt" not in keys(SpanOptions())
    assert {"gen_ai.prompt", "gen_ai.completion"} <= keys(SpanOptions(include_content=True))
    assert "gen_ai.prompt" not in keys(SpanOptions(include_content=True, privacy=True))


def test_api_key_metadata_and_attrs() -> None:
    record = _record_for(_dataset()[1])
    record.api_key_name = "prod key"
    options = SpanOptions(
        attrs={"team": "search"}, api_key_metadata={"prod key": {"environment": "production", "team": "x"}}
    )
    attrs = {
        a["key"]: a["value"]
        for a in resource_spans(record, options)["scopeSpans"][0]["spans"][0]["attributes"]
    }
    assert attrs["trace.metadata.environment"] == {"stringValue": "production"}
    assert attrs["trace.metadata.team"] == {"stringValue": "search"}  # --attr wins over config
    assert attrs["trace.metadata.openrouter.api_key_name"] == {"stringValue": "prod key"}
