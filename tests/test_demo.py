"""``orbcast demo``: a valid OTLP file, realistic data, and tables that match the records."""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from orbcast.commands.demo import row_from_resource_spans
from orbcast.demo import generate
from orbcast.records import GenerationRecord
from orbcast.report import fmt_cost, fmt_ms
from orbcast.spans import SpanOptions, encode_json, resource_spans
from tests.conftest import Result
from tests.otlp_schema import attributes, parse_json_request

NOW = "2026-11-26T12:00:00Z"
NOW_DT = datetime(2026, 11, 26, 12, tzinfo=UTC)
Cli = Callable[..., Result]


def _run(cli: Cli, tmp_path: Path, *args: str, name: str = "demo.otlp.json") -> tuple[Result, Path]:
    out = tmp_path / name
    result = cli("demo", "--now", NOW, "--out", str(out), *args)
    return result, out


def _quantiles(values: list[float]) -> tuple[float, float, float]:
    """p50/p95/p99 computed independently of orbcast (linear between closest ranks)."""
    if len(values) == 1:
        return values[0], values[0], values[0]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[94], cuts[98]


def _by_model(records: list[GenerationRecord]) -> dict[str, list[GenerationRecord]]:
    groups: dict[str, list[GenerationRecord]] = {}
    for record in records:
        groups.setdefault(record.model or "(none)", []).append(record)
    return groups


def test_demo_writes_one_schema_valid_request_with_a_realistic_history(cli: Cli, tmp_path: Path) -> None:
    result, out = _run(cli, tmp_path)
    assert result.exit_code == 0, result.stderr
    body = out.read_bytes()
    assert body.endswith(b"}\n") and body.count(b"\n") == 1  # one request, one line
    message = parse_json_request(body)
    assert 300 <= len(message.resource_spans) <= 2000
    models, providers, users, sessions, keys = set(), set(), set(), set(), set()
    fallbacks = all_failed = broke_off = cancelled = cached = reasoning = ttft = streamed = 0
    for rs in message.resource_spans:
        assert attributes(rs.resource)["service.name"] == "openrouter"
        spans = rs.scope_spans[0].spans
        root, attempts = spans[0], spans[1:]
        a = attributes(root)
        assert root.name == "LLM Generation" and a["orbcast.source"] == "demo"
        models.add(a["gen_ai.response.model"])
        providers.add(a["trace.metadata.openrouter.provider_name"])
        users.add(a.get("user.id"))
        sessions.add(a.get("session.id"))
        keys.add(a["trace.metadata.openrouter.api_key_name"])
        codes = [attributes(s)["span.metadata.status_code"] for s in attempts]
        assert attempts and all(s.parent_span_id == root.span_id for s in attempts)
        if root.status.code == 2:
            all_failed += all(c != 200 for c in codes)
            broke_off += codes[-1] == 200
        else:
            fallbacks += len(codes) > 1 and codes[-1] == 200
        cancelled += bool(a.get("trace.metadata.openrouter_generation.cancelled"))
        cached += a.get("gen_ai.usage.input_tokens.cached", 0) > 0
        reasoning += a.get("gen_ai.usage.output_tokens.reasoning", 0) > 0
        ttft += "trace.metadata.openrouter.first_token_ms" in a
        streamed += bool(a.get("gen_ai.request.stream"))
    assert len(models) >= 6 and len(providers) >= 4 and len(keys) >= 4
    assert len(users) >= 20 and len(sessions) >= 20
    assert min(fallbacks, all_failed, broke_off, cancelled) >= 1
    assert cached >= 50 and reasoning >= 20 and ttft >= 100
    assert 0 < streamed < len(message.resource_spans)
    assert "wrote 600 generations" in result.stderr


def test_history_spans_the_last_seven_days_and_is_sorted() -> None:
    records = generate(count=400, seed=3, now=NOW_DT)
    starts = [r.start_ns for r in records]
    assert starts == sorted(starts)
    now_ns = int(NOW_DT.timestamp()) * 10**9
    assert now_ns - 7 * 86400 * 10**9 <= starts[0] and starts[-1] < now_ns
    assert len({r.id for r in records}) == len(records)
    assert all(r.source == "demo" and r.duration_ms and r.duration_ms > 0 for r in records)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z", r.created_at) for r in records)


