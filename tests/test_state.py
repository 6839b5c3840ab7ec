"""The send ledger: acknowledged once per destination, runs and resumes, safe for several processes."""

from __future__ import annotations

import multiprocessing as mp
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from orbcast.errors import ConfigError
from orbcast.state import DONE, INTERRUPTED, LEDGER_FILE, RUNNING, Entry, Ledger, destination_key


def _entries(ids: range | list[int]) -> list[Entry]:
    return [Entry(f"gen-{i}", f"{i:032x}", 2) for i in ids]


def test_commit_and_lookup(tmp_path: Path) -> None:
    dest = destination_key("https://otlp.example/otlp/v1/traces/", "123")
    assert dest == "123@https://otlp.example/otlp/v1/traces"
    with Ledger(tmp_path) as ledger:
        run = ledger.start_run(dest, "backfill")
        assert ledger.commit(dest, run.run_id, _entries(range(10))) == 10
        assert ledger.has("gen-3", dest)
        assert not ledger.has("gen-3", "other@https://otlp.example")  # per destination
        assert not ledger.has("gen-99", dest)
        assert ledger.sent_by("gen-0", dest) == run.run_id
        assert ledger.count(dest) == 10 and ledger.count(run_id=run.run_id) == 10


def test_a_generation_is_acknowledged_once(tmp_path: Path) -> None:
    dest = destination_key("http://x/v1/traces", None)
    with Ledger(tmp_path) as ledger:
        first = ledger.start_run(dest, "backfill").run_id
        ledger.commit(dest, first, _entries(range(5)))
        second = ledger.start_run(dest, "backfill").run_id
        assert ledger.commit(dest, second, _entries(range(3, 8))) == 3  # 3 and 4 were there already
        rows = ledger.entries(dest)
        assert [r[0] for r in rows] == sorted(f"gen-{i}" for i in range(8))
        assert dict((g, run) for g, _, run in rows)["gen-4"] == first  # the first acknowledgement stays
        assert ledger.run_status(second) == (RUNNING, 3)


def test_interrupted_and_killed_runs_are_resumed_once(tmp_path: Path) -> None:
    dest = "d"
    with Ledger(tmp_path) as ledger:
        stopped = ledger.start_run(dest, "replay").run_id
        ledger.finish_run(stopped, INTERRUPTED)
    # a run whose process died without closing it (SIGKILL): a pid that no longer exists
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    db = sqlite3.connect(tmp_path / LEDGER_FILE)
    insert = (
        "INSERT INTO runs (run_id, destination, command, pid, started_at, status) VALUES (?, ?, 'x', ?, 0, ?)"
    )
    db.execute(insert, ("killed", dest, int(dead.stdout), RUNNING))
    db.execute(insert, ("alive", dest, os.getpid(), RUNNING))  # still running (this process): not resumed
    db.commit()
    db.close()
    with Ledger(tmp_path) as ledger:
        resumer = ledger.start_run(dest, "replay")
        assert set(resumer.earlier) == {stopped, "killed"}
        ledger.finish_run(resumer.run_id, DONE, resumer.earlier)
        assert ledger.start_run(dest, "replay").earlier == ()  # picked up once only


def test_wal_mode_and_unwritable_state_dir(tmp_path: Path) -> None:
    with Ledger(tmp_path):
        pass
    db = sqlite3.connect(tmp_path / LEDGER_FILE)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError):
        Ledger(blocker / "state")


def test_lookups_see_commits_by_others_after_the_snapshot_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("orbcast.state.SNAPSHOT_SECONDS", 0.0)
    with Ledger(tmp_path) as reader, Ledger(tmp_path) as writer:
        assert not reader.has("gen-1", "d")
        writer.commit("d", writer.start_run("d", "x").run_id, _entries([1]))
        assert reader.has("gen-1", "d")


def _hammer(state_dir: str, worker: int, barrier: mp.synchronize.Barrier) -> None:
    ledger = Ledger(state_dir)
    run = ledger.start_run("shared", f"worker-{worker}")
    barrier.wait()
    for chunk in range(20):  # overlapping ranges: every id is committed by at least two processes
        base = (worker * 50 + chunk * 10) % 300
        ledger.commit("shared", run.run_id, _entries(range(base, base + 30)))
    ledger.finish_run(run.run_id, DONE)
    ledger.close()


def test_concurrent_processes_record_each_id_once(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(3)
    workers = [ctx.Process(target=_hammer, args=(str(tmp_path), w, barrier)) for w in range(3)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=60)
        assert process.exitcode == 0
    with Ledger(tmp_path) as ledger:
        rows = ledger.entries("shared")
        ids = [r[0] for r in rows]
        assert len(ids) == len(set(ids))
        expected = set()
        for w in range(3):
            for chunk in range(20):
                base = (w * 50 + chunk * 10) % 300
                expected |= {f"gen-{i}" for i in range(base, base + 30)}
        assert set(ids) == expected
        # the per-run counters add up to the rows: no acknowledgement counted twice
        db = sqlite3.connect(tmp_path / LEDGER_FILE)
        assert db.execute("SELECT sum(acknowledged) FROM runs").fetchone()[0] == len(ids)
        db.close()
