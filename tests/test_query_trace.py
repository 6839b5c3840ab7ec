"""``orbcast trace``: one trace as a tree, by full, trimmed or generation ID."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import orjson
import pytest

from tests import tempo_data
from tests.conftest import Result
from tests.fake_tempo import FakeTempo
from tests.tempo_data import Dataset

Cli = Callable[..., Result]


@pytest.fixture
def tempo(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeTempo, Dataset]]:
    with tempo_data.loaded_tempo() as (server, dataset):
        monkeypatch.setenv("ORBCAST_TEMPO_URL", server.url)
        yield server, dataset


def spans_of(dataset: Dataset, trace_id: str) -> list[dict[str, object]]:
    return [
        s for rs in dataset.batch for ss in rs["scopeSpans"] for s in ss["spans"] if s["traceId"] == trace_id
    ]


def test_tree_with_timings_and_attributes(cli: Cli, tempo: tuple[FakeTempo, Dataset]) -> None:
    _, dataset = tempo
    g = max(dataset.generations, key=lambda g: len(spans_of(dataset, g.trace_id)))
    res = cli("trace", g.trace_id)
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert f"trace {g.trace_id}" in out and f"{len(spans_of(dataset, g.trace_id))} spans" in out
    for span in spans_of(dataset, g.trace_id):
        assert str(span["name"]) in out and str(span["spanId"]) in out
    assert (
        f"gen_ai.request.model = {g.model}" in out and f"gen_ai.usage.input_tokens = {g.input_tokens}" in out
    )
    assert "service.name = openrouter" in out  # the resource, shown once
    lines = out.splitlines()
    root_line = next(i for i, line in enumerate(lines) if "LLM Generation" in line)
    attempt_line = next(i for i, line in enumerate(lines) if "provider attempt 1" in line)
    assert attempt_line > root_line and lines[attempt_line].index("provider") > lines[root_line].index("LLM")
    assert "at +0ms" in lines[root_line]


@pytest.mark.parametrize("form", ["trimmed", "generation id"])
def test_other_id_forms(cli: Cli, tempo: tuple[FakeTempo, Dataset], form: str) -> None:
    server, dataset = tempo
    g = next(g for g in dataset.generations if g.trace_id.startswith("00"))
    typed = g.trace_id.lstrip("0") if form == "trimmed" else g.gen_id
    data = orjson.loads(cli("trace", typed, "-o", "json").stdout)
    assert data["trace_id"] == g.trace_id
    assert {s["span_id"] for s in data["spans"]} == {s["spanId"] for s in spans_of(dataset, g.trace_id)}
    root = next(s for s in data["spans"] if s["parent_span_id"] is None)
    assert root["attributes"]["gen_ai.usage.output_tokens"] == g.output_tokens
    assert root["duration_ms"] == pytest.approx(g.duration_ms) and root["status"] == g.status
    assert all("start" not in p for path, p in server.requests if "/traces/" in path)


def test_backfilled_trace_is_found_at_once(cli: Cli, tempo: tuple[FakeTempo, Dataset]) -> None:
    _, dataset = tempo
    old = dataset.where(age_class="old")[0]
    res = cli("trace", old.trace_id, "--no-attributes")
    assert res.exit_code == 0 and "LLM Generation" in res.stdout and "gen_ai.request.model" not in res.stdout


def test_unknown_and_invalid_ids(cli: Cli, tempo: tuple[FakeTempo, Dataset]) -> None:
    unknown = cli("trace", "0ae53bf4d0609458c14e326c86e69340")
    assert unknown.exit_code == 5 and "is not in Tempo" in unknown.stderr
    invalid = cli("trace", "not-a-trace-id")
    assert invalid.exit_code == 2 and "not a trace ID" in invalid.stderr