def test_rows_read_back_from_spans_equal_the_records() -> None:
    records = generate(count=250, seed=11, now=NOW_DT)
    for record in records:
        row = row_from_resource_spans(orjson.loads(orjson.dumps(resource_spans(record))))
        assert row.generation_id == record.id
        assert row.model == record.model and row.provider == record.provider_name
        assert row.duration_ms == pytest.approx(record.duration_ms, abs=1e-6)
        assert row.cost_usd == record.total_cost
        assert row.input_tokens == record.native_tokens_prompt
        assert row.output_tokens == record.native_tokens_completion
        assert row.ttft_ms == record.ttft_ms
        assert row.status == ("error" if record.failed else "ok")
        assert (row.user, row.session, row.api_key) == (
            record.external_user,
            record.session_id,
            record.api_key_name,
        )


def test_json_figures_match_figures_recomputed_from_the_records(cli: Cli, tmp_path: Path) -> None:
    result, _ = _run(cli, tmp_path, "--count", "500", "--seed", "5", "--output", "json")
    assert result.exit_code == 0, result.stderr
    report = orjson.loads(result.stdout)
    groups = {g["key"]: g for g in report["groups"]}
    expected = _by_model(generate(count=500, seed=5, now=NOW_DT))
    assert set(groups) == set(expected)
    for model, members in expected.items():
        group = groups[model]
        durations = sorted(float(r.duration_ms or 0) for r in members)
        ttfts = [float(r.ttft_ms) for r in members if r.ttft_ms is not None]
        assert group["count"] == len(members)
        assert group["errors"] == sum(r.failed for r in members)
        assert group["cost_usd"] == pytest.approx(sum(r.total_cost or 0 for r in members))
        assert group["input_tokens"] == sum(r.native_tokens_prompt or 0 for r in members)
        assert group["cached_tokens"] == sum(r.native_tokens_cached or 0 for r in members)
        p50, p95, p99 = _quantiles(durations)
        assert (group["p50_ms"], group["p95_ms"], group["p99_ms"]) == pytest.approx((p50, p95, p99))
        assert group["max_ms"] == pytest.approx(durations[-1])
        if len(ttfts) > 1:
            assert group["ttft_p50_ms"] == pytest.approx(statistics.median(ttfts))
    assert report["totals"]["count"] == 500
    assert report["demo"]["generations"] == 500 and report["demo"]["seed"] == 5
    assert len(report["generations"]) == 500
    assert all(re.fullmatch(r"[0-9a-f]{32}", g["trace_id"]) for g in report["generations"])


def test_printed_tables_show_the_recomputed_figures(cli: Cli, tmp_path: Path) -> None:
    result, _ = _run(cli, tmp_path, "--count", "300", "--seed", "9")
    assert result.exit_code == 0, result.stderr
    assert "Latency by model" in result.stdout and "Cost by model" in result.stdout
    lines = result.stdout.splitlines()
    total_cost = 0.0
    for model, members in _by_model(generate(count=300, seed=9, now=NOW_DT)).items():
        rows = [line for line in lines if line.startswith(f"│ {model} ")]
        assert len(rows) == 2, model  # its latency row and its cost row
        latency, cost = rows
        _, p95, p99 = _quantiles(sorted(float(r.duration_ms or 0) for r in members))
        assert f" {fmt_ms(p95)} " in latency and f" {fmt_ms(p99)} " in latency
        spent = sum(r.total_cost or 0 for r in members)
        total_cost += spent
        assert f" {fmt_cost(round(spent, 10))} " in cost and f" {len(members):,} " in cost
    total_line = [line for line in lines if line.startswith("│ total ")][-1]
    assert fmt_cost(round(total_cost, 10)) in total_line


def test_same_seed_same_output_other_seed_other_history(cli: Cli, tmp_path: Path) -> None:
    first, out1 = _run(cli, tmp_path, "--count", "200", name="a.json")
    second, out2 = _run(cli, tmp_path, "--count", "200", name="b.json")
    third, out3 = _run(cli, tmp_path, "--count", "200", "--seed", "43", name="c.json")
    assert first.exit_code == second.exit_code == third.exit_code == 0
    assert out1.read_bytes() == out2.read_bytes() and first.stdout == second.stdout
    assert out3.read_bytes() != out1.read_bytes()


