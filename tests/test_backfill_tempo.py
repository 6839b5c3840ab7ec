"""``--skip-existing`` and ``--verify`` against a fake Tempo with the real one's quirks (trimmed search IDs,
empty-trace 200 for unknown IDs); and, when ``ORBCAST_TEST_TEMPO_URL`` and ``ORBCAST_TEST_OTLP_ENDPOINT``
point at a real Tempo, a backfill found by trace ID and by search."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from orbcast.config import load_settings
from orbcast.records import GenerationRecord
from orbcast.spans import resource_spans, trace_id_for
from orbcast.tempo import TempoClient
from tests.conftest import Result
from tests.fake_otlp import FakeOtlp, make_record_dicts, start_receiver, write_jsonl
from tests.fake_tempo import FakeTempo

Cli = Callable[..., Result]
NAMES = ("TEMPO_URL", "OTLP_ENDPOINT", "TEMPO_USER", "TEMPO_TOKEN", "OTLP_USER", "OTLP_TOKEN")
REAL = {n: os.environ.get(f"ORBCAST_TEST_{n}") for n in NAMES}  # read before `isolated` clears them


@pytest.fixture
def tempo() -> Iterator[FakeTempo]:
    with FakeTempo() as fake:
        yield fake


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch, tempo: FakeTempo) -> Iterator[FakeOtlp]:
    fake = start_receiver()
    monkeypatch.setenv("ORBCAST_OTLP_ENDPOINT", fake.url + "/otlp")
    monkeypatch.setenv("ORBCAST_TEMPO_URL", tempo.url)
    monkeypatch.setenv("ORBCAST_BACKOFF_SCALE", "0.01")
    yield fake
    fake.close()
    assert fake.invalid == [], fake.invalid


def _recent(n: int, seed: int) -> list[dict[str, Any]]:
    """Generations of the last hour or so, one of them with a trace ID that starts with 0."""
    dicts = make_record_dicts(n, seed=seed, start=datetime.now(UTC) - timedelta(minutes=90))
    for i in range(10_000):
        gen_id = f"gen-zero-{seed}-{i}"
        if trace_id_for(gen_id).startswith("0"):
            dicts[0]["id"] = gen_id  # Tempo's search trims it: orbcast must pad it back
            break
    return dicts


def _json(result: Result) -> dict[str, Any]:
    assert result.stdout.strip().startswith("{"), result.output
    return dict(orjson.loads(result.stdout))


def test_skip_existing_sends_only_the_gaps(
    cli: Cli, receiver: FakeOtlp, tempo: FakeTempo, tmp_path: Path
) -> None:
    dicts = _recent(40, seed=31)
    live = dicts[::2]  # "live Broadcast" already delivered these, each at its own time
    for d in live:
        record = GenerationRecord.from_api(d)
        tempo.push([resource_spans(record)], ingested_ns=record.start_ns + 60 * 10**9)
    path = write_jsonl(tmp_path / "history.jsonl", dicts)
    result = cli("backfill", "--source", f"jsonl:{path}", "--since", "2h", "--skip-existing", "-o", "json")
    assert result.exit_code == 0, result.output
    summary = _json(result)
    assert summary["skipped_existing"] == 20 and summary["generations_sent"] == 20
    assert receiver.generation_ids() == {d["id"] for d in dicts[1::2]}
    searches = [params for path_, params in tempo.requests if path_ == "/api/search"]
    assert searches and all("start" in p and "end" in p for p in searches)


def test_skip_existing_needs_a_tempo_url(
    cli: Cli, receiver: FakeOtlp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ORBCAST_TEMPO_URL")
    path = write_jsonl(tmp_path / "h.jsonl", _recent(3, seed=32))
    result = cli("backfill", "--source", f"jsonl:{path}", "--since", "2h", "--skip-existing")
    assert result.exit_code == 3 and "--tempo-url" in result.stderr
    assert receiver.requests == []
    assert cli("replay", str(path), "--skip-existing").exit_code in (2, 3)


def test_verify_looks_pushed_traces_up_by_id(
    cli: Cli, receiver: FakeOtlp, tempo: FakeTempo, tmp_path: Path
) -> None:
    dicts = _recent(12, seed=33)
    arrived: list[str] = []

    def forward(items: list[dict[str, Any]]) -> None:  # Tempo keeps every other push only
        arrived.append("x")
        if len(arrived) % 2:
            tempo.push(items)

    receiver.forward = forward
    path = write_jsonl(tmp_path / "history.jsonl", dicts)
    result = cli("replay", str(path), "--verify", "--batch-spans", "6", "--concurrency", "1", "-o", "json")
    assert result.exit_code == 0, result.output
    summary = _json(result)
    stored = {tid for tid in tempo.traces}
    assert summary["verify"]["checked"] == 12
    assert summary["verify"]["found"] == len(stored & {trace_id_for(d["id"]) for d in dicts})
    assert 0 < summary["verify"]["found"] < 12
    lookups = [p for p, params in tempo.requests if p.startswith("/api/v2/traces/")]
    assert len(lookups) == 12
    assert all("start" not in params for p, params in tempo.requests if p.startswith("/api/v2/traces/"))
    table = cli("replay", str(path), "--verify", "--force")
    assert "found in Tempo" in table.stdout


# ----------------------------------------------------------------------------- real Tempo


@pytest.mark.tempo
@pytest.mark.skipif(
    not (REAL["TEMPO_URL"] and REAL["OTLP_ENDPOINT"]),
    reason="set ORBCAST_TEST_TEMPO_URL and ORBCAST_TEST_OTLP_ENDPOINT to run against a real Tempo",
)
def test_real_tempo_finds_the_backfill_by_id_and_by_search(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = uuid.uuid4().hex[:10]
    now = datetime.now(UTC)
    # recent generations (inside Tempo's default 2 min ingestion slack: searchable within seconds) and
    # two 30-hour-old ones (found by trace ID at once; by search only after Tempo's backend flush)
    dicts = make_record_dicts(12, seed=34, start=now - timedelta(seconds=100))
    for i, d in enumerate(dicts):
        d["id"] = f"gen-{int(now.timestamp())}-bf{run}{i:03d}"
        d["created_at"] = (now - timedelta(seconds=100 - 5 * i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for d in dicts[-2:]:
        d["created_at"] = (now - timedelta(hours=30)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    path = write_jsonl(tmp_path / "history.jsonl", dicts)
    flags = ["--otlp-endpoint", str(REAL["OTLP_ENDPOINT"]), "--tempo-url", str(REAL["TEMPO_URL"])]
    for name, flag in (
        ("OTLP_USER", "--otlp-user"),
        ("OTLP_TOKEN", "--otlp-token"),
        ("TEMPO_USER", "--tempo-user"),
        ("TEMPO_TOKEN", "--tempo-token"),
    ):
        if REAL[name]:
            flags += [flag, str(REAL[name])]
    result = cli("replay", str(path), "--verify", "--encoding", "protobuf", "-o", "json", *flags)
    assert result.exit_code == 0, result.output
    summary = _json(result)
    assert summary["generations_sent"] == 12 and summary["verify"]["found"] == 12

    settings = load_settings(
        {
            "tempo_url": REAL["TEMPO_URL"],
            "tempo_user": REAL["TEMPO_USER"],
            "tempo_token": REAL["TEMPO_TOKEN"],
        },
        env={},
    )
    wanted = {trace_id_for(d["id"]) for d in dicts[:-2]}
    with TempoClient(settings) as client:
        assert all(client.trace_exists(trace_id_for(d["id"])) for d in dicts)  # old ones too, by ID
        deadline = time.monotonic() + 120
        found: set[str] = set()
        while time.monotonic() < deadline and not wanted <= found:
            time.sleep(3)
            found = client.search_trace_ids(
                '{ resource.service.name = "openrouter" }',
                now - timedelta(minutes=10),
                datetime.now(UTC),
                1000,
            )
        assert wanted <= found
