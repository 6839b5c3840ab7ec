"""Windows longer than Tempo allows in one search, split without losing backfilled spans."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orbcast.tempo_search import SAFETY, plan_chunks
from tests import tempo_data
from tests.conftest import Result
from tests.fake_tempo import FakeTempo
from tests.tempo_data import HOUR, NS

Cli = Callable[..., Result]


def run_query(cli: Cli, server: FakeTempo, monkeypatch: pytest.MonkeyPatch, *args: str) -> dict[str, Any]:
    monkeypatch.setenv("ORBCAST_TEMPO_URL", server.url)
    res = cli("query", *args, "-o", "json")
    assert res.exit_code == 0, res.output
    return orjson.loads(res.stdout)


def found_by_windows(server: FakeTempo, windows: list[tuple[int, int]]) -> set[str]:
    ids: set[str] = set()
    for start, end in windows:
        body = httpx.get(
            server.url + "/api/search", params={"q": "{}", "start": start, "end": end, "limit": 500}
        ).json()
        ids |= {t["traceID"].rjust(32, "0") for t in body["traces"]}
    return ids


def test_split_keeps_backfilled_spans_a_naive_split_loses(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Old generations (124-172 h ago) pushed 100 h ago: the window must cover both moments."""
    now = time.time_ns()
    dataset = tempo_data.load(now - 20 * 60 * NS, old_shift_h=100)
    old_ids = {g.trace_id for g in dataset.where(age_class="old")}
    with FakeTempo() as server:
        old = [rs for rs in dataset.batch if rs["scopeSpans"][0]["spans"][0]["traceId"] in old_ids]
        recent = [rs for rs in dataset.batch if rs not in old]
        server.push(old, ingested_ns=now - 100 * HOUR)
        server.push(recent, ingested_ns=dataset.push_ns)
        data = run_query(cli, server, monkeypatch, "--since", "20d")
        assert data["totals"]["count"] == len(dataset.generations) and data["truncated"] is False
        ranges = [(int(p["start"]), int(p["end"])) for path, p in server.requests if path == "/api/search"]
        assert ranges[0][1] - ranges[0][0] > 168 * 3600  # tried whole first, refused
        assert all(end - start <= 168 * 3600 for start, end in ranges[1:])
        assert any("168h per search" in w for w in data["warnings"])
        # back-to-back pieces from the start of the window lose some of them
        t0 = int(now / NS) - 20 * 24 * 3600
        naive = [(t0, t0 + 168 * 3600), (t0 + 168 * 3600, t0 + 336 * 3600), (t0 + 336 * 3600, int(now / NS))]
        assert len(found_by_windows(server, naive)) < len(dataset.generations)


def test_spans_pushed_beyond_tempos_reach_are_warned_about(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pushed 175-222 h after they ran: no search of 168 h covers both; the answer says so."""
    dataset = tempo_data.load(time.time_ns() - 20 * 60 * NS, old_shift_h=150)
    with FakeTempo() as server:
        server.push(dataset.batch, ingested_ns=dataset.push_ns)
        data = run_query(cli, server, monkeypatch, "--since", "14d")
    assert data["totals"]["count"] == len(dataset.where(age_class="recent"))
    assert any("orbcast trace" in w for w in data["warnings"])


def test_a_larger_server_limit_needs_no_split(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = tempo_data.load(time.time_ns() - 20 * 60 * NS, old_shift_h=150)
    with FakeTempo(max_search_s=30 * 24 * 3600) as server:
        server.push(dataset.batch, ingested_ns=dataset.push_ns)
        data = run_query(cli, server, monkeypatch, "--since", "14d")
        assert data["totals"]["count"] == len(dataset.generations) and data["warnings"] == []
        assert len([p for p, _ in server.requests if p == "/api/search"]) == 1


@settings(max_examples=200, deadline=None)
@given(
    span_h=st.integers(min_value=1, max_value=2000),
    longest_h=st.integers(min_value=2, max_value=400),
    keep_frac=st.floats(min_value=0.01, max_value=1.0),
    t_frac=st.floats(min_value=0.0, max_value=1.0),
    gap_frac=st.floats(min_value=0.0, max_value=1.0),
)
def test_every_trace_within_half_a_piece_of_its_push_is_covered(
    span_h: int, longest_h: int, keep_frac: float, t_frac: float, gap_frac: float
) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = start + timedelta(hours=span_h)
    longest = timedelta(hours=longest_h)
    keep_before = start + (end - start) * keep_frac
    chunks = plan_chunks(start, end, longest, keep_before=keep_before)
    assert all(b - a <= longest and start <= a < b <= end for a, b in chunks)
    if end - (longest - SAFETY) < keep_before:
        assert chunks[-1] == (max(start, end - (longest - SAFETY)), end)
    t = start + (keep_before - start) * t_frac  # a trace that started inside the kept part
    usable = longest - SAFETY
    reach = end - t if end - t <= usable else usable / 2
    pushed = t + reach * gap_frac  # pushed within reach of its start
    assert any(a <= t and pushed <= b for a, b in chunks)


def test_back_to_back_pieces_for_metrics() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    chunks = plan_chunks(start, start + timedelta(hours=60), timedelta(hours=24), overlap=False)
    assert chunks[0][0] == start and chunks[-1][1] == start + timedelta(hours=60)
    assert all(b == c for (_, b), (c, _) in zip(chunks, chunks[1:], strict=False))
