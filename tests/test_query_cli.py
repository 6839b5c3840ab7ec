"""``orbcast query`` end to end against the fake Tempo: figures, formats, query forms, windows, limits.

Every expected figure is computed here from the recorded dataset's ground truth, never written down.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from tests import tempo_data
from tests.conftest import Result
from tests.fake_tempo import FakeTempo
from tests.tempo_data import NS, Dataset, Generation, percentile

Cli = Callable[..., Result]
Tempo = tuple[FakeTempo, Dataset]


@pytest.fixture
def tempo(monkeypatch: pytest.MonkeyPatch) -> Iterator[Tempo]:
    monkeypatch.setenv("ORBCAST_BACKOFF_SCALE", "0.001")
    with tempo_data.loaded_tempo() as (server, dataset):
        monkeypatch.setenv("ORBCAST_TEMPO_URL", server.url)
        yield server, dataset


def as_json(res: Result) -> dict[str, Any]:
    assert res.exit_code == 0, res.output
    return orjson.loads(res.stdout)


def searches(server: FakeTempo) -> list[dict[str, str]]:
    return [params for path, params in server.requests if path == "/api/search"]


def expect_figures(figures: dict[str, Any], gens: list[Generation]) -> None:
    durations = [g.duration_ms for g in gens]
    ttfts = [float(g.first_token_ms) for g in gens if g.first_token_ms is not None]
    assert figures["count"] == len(gens)
    assert figures["errors"] == sum(g.status == "error" for g in gens)
    for q in (50, 95, 99):
        assert figures[f"p{q}_ms"] == pytest.approx(percentile(durations, q))
    assert figures["max_ms"] == pytest.approx(max(durations))
    if ttfts:
        assert figures["ttft_p50_ms"] == pytest.approx(percentile(ttfts, 50))
        assert figures["ttft_p95_ms"] == pytest.approx(percentile(ttfts, 95))
    else:  # errored generations have no time to first token
        assert figures["ttft_p50_ms"] is None and figures["ttft_p95_ms"] is None
    assert figures["input_tokens"] == sum(g.input_tokens for g in gens)
    assert figures["output_tokens"] == sum(g.output_tokens for g in gens)
    assert figures["cost_usd"] == pytest.approx(sum(g.cost for g in gens))


def test_json_figures_equal_the_ground_truth(cli: Cli, tempo: Tempo) -> None:
    _, dataset = tempo
    data = as_json(cli("query", "--since", "4d", "--output", "json"))
    assert data["truncated"] is False and data["warnings"] == []
    expect_figures(data["totals"], dataset.generations)
    groups = {g["key"]: g for g in data["groups"]}
    assert set(groups) == {g.model for g in dataset.generations}
    for model, figures in groups.items():
        expect_figures(figures, dataset.where(model=model))
        assert figures["cost_share"] == pytest.approx(figures["cost_usd"] / data["totals"]["cost_usd"])
    truth = {g.trace_id: g for g in dataset.generations}
    assert {r["trace_id"] for r in data["generations"]} == set(truth)
    for row in data["generations"]:
        g = truth[row["trace_id"]]
        assert (row["generation_id"], row["model"], row["provider"], row["status"]) == (
            g.gen_id, g.model, g.provider, g.status,
        )  # fmt: skip
        assert row["duration_ms"] == pytest.approx(g.duration_ms)
        assert row["cost_usd"] == pytest.approx(g.cost)
        assert row["ttft_ms"] == g.first_token_ms and row["user"] == g.user and row["session"] == g.session


def test_table_output(cli: Cli, tempo: Tempo) -> None:
    _, dataset = tempo
    res = cli("query", "--since", "4d")
    assert res.exit_code == 0, res.output
    header = res.stdout.splitlines()[0]
    assert "query (all generations)" in header
    assert f"{len(dataset.generations)} generations matched (complete)" in header
    for title in ("Latency by model", "Cost by model", "10 slowest generations"):
        assert title in res.stdout
    slowest = sorted(dataset.generations, key=lambda g: -g.duration_ms)[:10]
    for g in slowest:  # full 32-hex trace IDs, never cut
        assert g.trace_id in res.stdout
    assert f"${sum(g.cost for g in dataset.generations):,.4f}" in res.stdout


def test_trace_ids_are_restored_to_32_hex(cli: Cli, tempo: Tempo) -> None:
    _, dataset = tempo
    zero = next(g for g in dataset.generations if g.trace_id.startswith("00"))
    rows = [orjson.loads(line) for line in cli("query", "--since", "4d", "-o", "jsonl").stdout.splitlines()]
    assert len(rows) == len(dataset.generations) and all(
        re.fullmatch(r"[0-9a-f]{32}", r["trace_id"]) for r in rows
    )
    assert zero.trace_id in {r["trace_id"] for r in rows}


def test_csv_and_markdown(cli: Cli, tempo: Tempo) -> None:
    _, dataset = tempo
    res = cli("query", "--since", "4d", "-o", "csv")
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert len(rows) == len(dataset.generations)
    assert sum(float(r["cost_usd"]) for r in rows) == pytest.approx(sum(g.cost for g in dataset.generations))
    assert {r["group"] for r in rows} == {g.model for g in dataset.generations}
    md = cli("query", "--since", "4d", "-o", "markdown").stdout
    assert "### Latency by model" in md and "### Cost by model" in md and f"| **total** | {len(rows)} |" in md


def test_shorthand_is_for_generation_spans(cli: Cli, tempo: Tempo) -> None:
    server, dataset = tempo
    data = as_json(cli("query", "duration > 5s", "--since", "4d", "-o", "json"))
    slow = [g for g in dataset.generations if g.duration_ms > 5000]
    expect_figures(data["totals"], slow)
    sent = searches(server)[-1]["q"]
    assert sent.startswith(
        '{ resource.service.name = "openrouter" && span:name = "LLM Generation" && (duration > 5s) }'
    )
    assert data["query"] == sent and data["query_input"] == "duration > 5s"


def test_angle_brackets_read_as_braces(cli: Cli, tempo: Tempo) -> None:
    server, dataset = tempo
    data = as_json(
        cli("query", '< span.trace.metadata.environment = "production" >', "--since", "4d", "-o", "json")
    )
    assert searches(server)[-1]["q"].startswith(
        '{ span.trace.metadata.environment = "production" } | select('
    )
    expect_figures(data["totals"], dataset.where(environment="production"))


def test_full_traceql_also_matching_attempt_spans(cli: Cli, tempo: Tempo) -> None:
    """Root and attempt spans both match: one generation per trace, figures from the root."""
    _, dataset = tempo
    query = '{ resource.service.name = "openrouter" && duration > 5s }'
    data = as_json(cli("query", query, "--since", "4d", "-o", "json"))
    expect_figures(data["totals"], [g for g in dataset.generations if g.duration_ms > 5000])


def test_query_matching_only_attempts_reads_generations_by_id(cli: Cli, tempo: Tempo) -> None:
    server, dataset = tempo
    failed_attempts = {
        s["traceId"]
        for rs in dataset.batch
        for ss in rs["scopeSpans"]
        for s in ss["spans"]
        if {"key": "span.metadata.status_code", "value": {"intValue": "503"}} in s.get("attributes", [])
    }
    assert failed_attempts
    data = as_json(cli("query", "{ span.span.metadata.status_code = 503 }", "--since", "4d", "-o", "json"))
    expect_figures(data["totals"], [g for g in dataset.generations if g.trace_id in failed_attempts])
    lookups = [p for p, _ in server.requests if p.startswith("/api/v2/traces/")]
    assert len(lookups) == len(failed_attempts)


def test_raw_sends_the_query_untouched(cli: Cli, tempo: Tempo) -> None:
    server, dataset = tempo
    query = '{ span:name = "LLM Generation" && status = error }'
    data = as_json(cli("query", query, "--raw", "--since", "4d", "-o", "json"))
    assert searches(server)[-1]["q"] == query == data["query"]
    assert data["totals"]["count"] == data["totals"]["errors"] == len(dataset.where(status="error"))


def test_rejected_query_exits_7_with_tempos_words(cli: Cli, tempo: Tempo) -> None:
    res = cli("query", '{ resource.service.name = "openrouter" && }', "--raw")
    assert res.exit_code == 7
    assert "invalid TraceQL query: parse error at line 1, col 43: syntax error: unexpected }" in res.stderr
    assert 'query sent: { resource.service.name = "openrouter" && }' in res.stderr


def test_metrics_pipeline_is_a_usage_error(cli: Cli, tempo: Tempo) -> None:
    res = cli("query", "{ } | rate()")
    assert res.exit_code == 2 and "metrics query" in res.stderr


def test_verbose_prints_the_query_sent(cli: Cli, tempo: Tempo) -> None:
    res = cli("query", "status = error", "-v", "--since", "1h")
    assert res.exit_code == 0
    sent = '{ resource.service.name = "openrouter" && span:name = "LLM Generation" && (status = error) }'
    assert f"query sent: {sent} | select(" in res.stderr


@pytest.mark.parametrize(
    ("by", "field"),
    [("provider", "provider"), ("user", "user"), ("session", "session"), ("status", "status"),
     ("span.trace.metadata.feature", "feature"), ("trace.metadata.environment", "environment")],
)  # fmt: skip
def test_group_by(cli: Cli, tempo: Tempo, by: str, field: str) -> None:
    _, dataset = tempo
    data = as_json(cli("query", "--since", "4d", "--by", by, "-o", "json"))
    assert data["group_by"] == by
    groups = {g["key"]: g for g in data["groups"]}
    assert set(groups) == {getattr(g, field) for g in dataset.generations}
    for key, figures in groups.items():
        expect_figures(figures, [g for g in dataset.generations if getattr(g, field) == key])
    assert {r["group"] for r in data["generations"]} == set(groups)


def test_window_in_the_past_finds_backfilled_spans(cli: Cli, tempo: Tempo) -> None:
    """Tempo finds nothing pushed later in a window that ends in the past; orbcast searches to now."""
    server, dataset = tempo
    lo, hi = dataset.windows["oldwindow"]
    data = as_json(cli("query", "--from", str(lo), "--to", str(hi), "-o", "json"))
    inside = [g for g in dataset.generations if lo * NS <= g.start_ns < hi * NS]
    assert inside == dataset.where(age_class="old")
    expect_figures(data["totals"], inside)
    sent = searches(server)[-1]
    assert int(sent["start"]) == lo and int(sent["end"]) >= time.time() - 60
    assert data["window"] == {"from": tempo_data_iso(lo), "to": tempo_data_iso(hi)}


def tempo_data_iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(seconds))


def test_recent_window_in_the_past_keeps_only_its_generations(cli: Cli, tempo: Tempo) -> None:
    _, dataset = tempo
    lo, hi = dataset.windows["recentwindow"]
    data = as_json(cli("query", "--from", str(lo), "--to", str(hi), "-o", "json"))
    expect_figures(data["totals"], dataset.where(age_class="recent"))


def test_truncation_is_never_silent(cli: Cli, tempo: Tempo) -> None:
    res = cli("query", "--since", "4d", "--limit", "10", "-o", "json")
    data = as_json(res)
    assert data["truncated"] is True and data["totals"]["count"] == 10
    assert any("--limit" in w for w in data["warnings"])
    assert "warning: results are truncated" in res.stderr
    table = cli("query", "--since", "4d", "--limit", "10")
    assert "TRUNCATED" in table.stdout.splitlines()[0]


def test_limit_above_tempos_maximum_is_lowered(cli: Cli, tempo: Tempo) -> None:
    server, dataset = tempo
    server.max_limit = 100
    data = as_json(cli("query", "--since", "4d", "-o", "json", "--limit", "5000"))
    assert data["totals"]["count"] == len(dataset.generations) and data["truncated"] is False
    assert [s["limit"] for s in searches(server)] == ["5000", "100"]


def test_partial_jobs_mark_truncated(cli: Cli, tempo: Tempo) -> None:
    server, dataset = tempo
    original = server.search

    def partial(params: dict[str, str]) -> tuple[int, Any]:
        status, body = original(params)
        body["metrics"]["completedJobs"] = 2
        return status, body

    server.search = partial  # type: ignore[method-assign]
    data = as_json(cli("query", "--since", "4d", "-o", "json"))
    assert data["truncated"] is True and data["totals"]["count"] == len(dataset.generations)


def test_partial_status_marks_truncated(cli: Cli, tempo: Tempo) -> None:
    server, _ = tempo
    original = server.search

    def partial(params: dict[str, str]) -> tuple[int, Any]:
        status, body = original(params)
        return status, {**body, "status": "PARTIAL", "message": "a querier timed out"}

    server.search = partial  # type: ignore[method-assign]
    res = cli("query", "--since", "4d", "-o", "json")
    data = as_json(res)
    assert data["truncated"] is True and any("a querier timed out" in w for w in data["warnings"])


def test_retries_then_succeeds(cli: Cli, tempo: Tempo) -> None:
    server, dataset = tempo
    server.fail_next("/api/search", 503, times=2)
    server.fail_next("/api/search", 429, headers={"Retry-After": "0"}, body="too many requests")
    server.fail_next("/api/search", mode="drop")
    server.fail_next("/api/search", 200, mode="cut")
    data = as_json(cli("query", "--since", "4d", "-o", "json"))
    assert data["totals"]["count"] == len(dataset.generations)
    assert len(searches(server)) == 6


def test_service_unavailable_exits_6(cli: Cli, tempo: Tempo) -> None:
    server, _ = tempo
    server.fail_next("/api/search", 503, times=20)
    res = cli("query", "--since", "1h")
    assert res.exit_code == 6 and "HTTP 503" in res.stderr


def test_auth_refused_exits_4_and_never_shows_the_token(cli: Cli, tempo: Tempo) -> None:
    server, _ = tempo
    server.auth = "Basic something-else"
    secret = "glc_s3cr3t-T0KEN-value"
    res = cli("query", "--tempo-user", "123456", "--tempo-token", secret, "-v")
    assert res.exit_code == 4
    assert "traces:read" in res.stderr and "Tempo user" in res.stderr
    assert secret not in res.output


def test_wrong_path_exits_5(cli: Cli, tempo: Tempo) -> None:
    server, _ = tempo
    res = cli("query", "--tempo-url", server.url + "/nope")
    assert res.exit_code == 5 and "/tempo" in res.stderr


def test_missing_tempo_url_exits_3(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    res = cli("query")
    assert res.exit_code == 3 and "--tempo-url" in res.stderr


def test_bad_window_exits_2(cli: Cli, tempo: Tempo) -> None:
    assert cli("query", "--since", "yesterday-ish").exit_code == 2
    assert cli("query", "--since", "1h", "--from", "2026-01-01").exit_code == 2
