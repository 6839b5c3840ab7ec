"""``iter_records`` as other commands use it: skip callback, bounded in-flight work, events, IdSet."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest

from orbcast.config import load_settings
from orbcast.errors import MalformedInput
from orbcast.fetching import FetchEvent, FetchOptions, FetchStats, iter_records
from orbcast.records import GenerationRecord
from orbcast.sources import IdSet, Problems, SourceSpec, read_done_ids
from orbcast.timeparse import Window
from tests.fake_openrouter import MGMT_KEY, FakeOpenRouter, make_generations

START = (datetime.now(UTC) - timedelta(days=2)).replace(second=0, microsecond=0)
GENS = make_generations(400, START, timedelta(minutes=1))


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter(GENS) as server:
        monkeypatch.setenv("OPENROUTER_MANAGEMENT_KEY", MGMT_KEY)
        monkeypatch.setenv("OPENROUTER_BASE_URL", server.url)
        yield server


def test_should_skip_ids_are_counted_and_never_fetched(fake: FakeOpenRouter) -> None:
    done = {g["id"] for g in GENS[:100]}
    window = Window(START, START + timedelta(minutes=400))
    options = FetchOptions(SourceSpec("api"), window, should_skip=done.__contains__)
    stats = FetchStats()
    events: list[FetchEvent] = []
    records = list(iter_records(load_settings(), options, stats, Problems(), events.append))
    assert {r.id for r in records} == {g["id"] for g in GENS[100:]}
    assert stats.skipped == 100 and stats.fetched == 300 and stats.found == 400 and stats.expected == 400
    assert not done & {s.query["id"] for s in fake.requests("generation")}
    assert [e for e in events if e.kind == "estimate"]
    assert stats.cost_usd == pytest.approx(sum(g["total_cost"] for g in GENS[100:]))


def test_in_flight_work_is_bounded_when_the_consumer_stops(fake: FakeOpenRouter, tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(g["id"] for g in GENS))
    options = FetchOptions(SourceSpec.parse(f"ids:{ids}"), None, concurrency=2)
    stream = cast(
        Generator[GenerationRecord], iter_records(load_settings(), options, FetchStats(), Problems())
    )
    taken = [next(stream) for _ in range(3)]
    stream.close()
    assert len(taken) == 3
    # Queues of 4x the concurrency on each side plus the workers' own: far from all 400 ids.
    assert len(fake.requests("generation")) <= 3 + 2 * 4 * 2 + 2 + 2


def test_strict_makes_a_malformed_id_fatal(fake: FakeOpenRouter, tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text(f"{GENS[0]['id']}\nnot an id\n")
    options = FetchOptions(SourceSpec.parse(f"ids:{ids}"), None, strict=True)
    with pytest.raises(MalformedInput) as info:
        list(iter_records(load_settings(), options, FetchStats(), Problems()))
    assert info.value.line == 2


def test_idset_remembers_many_ids_compactly() -> None:
    seen = IdSet()
    ids = [f"gen-{i}-abcdefghijklmnopqrst" for i in range(150_000)]
    assert all(seen.add(i) for i in ids)  # crosses the merge threshold twice
    assert not any(seen.add(i) for i in ids[::97])
    assert all(i in seen for i in ids[::101]) and "gen-x" not in seen and len(seen) == 150_000


def test_read_done_ids_ignores_torn_and_foreign_lines(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"id":"gen-1","created_at":"x"}\n\n[1,2]\n{"id":"gen-2"}\n{"id":"gen-3","crea')
    ids, lines, bad = read_done_ids(str(out))
    assert "gen-1" in ids and "gen-2" in ids and "gen-3" not in ids
    assert (lines, bad) == (4, 2)
