"""Enumerating generations through /analytics/query: window splitting, truncation bisect, summary rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dateutil import parser as dateparser

from orbcast.analytics import SUMMARY_ESTIMATED, count_generations, iter_slices
from orbcast.config import load_settings
from orbcast.errors import OrbcastError
from orbcast.fetching import FetchEvent, FetchOptions, FetchStats, iter_records
from orbcast.openrouter import KeyRef, OpenRouterClient
from orbcast.records import GenerationRecord
from orbcast.sources import Problems, SourceSpec
from orbcast.timeparse import Window, iso
from tests.fake_openrouter import MGMT_KEY, FakeOpenRouter, make_generations

START = (datetime.now(UTC) - timedelta(days=80)).replace(minute=0, second=0, microsecond=0)


def open_client(fake: FakeOpenRouter, tmp_path: Path) -> OpenRouterClient:
    return OpenRouterClient(
        fake.url, key=KeyRef(MGMT_KEY, "management key", "env X"), state_dir=str(tmp_path)
    )


def bodies(fake: FakeOpenRouter) -> list[dict[str, Any]]:
    return [s.body for s in fake.requests("analytics")]


def test_a_long_window_is_split_into_slices_of_at_most_31_days(tmp_path: Path) -> None:
    gens = make_generations(70, START, timedelta(days=1))  # one a day for 70 days
    window = Window(START, START + timedelta(days=70))
    with FakeOpenRouter(gens) as fake, open_client(fake, tmp_path) as client:
        ids = [row["generation_id"] for piece in iter_slices(client, window) for row in piece.rows]
        sent = bodies(fake)
    assert set(ids) == {g["id"] for g in gens}  # boundary generations may come twice; none is missing
    for body in sent:
        assert body["limit"] == 10_000 and "start" in body["time_range"] and "end" in body["time_range"]
        span = dateparser.isoparse(body["time_range"]["end"]) - dateparser.isoparse(
            body["time_range"]["start"]
        )
        assert span <= timedelta(days=31)
        assert body["dimensions"] == ["generation_id", "api_key_id"]
    # Together the slices cover the window exactly, in order, without gaps.
    ranges = [(b["time_range"]["start"], b["time_range"]["end"]) for b in sent]
    assert ranges[0][0] == iso(window.start) and ranges[-1][1] == iso(window.end)
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))


def test_truncated_slices_are_bisected_until_every_id_is_found(tmp_path: Path) -> None:
    gens = make_generations(400, START, timedelta(minutes=7))
    window = Window(START, START + timedelta(minutes=7 * 400))
    with FakeOpenRouter(gens, truncate_at=60) as fake, open_client(fake, tmp_path) as client:
        splits: list[int] = []
        pieces = list(iter_slices(client, window, on_split=lambda: splits.append(1)))
        sent = bodies(fake)
    ids = [row["generation_id"] for piece in pieces for row in piece.rows]
    assert set(ids) == {g["id"] for g in gens}
    assert not any(piece.truncated for piece in pieces)
    # 400 ids at most 60 an answer: the window was split, and every truncated answer was asked again.
    assert len(pieces) >= 7 and splits and len(sent) == len(pieces) + len(splits)
    assert pieces[0].start == window.start and pieces[-1].end == window.end
    assert all(a.end == b.start for a, b in zip(pieces, pieces[1:], strict=False))


def test_a_minute_still_truncated_is_reported(tmp_path: Path) -> None:
    gens = make_generations(30, START, timedelta(seconds=1))  # 30 in the same minute
    window = Window(START, START + timedelta(hours=2))
    warnings: list[str] = []
    with FakeOpenRouter(gens, truncate_at=10) as fake, open_client(fake, tmp_path) as client:
        pieces = list(iter_slices(client, window, warn=warnings.append))
    assert [p for p in pieces if p.truncated] and len(warnings) == 1
    assert "one minute" in warnings[0] and "csv:" in warnings[0]
    assert pieces[0].end - pieces[0].start == timedelta(minutes=1)


def test_count_query_and_string_counts(tmp_path: Path) -> None:
    gens = make_generations(25, START, timedelta(hours=1))
    with FakeOpenRouter(gens) as fake, open_client(fake, tmp_path) as client:
        assert count_generations(client, Window(START, START + timedelta(days=2))) == 25
        assert "dimensions" not in bodies(fake)[0]


def test_a_rejected_count_query_costs_only_the_estimate(tmp_path: Path) -> None:
    window = Window(START, START + timedelta(days=2))
    gens = make_generations(5, START, timedelta(hours=1))
    with FakeOpenRouter(gens) as fake, open_client(fake, tmp_path) as client:
        fake.fail("analytics", 400)
        assert count_generations(client, window) is None
        fake.fail("analytics", 418)  # not a rejection: an answer nobody expects is reported
        with pytest.raises(OrbcastError) as info:
            count_generations(client, window)
    assert "HTTP 418" in info.value.message


def run_summary(
    fake: FakeOpenRouter, window: Window, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[GenerationRecord], FetchStats]:
    monkeypatch.setenv("OPENROUTER_MANAGEMENT_KEY", MGMT_KEY)
    monkeypatch.setenv("OPENROUTER_BASE_URL", fake.url)
    stats = FetchStats()
    events: list[FetchEvent] = []
    options = FetchOptions(SourceSpec("api"), window, detail="summary")
    records = list(iter_records(load_settings(), options, stats, Problems(), events.append))
    return records, stats


def test_summary_detail_builds_records_from_rows_without_per_id_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gens = make_generations(50, START, timedelta(minutes=11))
    window = Window(START, START + timedelta(minutes=11 * 50))
    with FakeOpenRouter(gens) as fake:
        records, stats = run_summary(fake, window, monkeypatch)
        assert fake.requests("generation") == []
        for body in bodies(fake):
            if body.get("granularity") == "minute":
                span = dateparser.isoparse(body["time_range"]["end"]) - dateparser.isoparse(
                    body["time_range"]["start"]
                )
                assert span <= timedelta(hours=3)
    by_id = {g["id"]: g for g in gens}
    assert len(records) == 50 and stats.fetched == 50
    for record in records:
        gen = by_id[record.id]
        assert record.source == "summary" and record.estimated == SUMMARY_ESTIMATED
        assert record.tokens_prompt == gen["tokens_prompt"]  # sent as a string
        assert record.total_cost == pytest.approx(gen["total_cost"])
        assert record.api_key_name in {"backend-prod", "batch-jobs"}
        assert record.model == gen["model"]
        assert record.created_at[:16] == gen["created_at"][:16]  # minute resolution
        assert record.to_dict()["orbcast"]["estimated"] == list(SUMMARY_ESTIMATED)
