"""Backfill then query against a real Tempo (skipped unless ORBCAST_TEST_TEMPO_URL and
ORBCAST_TEST_OTLP_ENDPOINT are set; optional: ORBCAST_TEST_TEMPO_USER/_TOKEN, ORBCAST_TEST_OTLP_USER/_TOKEN).

A fresh set of generations, tagged with a run ID, goes through ``orbcast backfill --source jsonl:...``;
then ``orbcast query`` must report exactly the figures computed here from those source records.
The recent generations start 40-100 s before the push, inside Tempo's default 2 min ingestion slack, so
search finds them within seconds on default settings; two 30-hour-old ones are checked by trace ID.

    ORBCAST_TEST_TEMPO_URL=http://localhost:3200 ORBCAST_TEST_OTLP_ENDPOINT=http://localhost:4318 \\
        .venv/bin/pytest -m tempo tests/test_query_real_tempo.py
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from orbcast.spans import trace_id_for
from tests.conftest import Result
from tests.tempo_data import percentile

# read now: the autouse `isolated` fixture removes every ORBCAST_ variable before the test runs
NAMES = ("TEMPO_URL", "OTLP_ENDPOINT", "TEMPO_USER", "TEMPO_TOKEN", "OTLP_USER", "OTLP_TOKEN")
ENV = {f"ORBCAST_TEST_{n}": os.environ.get(f"ORBCAST_TEST_{n}") for n in NAMES}
pytestmark = [
    pytest.mark.tempo,
    pytest.mark.skipif(
        not (ENV["ORBCAST_TEST_TEMPO_URL"] and ENV["ORBCAST_TEST_OTLP_ENDPOINT"]),
        reason="set ORBCAST_TEST_TEMPO_URL and ORBCAST_TEST_OTLP_ENDPOINT to run against a real Tempo",
    ),
]
Cli = Callable[..., Result]
MODELS = [
    "openai/gpt-4.1",
    "anthropic/claude-sonnet-4.5",
    "google/gemini-2.5-flash",
    "deepseek/deepseek-chat-v3.1",
]


def records(run: str, now: datetime) -> list[dict[str, Any]]:
    rng = random.Random(run)
    out = []
    for n in range(26):
        old = n >= 24
        start = now - (timedelta(hours=30, seconds=n) if old else timedelta(seconds=rng.uniform(40, 100)))
        failed = n % 8 == 3
        out.append(
            {
                "id": f"gen-{int(start.timestamp())}-{run}{n:04d}",
                "created_at": start.isoformat().replace("+00:00", "Z"),
                "model": MODELS[n % len(MODELS)],
                "provider_name": "OpenAI" if n % 2 else "Together",
                "total_cost": 0.0 if failed else round(rng.uniform(0.0001, 0.02), 8),
                "native_tokens_prompt": rng.randrange(100, 5000),
                "native_tokens_completion": 0 if failed else rng.randrange(10, 900),
                "generation_time": rng.randrange(200, 9000),
                "finish_reason": "error" if failed else "stop",
                "external_user": f"user-{n % 3}",
                "session_id": f"sess-{n % 5}",
                "orbcast": {"ttft_ms": None if failed else rng.randrange(80, 900)},
            }
        )
    return out


def connection_flags() -> list[str]:
    flags = [
        "--tempo-url",
        str(ENV["ORBCAST_TEST_TEMPO_URL"]),
        "--otlp-endpoint",
        str(ENV["ORBCAST_TEST_OTLP_ENDPOINT"]),
    ]
    for name in NAMES[2:]:
        key, flag = f"ORBCAST_TEST_{name}", "--" + name.lower().replace("_", "-")
        if ENV[key]:
            flags += [flag, str(ENV[key])]
    return flags


def test_backfill_then_query(cli: Cli, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:10]
    now = datetime.now(UTC)
    source = records(run, now)
    path = tmp_path / "history.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in source) + b"\n")
    pushed = cli("backfill", "--source", f"jsonl:{path}", "--since", "2d", "--attr", f"test_run={run}",
                 *connection_flags())  # fmt: skip
    assert pushed.exit_code == 0, pushed.output
    recent = [r for r in source if not r["id"].endswith(("0024", "0025"))]
    query = f'span.trace.metadata.test_run = "{run}"'
    deadline = time.monotonic() + 120
    while True:
        res = cli("query", query, "--since", "1h", "-o", "json", *connection_flags())
        assert res.exit_code == 0, res.output
        data = orjson.loads(res.stdout)
        if data["totals"]["count"] >= len(recent) or time.monotonic() > deadline:
            break
        time.sleep(3)
    totals = data["totals"]
    durations = [float(r["generation_time"]) for r in recent]
    assert totals["count"] == len(recent) and data["truncated"] is False
    assert totals["errors"] == sum(r["finish_reason"] == "error" for r in recent)
    for q in (50, 95, 99):
        assert totals[f"p{q}_ms"] == pytest.approx(percentile(durations, q))
    assert totals["cost_usd"] == pytest.approx(sum(r["total_cost"] for r in recent))
    assert totals["input_tokens"] == sum(r["native_tokens_prompt"] for r in recent)
    assert totals["output_tokens"] == sum(r["native_tokens_completion"] for r in recent)
    groups = {g["key"]: g for g in data["groups"]}
    for model in MODELS:
        assert groups[model]["count"] == sum(r["model"] == model for r in recent)
    assert {g["trace_id"] for g in data["generations"]} == {trace_id_for(r["id"]) for r in recent}
    for old in source[24:]:  # backfilled 30 h late: search cannot see them yet, trace by ID can
        shown = cli("trace", trace_id_for(old["id"]), "-o", "json", *connection_flags())
        assert shown.exit_code == 0, shown.output
        root = next(s for s in orjson.loads(shown.stdout)["spans"] if s["name"] == "LLM Generation")
        assert root["attributes"]["gen_ai.response.id"] == old["id"]
