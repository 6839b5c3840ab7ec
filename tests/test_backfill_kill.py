"""Stopping a real ``orbcast replay`` process mid-run: SIGKILL, then a re-run that finishes the job with
every generation delivered and acknowledged once; SIGTERM and Ctrl-C (SIGINT) stop cleanly with exit 130."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from orbcast.spans import trace_id_for
from orbcast.state import Ledger, destination_key
from tests.fake_otlp import Answer, FakeOtlp, make_record_dicts, start_receiver, write_jsonl

GENERATIONS = 1500
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def receiver() -> Iterator[FakeOtlp]:
    fake = start_receiver()
    yield fake
    fake.close()
    assert fake.invalid == [], fake.invalid


def _env(home: Path, receiver: FakeOtlp) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORBCAST_", "OTEL_", "OPENROUTER_"))}
    env.update(
        HOME=str(home),
        ORBCAST_CONFIG=str(home / "none.toml"),
        ORBCAST_STATE_DIR=str(home / "state"),
        ORBCAST_OTLP_ENDPOINT=receiver.url + "/otlp",
        ORBCAST_BACKOFF_SCALE="0.01",
        NO_COLOR="1",
    )
    return env


def _start(env: dict[str, str], path: Path, *flags: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "orbcast", "replay", str(path), "-o", "json", *flags],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _acknowledged(state: Path) -> int:
    if not (state / "ledger.sqlite3").exists():
        return 0
    with Ledger(state) as ledger:
        return ledger.count()


def _wait_for(condition: Any, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60  # a safety net only: no assertion depends on timing
    while not condition():
        assert process.poll() is None, f"orbcast exited before {what}: {process.communicate()}"
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def _ledger(home: Path, receiver: FakeOtlp) -> list[tuple[str, str, str]]:
    with Ledger(home / "state") as ledger:
        return ledger.entries(destination_key(receiver.endpoint, None))


def test_sigkill_mid_run_then_rerun_delivers_everything_once(receiver: FakeOtlp, tmp_path: Path) -> None:
    dicts = make_record_dicts(GENERATIONS, seed=41)
    path = write_jsonl(tmp_path / "big.jsonl", dicts)
    env = _env(tmp_path, receiver)
    receiver.default = Answer(200, delay=0.15)  # the server stores at once but is slow to acknowledge

    first = _start(env, path, "--batch-spans", "40", "--concurrency", "3")
    _wait_for(lambda: _acknowledged(tmp_path / "state") >= 200, first, "200 acknowledged generations")
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert first.returncode == -signal.SIGKILL

    killed_rows = _ledger(tmp_path, receiver)
    received_before = set(receiver.generation_ids())
    assert 200 <= len(killed_rows) < GENERATIONS
    assert {g for g, _, _ in killed_rows} <= received_before  # never recorded without an acknowledgement
    killed_run = {run for _, _, run in killed_rows}
    assert len(killed_run) == 1

    receiver.default = Answer(200)
    second = _start(env, path, "--batch-spans", "40")
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err.decode()
    summary = orjson.loads(out)
    assert summary["status"] == "done"
    assert summary["resumed"] == len(killed_rows)
    assert summary["resumed_runs"] == list(killed_run)
    assert summary["generations_sent"] == GENERATIONS - len(killed_rows)

    ids = {d["id"] for d in dicts}
    assert receiver.generation_ids() == ids  # every generation's spans arrived ...
    assert receiver.trace_ids() == {trace_id_for(d["id"]) for d in dicts}
    spans_per_gen = {d["id"]: 1 + len(d["provider_responses"]) for d in dicts}
    assert len(receiver.spans) == sum(spans_per_gen.values())
    rows = _ledger(tmp_path, receiver)
    assert sorted(g for g, _, _ in rows) == sorted(ids)  # ... and the ledger acknowledges each once
    receipts = receiver.receipts()
    acknowledged_first = {g for g, _, run in rows if run in killed_run}
    assert all(receipts[g] == 1 for g in acknowledged_first)  # what run 1 recorded was not sent again


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "ctrl-c"])
def test_sigterm_and_ctrl_c_stop_cleanly(receiver: FakeOtlp, tmp_path: Path, signum: int) -> None:
    dicts = make_record_dicts(600, seed=42)
    path = write_jsonl(tmp_path / "big.jsonl", dicts)
    env = _env(tmp_path, receiver)
    receiver.default = Answer(200, delay=0.1)
    process = _start(env, path, "--batch-spans", "20", "--concurrency", "2")
    _wait_for(lambda: _acknowledged(tmp_path / "state") >= 40, process, "40 acknowledged generations")
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err.decode()
    assert "interrupted" in err.decode()
    summary = orjson.loads(out)
    assert summary["status"] == "interrupted"
    rows = _ledger(tmp_path, receiver)
    assert {g for g, _, _ in rows} <= receiver.generation_ids()
    assert summary["generations_sent"] == len(rows) < 600  # the summary and the ledger agree

    receiver.default = Answer(200)
    rerun = _start(env, path)
    out, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err.decode()
    again = orjson.loads(out)
    assert again["resumed"] == len(rows) and again["generations_sent"] == 600 - len(rows)
    assert receiver.generation_ids() == {d["id"] for d in dicts}
    assert len(_ledger(tmp_path, receiver)) == 600
