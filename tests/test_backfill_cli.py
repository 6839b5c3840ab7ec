"""``orbcast replay`` / ``backfill`` end to end against the loopback receiver: exactly once by ID through
faults and re-runs, the ledger, every exit code, and no token in any output."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from orbcast.backfill_summary import Summary, find_guidance
from orbcast.spans import trace_id_for
from orbcast.state import Ledger, destination_key
from tests.conftest import Result
from tests.fake_openrouter import MGMT_KEY, FakeOpenRouter, make_generations
from tests.fake_otlp import DROP, Answer, FakeOtlp, make_record_dicts, start_receiver, write_jsonl

TOKEN = "glc_eyJrIjoiZmFrZS10b2tlbi1mb3ItdGVzdHMifQ=="
USER = "1234567"
Cli = Callable[..., Result]


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOtlp]:
    fake = start_receiver()
    monkeypatch.setenv("ORBCAST_OTLP_ENDPOINT", fake.url + "/otlp")
    monkeypatch.setenv("ORBCAST_OTLP_USER", USER)
    monkeypatch.setenv("ORBCAST_OTLP_TOKEN", TOKEN)
    monkeypatch.setenv("ORBCAST_BACKOFF_SCALE", "0.01")
    yield fake
    fake.close()
    assert fake.invalid == [], fake.invalid


@pytest.fixture
def history(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    dicts = make_record_dicts(120, seed=11)
    return write_jsonl(tmp_path / "history.jsonl", dicts), dicts


def _json(result: Result) -> dict[str, Any]:
    assert result.stdout.strip().startswith("{"), result.output
    return dict(orjson.loads(result.stdout))


def _ledger(home: Path, receiver: FakeOtlp) -> list[tuple[str, str, str]]:
    with Ledger(home / "state") as ledger:
        return ledger.entries(destination_key(receiver.endpoint, USER))


def test_replay_sends_every_generation_once_and_records_it(
    cli: Cli, receiver: FakeOtlp, history: tuple[Path, list[dict[str, Any]]], isolated: Path
) -> None:
    path, dicts = history
    result = cli("replay", str(path), "--batch-spans", "40", "-o", "json")
    assert result.exit_code == 0, result.output
    summary = _json(result)
    ids = {d["id"] for d in dicts}
    assert summary["status"] == "done" and summary["generations_sent"] == 120
    assert summary["spans_sent"] == len(receiver.spans) == sum(r.spans for r in receiver.requests)
    assert summary["requests"] == len(receiver.requests) > 3  # batched by --batch-spans
    assert all(r.spans <= 40 for r in receiver.requests)
    assert receiver.generation_ids() == ids
    assert set(receiver.receipts().values()) == {1}
    assert receiver.trace_ids() == {trace_id_for(i) for i in ids}
    assert summary["bytes_sent"] == sum(len(r.body) for r in receiver.requests)
    assert summary["bytes_uncompressed"] > summary["bytes_sent"]  # gzip by default
    assert summary["cost_usd"] == pytest.approx(sum(d["total_cost"] or 0 for d in dicts))
    rows = _ledger(isolated, receiver)
    assert {g for g, _, _ in rows} == ids and len(rows) == 120
    assert {t for _, t, _ in rows} == {trace_id_for(i) for i in ids}
    assert summary["find"]["trace_id_command"].startswith("orbcast trace ")


def test_rerun_sends_only_what_is_missing_and_force_resends(
    cli: Cli, receiver: FakeOtlp, history: tuple[Path, list[dict[str, Any]]], isolated: Path, tmp_path: Path
) -> None:
    path, dicts = history
    assert cli("replay", str(path)).exit_code == 0
    first_requests = len(receiver.requests)

    again = _json(cli("replay", str(path), "-o", "json"))
    assert again["generations_sent"] == 0 and again["skipped_already_sent"] == 120
    assert len(receiver.requests) == first_requests

    more = make_record_dicts(10, seed=12)
    write_jsonl(path, dicts + more)
    third = _json(cli("replay", str(path), "-o", "json"))
    assert third["generations_sent"] == 10 and third["skipped_already_sent"] == 120
    assert receiver.generation_ids() == {d["id"] for d in dicts + more}

    forced = _json(cli("replay", str(path), "--force", "-o", "json"))
    assert forced["generations_sent"] == 130 and forced["skipped_already_sent"] == 0
    assert set(receiver.receipts().values()) == {2}  # same trace and span IDs: the same spans again
    assert len(receiver.trace_ids()) == 130
    assert len(_ledger(isolated, receiver)) == 130  # and acknowledged once in the ledger


def test_exactly_once_by_id_through_faults(
    cli: Cli, receiver: FakeOtlp, history: tuple[Path, list[dict[str, Any]]], isolated: Path
) -> None:
    path, dicts = history
    receiver.script(
        Answer(429, retry_after="2"),
        Answer(503),
        DROP,
        Answer(503),
        Answer(502),
        Answer(200, delay=0.2),
        Answer(504),
    )
    result = cli("replay", str(path), "--batch-spans", "30", "--concurrency", "3", "-o", "json")
    assert result.exit_code == 0, result.output
    summary = _json(result)
    assert summary["retries"] == 6 and summary["generations_sent"] == 120
    assert receiver.generation_ids() == {d["id"] for d in dicts}
    assert set(receiver.receipts().values()) == {1}  # failed attempts stored nothing
    assert len(_ledger(isolated, receiver)) == 120


def test_partial_success_exit_9_then_rerun_sends_the_rejected_batch(
    cli: Cli, receiver: FakeOtlp, history: tuple[Path, list[dict[str, Any]]], isolated: Path
) -> None:
    path, _ = history
    receiver.script(Answer(200, partial=4))
    result = cli("replay", str(path), "--batch-spans", "60", "--concurrency", "1", "-o", "json")
    assert result.exit_code == 9, result.output
    summary = _json(result)
    assert summary["rejected_spans"] == 4 and summary["status"] == "done"
    rejected = summary["rejected_generations"]
    assert 0 < rejected < 120 and summary["generations_sent"] == 120 - rejected
    assert "4 spans rejected" in result.stderr and "some spans were refused" in result.stderr
    assert len(_ledger(isolated, receiver)) == 120 - rejected

    again = _json(cli("replay", str(path), "-o", "json"))
    assert again["generations_sent"] == rejected and again["skipped_already_sent"] == 120 - rejected
    assert len(_ledger(isolated, receiver)) == 120


@pytest.mark.parametrize(
    ("answer", "code", "words"),
    [
        (
            Answer(400, body=b'{"code":3,"message":"trace ids must be 128 bit, received 0 bits"}'),
            9,
            "128 bit",
        ),
        (
            Answer(401, body=b"invalid authentication credentials", content_type="text/plain"),
            4,
            "traces:write",
        ),
        (Answer(403, body=b"forbidden", content_type="text/plain"), 4, "instance ID"),
        (Answer(404, body=b"404 page not found", content_type="text/plain"), 5, "/otlp"),
        (Answer(415, body=b"415 unsupported media type", content_type="text/plain"), 5, "/otlp"),
        (Answer(500), 6, "HTTP 500"),
    ],
    ids=["400", "401", "403", "404", "415", "500"],
)
def test_refusals_end_the_run_with_their_exit_code(
    cli: Cli,
    receiver: FakeOtlp,
    history: tuple[Path, list[dict[str, Any]]],
    answer: Answer,
    code: int,
    words: str,
) -> None:
    path, _ = history
    receiver.script(answer)
    result = cli("replay", str(path), "--concurrency", "1", "--batch-spans", "500")
    assert result.exit_code == code, result.output
    assert words in result.stderr
    assert len(receiver.requests) == 1  # not retried


def test_unavailable_after_retries_exit_6_keeps_what_was_acknowledged(
    cli: Cli,
    receiver: FakeOtlp,
    history: tuple[Path, list[dict[str, Any]]],
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORBCAST_BACKOFF_SCALE", "0.002")  # retries run out quickly
    path, dicts = history
    receiver.script(Answer(200), Answer(200))
    receiver.default = Answer(503)
    result = cli("replay", str(path), "--concurrency", "1", "--batch-spans", "20")
    assert result.exit_code == 6, result.output
    assert "still answers HTTP 503" in result.stderr
    rows = _ledger(isolated, receiver)
    assert {g for g, _, _ in rows} == receiver.generation_ids() and 0 < len(rows) < 120
    receiver.default = Answer(200)
    summary = _json(cli("replay", str(path), "-o", "json"))
    assert summary["resumed"] == len(rows) and summary["generations_sent"] == 120 - len(rows)
    assert "resumed_runs" in summary and len(summary["resumed_runs"]) == 1
    assert receiver.generation_ids() == {d["id"] for d in dicts}


def test_no_token_in_any_output_even_verbose(
    cli: Cli, receiver: FakeOtlp, history: tuple[Path, list[dict[str, Any]]]
) -> None:
    path, _ = history
    basic = base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()
    receiver.script(Answer(503), Answer(401, body=f"bad token {TOKEN}".encode(), content_type="text/plain"))
    result = cli("--verbose", "replay", str(path), "--concurrency", "1", "--verbose")
    assert result.exit_code == 4
    assert receiver.requests[0].headers["Authorization"] == f"Basic {basic}"
    for secret in (TOKEN, basic, TOKEN[:20]):
        assert secret not in result.output
    ok = cli("-v", "replay", str(path), "-o", "json", "--otlp-token", TOKEN)
    for secret in (TOKEN, basic):
        assert secret not in ok.output


def test_missing_endpoint_is_a_config_error(cli: Cli, history: tuple[Path, list[dict[str, Any]]]) -> None:
    path, _ = history
    result = cli("replay", str(path))
    assert result.exit_code == 3
    assert "--otlp-endpoint" in result.stderr


def test_malformed_lines_exit_9_or_2_with_strict(cli: Cli, receiver: FakeOtlp, tmp_path: Path) -> None:
    dicts = make_record_dicts(5, seed=13)
    path = tmp_path / "mixed.jsonl"
    lines = [orjson.dumps(d) for d in dicts]
    lines.insert(2, b'{"id": "gen-x", "created_at": "not a time"}')
    lines.insert(4, b"{broken json")
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = cli("replay", str(path), "-o", "json")
    assert result.exit_code == 9
    assert _json(result)["malformed"] == 2 and _json(result)["generations_sent"] == 5
    assert f"{path}:3:" in result.stderr and f"{path}:5:" in result.stderr
    strict = cli("replay", str(path), "--strict", "--force")
    assert strict.exit_code == 2 and f"{path}:3" in strict.stderr


def test_bad_flags_are_usage_errors(
    cli: Cli, receiver: FakeOtlp, history: tuple[Path, list[dict[str, Any]]]
) -> None:
    path, _ = history
    assert cli("replay", str(path), "--batch-spans", "0").exit_code == 2
    assert cli("replay", str(path), "--concurrency", "99").exit_code == 2
    assert cli("replay", str(path), "--attr", "novalue").exit_code == 2
    assert cli("replay", str(path), "-o", "csv").exit_code == 2
    assert cli("replay", str(tmp := path.parent / "missing.jsonl")).exit_code == 2, tmp
    assert cli("backfill", "--source", "jsonl:" + str(path), "--since", "yesterday-ish").exit_code == 2
    assert receiver.requests == []


def test_backfill_from_a_file_source_honours_the_window_and_attrs(
    cli: Cli, receiver: FakeOtlp, history: tuple[Path, list[dict[str, Any]]]
) -> None:
    path, dicts = history  # generations 37 s apart from 2026-11-20T00:00Z
    window = ["--from", "2026-11-20T00:10:00Z", "--to", "2026-11-20T00:40:00Z"]
    result = cli(
        "backfill", "--source", f"jsonl:{path}", *window, "--attr", "environment=production", "-o", "json"
    )
    assert result.exit_code == 0, result.output
    summary = _json(result)
    inside = [d for d in dicts if "2026-11-20T00:10:00" <= d["created_at"][:19] < "2026-11-20T00:40:00"]
    assert summary["generations_sent"] == len(inside) and summary["outside_window"] == 120 - len(inside)
    assert summary["window"] == {"from": "2026-11-20T00:10:00.000Z", "to": "2026-11-20T00:40:00.000Z"}
    roots = [s for s in receiver.spans.values() if not s.parent]
    assert {s.attributes["trace.metadata.environment"] for s in roots} == {"production"}


def test_summary_table_says_how_to_find_the_data(
    cli: Cli, receiver: FakeOtlp, history: tuple[Path, list[dict[str, Any]]]
) -> None:
    path, _ = history
    result = cli("replay", str(path))
    assert result.exit_code == 0
    assert "generations sent" in result.stdout and "120" in result.stdout
    assert "orbcast trace " in result.stderr
    assert "~15 min after the push" in result.stderr
    assert "orbcast query --from 2026-11-20T00:00Z" in result.stderr
    assert "TraceQL metrics" in result.stderr


def test_protobuf_encoding_end_to_end(
    cli: Cli, receiver: FakeOtlp, history: tuple[Path, list[dict[str, Any]]]
) -> None:
    path, dicts = history
    result = cli("replay", str(path), "--encoding", "protobuf", "--no-gzip", "-o", "json")
    assert result.exit_code == 0, result.output
    assert {r.headers["Content-Type"] for r in receiver.requests} == {"application/x-protobuf"}
    assert all("Content-Encoding" not in r.headers for r in receiver.requests)
    assert receiver.generation_ids() == {d["id"] for d in dicts}
    assert _json(result)["bytes_sent"] == _json(result)["bytes_uncompressed"]


def test_backfill_from_the_api_does_not_fetch_what_was_sent(
    cli: Cli, receiver: FakeOtlp, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    start = (datetime.now(UTC) - timedelta(days=2)).replace(second=0, microsecond=0)
    gens = make_generations(30, start, timedelta(minutes=7))
    window = ["--from", start.isoformat(), "--to", (start + timedelta(hours=4)).isoformat()]
    with FakeOpenRouter(gens) as openrouter:
        monkeypatch.setenv("OPENROUTER_MANAGEMENT_KEY", MGMT_KEY)
        monkeypatch.setenv("OPENROUTER_BASE_URL", openrouter.url)
        # a first run that stops after half the generations (the endpoint refuses the credentials)
        receiver.script(Answer(200), Answer(401))
        first = cli(
            "backfill", *window, "--batch-spans", "15", "--concurrency", "1", "--fetch-concurrency", "2"
        )
        assert first.exit_code == 4, first.output
        sent = {g for g, _, _ in _ledger(isolated, receiver)}
        assert 0 < len(sent) < 30
        fetched_before = len(openrouter.requests("generation"))

        second = cli("backfill", *window, "-o", "json", "--verbose")
        assert second.exit_code == 0, second.output
        summary = _json(second)
        assert summary["resumed"] == len(sent) and summary["generations_sent"] == 30 - len(sent)
        fetched_again = {s.query.get("id") for s in openrouter.requests("generation")[fetched_before:]}
        assert fetched_again == {g["id"] for g in gens} - sent  # acknowledged ids were not even fetched
        assert receiver.generation_ids() == {g["id"] for g in gens}
        for secret in (MGMT_KEY, TOKEN):
            assert secret not in second.output and secret not in first.output


def test_guidance_follows_what_tempo_does() -> None:
    now = time.time()
    old = Summary(
        command="backfill", generations=10, sample_trace_ids=["ab" * 16], started=now, finished=now + 5
    )
    old.note_span_time(int((now - 3 * 86400) * 1e9))
    old.note_span_time(int((now - 2 * 86400 + 37) * 1e9))
    found = find_guidance(old)
    assert found is not None and found["backfilled"] is True
    assert found["trace_id_command"] == "orbcast trace " + "ab" * 16
    searchable = datetime.fromisoformat(found["searchable_from"].replace("Z", "+00:00")).timestamp()
    assert searchable == pytest.approx(now + 5 + 15 * 60, abs=1)  # after the backend flush
    first = datetime.fromtimestamp(now - 3 * 86400, UTC).strftime("%Y-%m-%dT%H:%M")
    assert found["query_command"].startswith(f"orbcast query --from {first}Z --to ")
    assert any("TraceQL metrics" in note for note in found["notes"])

    recent = Summary(command="replay", generations=3, started=now, finished=now + 1)
    recent.note_span_time(int((now - 50) * 1e9))
    found = find_guidance(recent)
    assert found is not None and found["backfilled"] is False
    assert any("within a minute" in note for note in found["notes"])
    assert find_guidance(Summary(command="replay", mode="dry-run", generations=3)) is None