def test_the_same_seed_gives_the_same_figures_whenever_it_runs(cli: Cli, tmp_path: Path) -> None:
    runs = [
        cli("demo", "--count", "120", "--now", now, "--out", str(tmp_path / "x.json"), "--output", "json")
        for now in (NOW, "2027-03-01T05:17:23Z")
    ]
    first, second = (orjson.loads(r.stdout) for r in runs)
    assert first["groups"] == second["groups"] and first["totals"] == second["totals"]
    assert first["window"] != second["window"]
    assert first["generations"][0]["start"] < "2026-11-27" < second["generations"][0]["start"]


def test_file_is_exactly_the_span_encoder_output(tmp_path: Path, cli: Cli) -> None:
    result, out = _run(cli, tmp_path, "--count", "40", "--seed", "2")
    assert result.exit_code == 0
    records = generate(count=40, seed=2, now=NOW_DT)
    assert out.read_bytes() == encode_json(resource_spans(r, SpanOptions()) for r in records) + b"\n"


@pytest.mark.parametrize(
    ("args", "check"),
    [
        (
            ["--output", "markdown"],
            lambda r: "### Latency by model" in r.stdout and "### Cost by model" in r.stdout,
        ),
        (["--by", "provider"], lambda r: "Latency by provider" in r.stdout and "Amazon Bedrock" in r.stdout),
        (["--by", "api-key", "--output", "json"], lambda r: "prod-chat" in _keys(r)),
        (
            ["--by", "trace.metadata.environment", "--attr", "environment=demo", "--output", "json"],
            lambda r: _keys(r) == {"demo"},
        ),
    ],
)
def test_output_formats_and_groupings(cli: Cli, tmp_path: Path, args: list[str], check: Any) -> None:
    result, _ = _run(cli, tmp_path, "--count", "150", *args)
    assert result.exit_code == 0, result.stderr
    assert check(result)


def _keys(result: Result) -> set[str]:
    return {g["key"] for g in orjson.loads(result.stdout)["groups"]}


def test_markdown_has_a_bold_total_row(cli: Cli, tmp_path: Path) -> None:
    result, _ = _run(cli, tmp_path, "--count", "50", "--output", "markdown")
    assert "| **total** |" in result.stdout


def test_next_steps_name_the_file_and_the_commands(cli: Cli, tmp_path: Path) -> None:
    result, out = _run(cli, tmp_path, "--count", "60")
    err = result.stderr
    assert f"orbcast replay {out}" in err
    assert "--otlp-endpoint https://otlp-gateway-<zone>.grafana.net/otlp" in err
    assert "--otlp-user <instance id> --otlp-token" in err
    assert "orbcast query 'span.orbcast.source = \"demo\"'" in err
    assert re.search(r"orbcast trace [0-9a-f]{32}\b", err)
    assert "replay" not in result.stdout  # stdout is the tables only


def test_next_steps_use_configured_settings(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORBCAST_OTLP_ENDPOINT", "https://otlp-gateway-prod-eu-west-2.grafana.net/otlp")
    monkeypatch.setenv("ORBCAST_OTLP_USER", "123456")
    monkeypatch.setenv("ORBCAST_OTLP_TOKEN", "glc_secret_demo_token_value")
    result, out = _run(cli, tmp_path, "--count", "30")
    assert result.exit_code == 0
    replay = next(line for line in result.stderr.splitlines() if "orbcast replay" in line)
    assert replay.strip().rstrip("\\").strip() == f"orbcast replay {out}"
    assert "glc_secret_demo_token_value" not in result.output


def test_default_file_lands_in_the_working_directory(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli("demo", "--count", "20", "-q")
    assert result.exit_code == 0
    assert parse_json_request((tmp_path / "orbcast-demo.otlp.json").read_bytes()).resource_spans
    assert result.stderr == ""  # --quiet: only data
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(
    "args",
    [
        ["--count", "0"],
        ["--now", "yesterday-ish"],
        ["--output", "csv"],
        ["--by", " "],
        ["--attr", "novalue"],
        ["--out", "/nonexistent-dir/x/demo.json"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(cli: Cli, args: list[str]) -> None:
    result = cli("demo", *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert len([line for line in result.stderr.splitlines() if line.startswith("error:")]) == 1
