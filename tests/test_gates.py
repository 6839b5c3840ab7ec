"""``--fail-if``: every form, units, scopes, malformed conditions, and the exit codes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import orjson
import pytest

from orbcast.errors import ExitCode, ThresholdBreached, UsageError
from orbcast.gates import enforce, evaluate, parse_condition
from orbcast.report import GenerationRow, Report, build_report
from tests import tempo_data
from tests.conftest import Result
from tests.fake_tempo import FakeTempo
from tests.tempo_data import Generation, percentile

Cli = Callable[..., Result]


@pytest.mark.parametrize(
    ("text", "metric", "op", "threshold", "scope"),
    [
        ("p95 > 5s", "p95", ">", 5000.0, None),
        ("p50>=800ms", "p50", ">=", 800.0, None),
        ("max > 1.5m", "max", ">", 90_000.0, None),
        ("p99 > 0.5h", "p99", ">", 1_800_000.0, None),
        ("ttft_p95 > 2 s", "ttft_p95", ">", 2000.0, None),
        ("cost > 10", "cost", ">", 10.0, None),
        ("cost > $0.50", "cost", ">", 0.5, None),
        ("error_rate > 0.02", "error_rate", ">", 0.02, None),
        ("error_rate > 2%", "error_rate", ">", 0.02, None),
        ("count < 1", "count", "<", 1.0, None),
        ("errors != 0", "errors", "!=", 0.0, None),
        ("tokens > 1.5M", "tokens", ">", 1_500_000.0, None),
        ("count <= 50k", "count", "<=", 50_000.0, None),
        ("model=openai/gpt-4o: p95 > 3s", "p95", ">", 3000.0, ("model", "openai/gpt-4o")),
        ("model=openai/gpt-4o:free: cost > 1", "cost", ">", 1.0, ("model", "openai/gpt-4o:free")),
        ("span.trace.metadata.feature=chat : errors > 2", "errors", ">", 2.0,
         ("span.trace.metadata.feature", "chat")),
    ],
)  # fmt: skip
def test_forms(text: str, metric: str, op: str, threshold: float, scope: tuple[str, str] | None) -> None:
    c = parse_condition(text)
    assert (c.metric, c.op) == (metric, op) and c.threshold == pytest.approx(threshold)
    assert ((c.scope_key, c.scope_value) if c.scope_key else None) == scope


@pytest.mark.parametrize(
    "text",
    ["", "p95", "p95 >", "p95 > 5", "p95 > fast", "latency > 5s", "cost > 5s", "p95 >> 5s", "count > 1s",
     "model: p95 > 3s", "=x: p95 > 3s", "model=: p95 > 3s", "error_rate > lots", "tokens > 5 tokens"],
)  # fmt: skip
def test_malformed_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_condition(text)
    assert err.value.exit_code == ExitCode.USAGE and "--fail-if" in err.value.message


def _rows(gens: list[Generation]) -> list[GenerationRow]:
    return [
        GenerationRow(trace_id=g.trace_id, generation_id=g.gen_id, start="", model=g.model,
                      provider=g.provider, duration_ms=g.duration_ms, ttft_ms=g.first_token_ms,
                      input_tokens=g.input_tokens, output_tokens=g.output_tokens, cost_usd=g.cost,
                      status=g.status, user=g.user)
        for g in gens
    ]  # fmt: skip


@pytest.fixture
def report() -> tuple[Report, list[Generation]]:
    dataset = tempo_data.load(time.time_ns())
    return build_report(_rows(dataset.generations), group_by="model"), dataset.generations


def test_measured_values_are_the_ground_truth(report: tuple[Report, list[Generation]]) -> None:
    rep, gens = report
    p95 = percentile([g.duration_ms for g in gens], 95)
    cost = sum(g.cost for g in gens)
    errors = sum(g.status == "error" for g in gens)
    checks = evaluate(
        [parse_condition(t) for t in (f"p95 > {p95 - 1}ms", f"p95 > {p95 + 1}ms", f"cost >= {cost}",
                                      "count < 1", f"error_rate == {errors / len(gens)}")],
        rep,
    )  # fmt: skip
    assert [c["breached"] for c in checks] == [True, False, True, False, True]
    assert checks[0]["measured"] == pytest.approx(p95) and checks[2]["measured"] == pytest.approx(cost)


def test_scopes(report: tuple[Report, list[Generation]]) -> None:
    rep, gens = report
    model = gens[0].model
    mine = [g for g in gens if g.model == model]
    by_provider = [g for g in gens if g.provider == "OpenAI"]
    checks = evaluate(
        [parse_condition(f"model={model}: count == {len(mine)}"),
         parse_condition(f"provider=OpenAI: cost > {sum(g.cost for g in by_provider) - 1e-9}"),
         parse_condition("model=no/such-model: count < 1"),
         parse_condition("model=no/such-model: p95 > 1ms")],
        rep,
    )  # fmt: skip
    assert [c["breached"] for c in checks] == [True, True, True, False]
    assert checks[3]["measured_text"] == "no data"


def test_enforce_lists_every_breach(report: tuple[Report, list[Generation]]) -> None:
    rep, gens = report
    checks = evaluate([parse_condition(t) for t in ("count > 1", "cost > $1000", "errors > 0")], rep)
    errors = sum(g.status == "error" for g in gens)
    with pytest.raises(ThresholdBreached) as err:
        enforce(checks)
    assert err.value.exit_code == 8
    message = err.value.message
    assert "2 of 3" in message and f"count > 1 (measured {len(gens)})" in message
    assert f"errors > 0 (measured {errors})" in message
    enforce(evaluate([parse_condition("count < 1")], rep))  # nothing breached: no exception


@pytest.fixture
def tempo(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTempo]:
    with tempo_data.loaded_tempo() as (server, _):
        monkeypatch.setenv("ORBCAST_TEMPO_URL", server.url)
        yield server


def test_cli_exit_codes(cli: Cli, tempo: FakeTempo) -> None:
    ok = cli("query", "--since", "4d", "--fail-if", "count < 1", "--fail-if", "error_rate > 50%")
    assert ok.exit_code == 0 and "Checks (--fail-if)" in ok.stdout
    breach = cli("query", "--since", "4d", "-o", "json", "--fail-if", "p95 > 1s", "--fail-if", "count < 1")
    assert breach.exit_code == 8
    assert "1 of 2 --fail-if conditions breached: p95 > 1s (measured" in breach.stderr
    data = orjson.loads(breach.stdout)  # the answer is still written before the exit
    assert [c["breached"] for c in data["checks"]] == [True, False]
    before = len(tempo.requests)
    bad = cli("query", "--fail-if", "p95 > 5")
    assert bad.exit_code == 2 and "unit" in bad.stderr and len(tempo.requests) == before
