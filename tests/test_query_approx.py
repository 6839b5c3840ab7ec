"""``query --approx``: figures from TraceQL metrics, on recorded answers and on the fake Tempo."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests import tempo_data
from tests.conftest import Result
from tests.fake_tempo import FakeTempo

Cli = Callable[..., Result]
DATA = tempo_data.DATA


def recorded(name: str) -> dict[str, Any]:
    return orjson.loads((DATA / f"{name}.json").read_bytes())


def test_recorded_metrics_answers(cli: Cli, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real answers (nil groups, a 'p' label, omitted zeros) read into the tables."""
    answers = {
        f["request"]["query"]["q"]: f["response"]["body"]
        for f in map(recorded, ("metrics-count-instant-last1h.backfill-slack",
                                "metrics-quantile-instant-last1h.backfill-slack",
                                "metrics-cost-instant-last1h.backfill-slack"))
    }  # fmt: skip
    asked: list[str] = []

    def answer(request: Request) -> Response:
        asked.append(request.args["q"])
        body = answers.get(request.args["q"], {"series": [], "metrics": {"completedJobs": 1}})
        return Response(orjson.dumps(body), 200, content_type="application/json")

    httpserver.expect_request("/api/metrics/query").respond_with_handler(answer)
    monkeypatch.setenv("ORBCAST_TEMPO_URL", httpserver.url_for("/"))
    res = cli(
        "query",
        '{ resource.service.name = "openrouter" }',
        "--raw",
        "--approx",
        "--since",
        "1h",
        "-o",
        "json",
    )
    assert res.exit_code == 0, res.output
    assert set(answers) <= set(asked)
    data = orjson.loads(res.stdout)
    assert data["approximate"] is True and data["generations"] == []
    assert any("power-of-two" in w and "backfilled" in w for w in data["warnings"])
    run = orjson.loads((DATA / "dataset.json").read_bytes())["runs"]["backfill-slack"]
    recent = [g for g in run["generations"] if g["age_class"] == "recent"]  # the recorded last hour
    groups = {g["key"]: g for g in data["groups"]}
    for model in {g["model"] for g in recent}:
        mine = [g for g in recent if g["model"] == model]
        assert groups[model]["count"] == len(mine)
        assert groups[model]["cost_usd"] == pytest.approx(sum(g["cost"] for g in mine))
        assert groups[model]["p50_ms"] is not None  # bucketed: a power of two or an interpolation
    attempts = sum(len(g["attempts"]) for g in recent)
    assert groups["(none)"]["count"] == attempts  # attempt spans carry no model: Tempo's "nil"
    # in a grouped quantile answer the series with only a 'p' label are the spans without the attribute
    quantiles = recorded("metrics-quantile-instant-last1h.backfill-slack")["response"]["body"]["series"]
    nil_p50 = next(
        s["value"] for s in quantiles if s["labels"] == [{"key": "p", "value": {"doubleValue": 0.5}}]
    )
    assert groups["(none)"]["p50_ms"] == pytest.approx(nil_p50 * 1000)


@contextmanager
def _fake(slack_s: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeTempo, tempo_data.Dataset]]:
    with tempo_data.loaded_tempo(slack_s=slack_s) as (server, dataset):
        monkeypatch.setenv("ORBCAST_TEMPO_URL", server.url)
        yield server, dataset


def test_counts_and_costs_per_model(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    with _fake(96 * 3600, monkeypatch) as (_, dataset):
        data = orjson.loads(cli("query", "--approx", "--since", "1h", "-o", "json").stdout)
    recent = dataset.where(age_class="recent")
    groups = {g["key"]: g for g in data["groups"]}
    assert set(groups) == {g.model for g in recent}
    for model, figures in groups.items():
        mine = [g for g in recent if g.model == model]
        assert figures["count"] == len(mine) and figures["errors"] == sum(g.status == "error" for g in mine)
        assert figures["cost_usd"] == pytest.approx(sum(g.cost for g in mine))
        assert figures["input_tokens"] == sum(g.input_tokens for g in mine)
        assert figures["max_ms"] == pytest.approx(max(g.duration_ms for g in mine))
    assert data["totals"]["count"] == len(recent)


def test_default_settings_undercount_backfill_and_say_so(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    with _fake(120, monkeypatch) as (_, dataset):
        res = cli("query", "--approx", "--since", "1h")
    assert res.exit_code == 0
    count = int(res.stdout.split(" generations matched")[0].rsplit("· ", 1)[1].replace(",", ""))
    assert count < len(dataset.where(age_class="recent"))  # as recorded: metrics miss spans pushed late
    assert "leave out backfilled spans" in res.stderr and "approximate" in res.stdout.splitlines()[0]


def test_windows_beyond_the_metrics_limit_are_cut(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    with _fake(96 * 3600, monkeypatch) as (server, dataset):
        data = orjson.loads(cli("query", "--approx", "--since", "3d", "-o", "json").stdout)
        windows = {
            (int(p["start"]), int(p["end"])) for path, p in server.requests if path == "/api/metrics/query"
        }
    assert data["totals"]["count"] == len(dataset.generations)
    assert data["totals"]["cost_usd"] == pytest.approx(sum(g.cost for g in dataset.generations))
    pieces = [w for w in windows if w[1] - w[0] <= 24 * 3600]
    assert len(pieces) >= 3 and any("pieces" in w for w in data["warnings"])


def test_approx_has_no_rows_and_scopes_follow_by(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    with _fake(96 * 3600, monkeypatch):
        assert cli("query", "--approx", "-o", "csv").exit_code == 2
        scoped = cli("query", "--approx", "--since", "1h", "--fail-if", "provider=OpenAI: count < 1")
    assert scoped.exit_code == 2 and "--by" in scoped.stderr


def test_partial_metrics_answers_mark_truncated(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    with _fake(96 * 3600, monkeypatch) as (server, _):
        original = server.metrics

        def partial(params: dict[str, str]) -> tuple[int, Any]:
            status, body = original(params)
            return status, {**body, "status": "PARTIAL", "message": "Response exceeds maximum series limit"}

        server.metrics = partial  # type: ignore[method-assign]
        data = orjson.loads(cli("query", "--approx", "--since", "1h", "-o", "json").stdout)
    assert data["truncated"] is True
    assert any("maximum series limit" in w for w in data["warnings"])
