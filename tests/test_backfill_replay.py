"""``orbcast replay`` input kinds (CSV, JSONL, OTLP JSON per file or per line), ``--format``,
``--dry-run`` and ``--write-otlp`` (whose output replays to the same spans)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from orbcast.records import CSV_COLUMNS, GenerationRecord
from orbcast.spans import resource_spans, trace_id_for
from orbcast.state import Ledger, destination_key
from tests.conftest import Result
from tests.fake_otlp import FakeOtlp, make_record_dicts, start_receiver, write_jsonl
from tests.otlp_schema import parse_json_request

Cli = Callable[..., Result]


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOtlp]:
    fake = start_receiver()
    monkeypatch.setenv("ORBCAST_OTLP_ENDPOINT", fake.url + "/otlp")
    monkeypatch.setenv("ORBCAST_BACKOFF_SCALE", "0.01")
    yield fake
    fake.close()
    assert fake.invalid == [], fake.invalid


def _json(result: Result) -> dict[str, Any]:
    assert result.stdout.strip().startswith("{"), result.output
    return dict(orjson.loads(result.stdout))


def _csv(path: Path, dicts: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for d in dicts:
            row = dict.fromkeys(CSV_COLUMNS, "")
            row.update(
                generation_id=d["id"],
                created_at=d["created_at"].replace("T", " ").rstrip("Z"),
                cost_total=str(d["total_cost"] or 0),
                tokens_prompt=str(d["native_tokens_prompt"]),
                tokens_completion=str(d["native_tokens_completion"]),
                model_permaslug=d["model"] or "",
                provider_name=d["provider_name"],
                generation_time_ms="1234",
                time_to_first_token_ms="321",
                api_key_name="backend-prod",
            )
            writer.writerow(row)
    return path


def test_csv_export_is_detected_and_sent(cli: Cli, receiver: FakeOtlp, tmp_path: Path) -> None:
    dicts = make_record_dicts(15, seed=21)
    path = _csv(tmp_path / "openrouter_activity_2026-11-20.csv", dicts)
    result = cli("replay", str(path), "-o", "json")
    assert result.exit_code == 0, result.output
    assert _json(result)["generations_sent"] == 15
    roots = [s for s in receiver.spans.values() if not s.parent]
    assert {s.resource["openrouter.trace.id"] for s in roots} == {d["id"] for d in dicts}
    assert {s.attributes["trace.metadata.openrouter.first_token_ms"] for s in roots} == {321}
    assert {s.attributes["orbcast.source"] for s in roots} == {"csv"}


def test_several_files_of_different_kinds_in_one_run(cli: Cli, receiver: FakeOtlp, tmp_path: Path) -> None:
    a, b = make_record_dicts(10, seed=22), make_record_dicts(10, seed=23)
    jsonl = write_jsonl(tmp_path / "a.data", a)  # the name says nothing: the content does
    table = _csv(tmp_path / "b.data", b)
    summary = _json(cli("replay", str(jsonl), str(table), "-o", "json"))
    assert summary["generations_sent"] == 20
    assert receiver.generation_ids() == {d["id"] for d in a + b}


def test_format_overrides_detection(cli: Cli, receiver: FakeOtlp, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "history.jsonl", make_record_dicts(3, seed=24))
    result = cli("replay", str(path), "--format", "ids")  # read as an id list: needs an OpenRouter key
    assert result.exit_code == 3 and "OpenRouter key" in result.stderr
    assert receiver.requests == []
    assert cli("replay", str(path), "--format", "parquet").exit_code == 2


def test_write_otlp_then_replay_sends_the_same_spans(
    cli: Cli, receiver: FakeOtlp, tmp_path: Path, isolated: Path
) -> None:
    dicts = make_record_dicts(40, seed=25)
    history = write_jsonl(tmp_path / "history.jsonl", dicts)
    out = tmp_path / "history.otlp.jsonl"
    written = cli("replay", str(history), "--write-otlp", str(out), "--batch-spans", "25", "-o", "json")
    assert written.exit_code == 0, written.output
    assert receiver.requests == []  # nothing pushed
    summary = _json(written)
    assert summary["mode"] == "write-otlp" and summary["generations_sent"] == 40
    lines = out.read_bytes().splitlines()
    assert len(lines) == summary["requests"] > 1
    expected = {(trace_id_for(d["id"]), d["id"]) for d in dicts}
    seen = set()
    for line in lines:  # every line is a valid OTLP/HTTP JSON request
        for rs in parse_json_request(line).resource_spans:
            seen.add(
                (rs.scope_spans[0].spans[0].trace_id.hex(), rs.resource.attributes[2].value.string_value)
            )
    assert seen == expected

    replayed = _json(cli("replay", str(out), "-o", "json"))  # detected as OTLP, one request per line
    assert replayed["generations_sent"] == 40
    direct = {(k, s.name, s.start, s.end, tuple(sorted(s.attributes))) for k, s in receiver.spans.items()}
    want = set()
    for d in dicts:
        rs = resource_spans(GenerationRecord.from_api(d))
        for span in rs["scopeSpans"][0]["spans"]:
            key = (span["traceId"], span["spanId"])
            names = tuple(sorted(a["key"] for a in span["attributes"]))
            want.add((key, span["name"], int(span["startTimeUnixNano"]), int(span["endTimeUnixNano"]), names))
    assert direct == want
    # the OTLP units were ledgered by generation id: the JSONL they came from counts as sent
    again = _json(cli("replay", str(history), "-o", "json"))
    assert again["generations_sent"] == 0 and again["skipped_already_sent"] == 40
    with Ledger(isolated / "state") as ledger:
        assert len(ledger.entries(destination_key(receiver.endpoint, None))) == 40


def test_otlp_request_per_file_split_by_trace_and_bad_ids_reported(
    cli: Cli, receiver: FakeOtlp, tmp_path: Path
) -> None:
    def span(trace: str, span_id: str, name: str) -> dict[str, Any]:
        return {
            "traceId": trace,
            "spanId": span_id,
            "name": name,
            "kind": 2,
            "startTimeUnixNano": "1795132800000000000",
            "endTimeUnixNano": "1795132801000000000",
            "attributes": [{"key": "http.route", "value": {"stringValue": "/x"}}],
        }

    request = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "lib"},
                        "spans": [span("a" * 32, "1" * 16, "one"), span("b" * 32, "2" * 16, "two")],
                    },
                    {"scope": {"name": "lib2"}, "spans": [span("a" * 32, "3" * 16, "three")]},
                ],
            },
            {"resource": {}, "scopeSpans": [{"spans": [span("0" * 32, "4" * 16, "zero trace id")]}]},
        ]
    }
    path = tmp_path / "export.json"
    path.write_bytes(orjson.dumps(request, option=orjson.OPT_INDENT_2))  # one request over many lines
    result = cli("replay", str(path), "-o", "json")
    assert result.exit_code == 9, result.output  # the zero-ID resource was not sent
    summary = _json(result)
    assert summary["generations_sent"] == 2 and summary["malformed"] == 1 and summary["spans_sent"] == 3
    assert "traceId is all zeros" in result.stderr
    assert set(receiver.spans) == {("a" * 32, "1" * 16), ("b" * 32, "2" * 16), ("a" * 32, "3" * 16)}
    assert receiver.spans[("a" * 32, "3" * 16)].resource == {"service.name": "api"}
    again = _json(cli("replay", str(path), "-o", "json"))
    assert again["generations_sent"] == 0 and again["skipped_already_sent"] == 2


def test_dry_run_sends_nothing_and_shows_a_sample(
    cli: Cli, receiver: FakeOtlp, tmp_path: Path, isolated: Path
) -> None:
    dicts = make_record_dicts(12, seed=26)
    path = write_jsonl(tmp_path / "history.jsonl", dicts)
    table = cli("replay", str(path), "--dry-run", "--attr", "team=search")
    assert table.exit_code == 0, table.output
    assert "would send" in table.stdout and "12" in table.stdout
    assert "span 'LLM Generation'" in table.stdout and "trace.metadata.team = 'search'" in table.stdout
    as_json = _json(cli("replay", str(path), "--dry-run", "-o", "json"))
    assert as_json["mode"] == "dry-run" and as_json["generations_sent"] == 12 and as_json["find"] is None
    assert as_json["sample"]["resource"]["attributes"][2]["value"]["stringValue"] == dicts[0]["id"]
    assert receiver.requests == []
    with Ledger(isolated / "state") as ledger:
        assert ledger.count() == 0


def test_write_otlp_refuses_protobuf_and_stdout_json(cli: Cli, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "h.jsonl", make_record_dicts(2, seed=27))
    out = str(tmp_path / "o.jsonl")
    assert cli("replay", str(path), "--write-otlp", out, "--encoding", "protobuf").exit_code == 2
    assert cli("replay", str(path), "--write-otlp", "-", "-o", "json").exit_code == 2
    piped = cli("replay", str(path), "--write-otlp", "-")
    assert piped.exit_code == 0 and len(piped.stdout.strip().splitlines()) == 1
    assert len(parse_json_request(piped.stdout.strip()).resource_spans) == 2
