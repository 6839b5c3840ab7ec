"""The JSON answer of ``orbcast query`` is a documented, stable contract: its keys are pinned here.

Adding a key is a compatible change (update this test and the README); renaming or removing one is not.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from tests import tempo_data
from tests.conftest import Result
from tests.fake_tempo import FakeTempo

Cli = Callable[..., Result]

TOP = {
    "schema_version", "query", "query_input", "window", "searched", "truncated", "approximate", "warnings",
    "group_by", "groups", "totals", "generations", "checks",
}  # fmt: skip
GROUP = {
    "key", "count", "errors", "error_rate", "p50_ms", "p95_ms", "p99_ms", "max_ms", "ttft_p50_ms",
    "ttft_p95_ms", "input_tokens", "output_tokens", "reasoning_tokens", "cached_tokens", "cost_usd",
    "cost_share",
}  # fmt: skip
GENERATION = {
    "trace_id", "generation_id", "start", "model", "provider", "duration_ms", "ttft_ms", "input_tokens",
    "output_tokens", "reasoning_tokens", "cached_tokens", "cost_usd", "status", "user", "session", "api_key",
    "attrs", "group",
}  # fmt: skip
CHECK = {"condition", "scope", "metric", "op", "threshold", "measured", "measured_text", "breached"}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def tempo(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTempo]:
    with tempo_data.loaded_tempo(slack_s=96 * 3600) as (server, _):
        monkeypatch.setenv("ORBCAST_TEMPO_URL", server.url)
        yield server


def answer(cli: Cli, *args: str) -> dict[str, Any]:
    res = cli("query", *args, "-o", "json")
    assert res.exit_code in (0, 8), res.output
    return orjson.loads(res.stdout)


def test_json_contract_keys_and_types(cli: Cli, tempo: FakeTempo) -> None:
    data = answer(cli, "duration > 1s", "--since", "4d", "--by", "provider", "--fail-if", "p95 > 1s")
    assert set(data) == TOP
    assert data["schema_version"] == 1
    assert data["query"].startswith("{ ") and data["query_input"] == "duration > 1s"
    assert set(data["window"]) == set(data["searched"]) == {"from", "to"}
    assert all(ISO.match(v) for v in (*data["window"].values(), *data["searched"].values()))
    assert isinstance(data["truncated"], bool) and isinstance(data["warnings"], list)
    assert data["group_by"] == "provider" and data["approximate"] is False
    assert data["groups"] and all(set(g) == GROUP for g in [*data["groups"], data["totals"]])
    assert data["totals"]["key"] == "total"
    assert data["generations"] and all(set(r) == GENERATION for r in data["generations"])
    for row in data["generations"]:
        assert re.fullmatch(r"[0-9a-f]{32}", row["trace_id"]) and ISO.match(row["start"])
        assert row["status"] in ("ok", "error") and row["group"] == (row["provider"] or "(none)")
        assert isinstance(row["duration_ms"], float) and isinstance(row["input_tokens"], int)
    assert [set(c) for c in data["checks"]] == [CHECK]


def test_approximate_answer_keeps_the_same_keys(cli: Cli, tempo: FakeTempo) -> None:
    data = answer(cli, "--approx", "--since", "1h")
    assert set(data) == TOP and data["approximate"] is True and data["generations"] == []
    assert all(set(g) == GROUP for g in [*data["groups"], data["totals"]])
