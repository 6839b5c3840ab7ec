"""Real ``python -m orbcast fetch`` processes: killed mid-run then resumed, interrupted with Ctrl-C, and
two processes on disjoint windows sharing one output file and one state directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from tests.conftest import REPO
from tests.fake_openrouter import MGMT_KEY, FakeOpenRouter, make_generations

START = (datetime.now(UTC) - timedelta(days=4)).replace(second=0, microsecond=0)
COUNT = 300
GENS = make_generations(COUNT, START, timedelta(minutes=5))
END = START + timedelta(minutes=5 * COUNT)
MIDDLE = START + timedelta(minutes=5 * COUNT // 2)


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter(GENS, latency=0.01) as server:
        yield server


def env(fake: FakeOpenRouter, home: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("ORBCAST_", "OPENROUTER_", "OTEL_"))}
    return {
        **keep,
        "HOME": str(home),
        "ORBCAST_CONFIG": str(home / "none.toml"),
        "ORBCAST_STATE_DIR": str(home / "state"),
        "ORBCAST_BACKOFF_SCALE": "0.001",
        "OPENROUTER_MANAGEMENT_KEY": MGMT_KEY,
        "OPENROUTER_BASE_URL": fake.url,
    }


def start_fetch(
    fake: FakeOpenRouter, home: Path, out: Path, start: datetime, end: datetime
) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "orbcast", "fetch", "--from", start.isoformat(), "--to", end.isoformat()]
    argv += ["-o", str(out), "--concurrency", "2"]
    return subprocess.Popen(
        argv, cwd=REPO, env=env(fake, home), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def wait_for_lines(out: Path, proc: subprocess.Popen[bytes]) -> None:
    """Until the file holds some records (the process must still be running then)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if out.exists() and out.stat().st_size > 0:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("no output appeared")


def ids_in(out: Path) -> list[str]:
    found = []
    for line in out.read_bytes().splitlines():
        try:
            found.append(orjson.loads(line)["id"])
        except orjson.JSONDecodeError:
            continue
    return found


def test_kill_mid_run_then_resume_loses_nothing_and_duplicates_nothing(
    fake: FakeOpenRouter, tmp_path: Path
) -> None:
    out = tmp_path / "history.jsonl"
    proc = start_fetch(fake, tmp_path, out, START, END)
    wait_for_lines(out, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    done = ids_in(out)
    assert 0 < len(done) < COUNT and len(done) == len(set(done))
    with fake.lock:
        fake.seen.clear()
    second = start_fetch(fake, tmp_path, out, START, END)
    stdout, stderr = second.communicate(timeout=60)
    assert second.returncode == 0, stderr.decode()
    final = ids_in(out)
    assert sorted(final) == sorted(g["id"] for g in GENS)  # every generation exactly once
    refetched = [s.query["id"] for s in fake.requests("generation")]
    assert sorted(refetched) == sorted(set(final) - set(done))  # only what the killed run had not written
    assert f"{len(set(done)):,} generations already in" in stderr.decode() and stdout == b""


def test_ctrl_c_stops_with_exit_130_and_keeps_whole_lines(fake: FakeOpenRouter, tmp_path: Path) -> None:
    out = tmp_path / "history.jsonl"
    proc = start_fetch(fake, tmp_path, out, START, END)
    wait_for_lines(out, proc)
    proc.send_signal(signal.SIGINT)
    _stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr.decode()
    assert b"interrupted" in stderr and b"Traceback" not in stderr
    text = out.read_bytes()
    assert text.endswith(b"\n") and all(orjson.loads(line) for line in text.splitlines())


def test_two_processes_on_disjoint_windows_share_one_output_file(
    fake: FakeOpenRouter, tmp_path: Path
) -> None:
    out = tmp_path / "shared.jsonl"
    first = start_fetch(fake, tmp_path, out, START, MIDDLE)
    second = start_fetch(fake, tmp_path, out, MIDDLE, END)
    for proc in (first, second):
        _stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, stderr.decode()
    lines = out.read_bytes().splitlines()
    ids = [orjson.loads(line)["id"] for line in lines]  # every line whole and valid
    assert sorted(set(ids)) == sorted(g["id"] for g in GENS)
    # The generation on the shared boundary may be fetched by both windows; nothing else twice.
    assert len(ids) - len(set(ids)) <= 1
    assert (tmp_path / "state" / "openrouter-analytics-pace.json").exists()
