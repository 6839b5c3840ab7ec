"""The send ledger: which generation went to which destination, committed only once acknowledged.

One SQLite file under the state directory (``<state_dir>/ledger.sqlite3``), WAL mode, so several
orbcast processes may read and write it at once (writers wait up to ``timeout`` seconds for each
other). A row means "the destination answered 2xx for a request holding this generation": rows are
written after the acknowledgement, in one transaction per batch, so a crash or SIGKILL at any moment
leaves at most some acknowledged generations unrecorded (they are sent again, onto the same trace and
span IDs), never a recorded one that was not acknowledged.

A destination is the OTLP endpoint plus the user it authenticates as (one Grafana stack); the token is
not part of it and never stored.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from orbcast.errors import ConfigError

LEDGER_FILE = "ledger.sqlite3"
SCHEMA_VERSION = 1
SNAPSHOT_SECONDS = 1.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sent (
    destination TEXT NOT NULL,
    generation_id TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    spans INTEGER NOT NULL,
    run_id TEXT NOT NULL,
    acked_at REAL NOT NULL,
    PRIMARY KEY (destination, generation_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    destination TEXT NOT NULL,
    command TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    status TEXT NOT NULL,
    acknowledged INTEGER NOT NULL DEFAULT 0,
    resumed_by TEXT
);
CREATE INDEX IF NOT EXISTS runs_destination ON runs (destination, status);
"""

RUNNING = "running"
DONE = "done"
INTERRUPTED = "interrupted"
FAILED = "failed"


def destination_key(endpoint: str, user: str | None) -> str:
    """``<endpoint>`` or ``<user>@<endpoint>``: the identity of a destination in the ledger."""
    endpoint = endpoint.strip().rstrip("/")
    return f"{user}@{endpoint}" if user else endpoint


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class RunStart:
    run_id: str
    earlier: tuple[str, ...]  # earlier runs to this destination that did not finish (killed, interrupted)


class Entry(NamedTuple):
    """One generation (or replayed trace) of a batch: what the ledger records once it is acknowledged."""

    generation_id: str
    trace_id: str
    spans: int


class Ledger:
    """The ledger of one state directory. Thread-safe; open one per process."""

    def __init__(self, state_dir: str | os.PathLike[str], *, timeout: float = 60.0) -> None:
        self.path = Path(state_dir) / LEDGER_FILE
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                str(self.path), timeout=timeout, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        except sqlite3.DatabaseError as exc:
            raise ConfigError(
                f"cannot open the ledger {self.path}: {exc}",
                hint="check the state directory (--state-dir / ORBCAST_STATE_DIR) is writable",
            ) from None
        except OSError as exc:
            raise ConfigError(
                f"cannot create the state directory {self.path.parent}: {exc.strerror}"
            ) from None
        self._lock = threading.Lock()
        self._timeout = timeout
        self._reader: sqlite3.Connection | None = None
        self._reader_lock = threading.Lock()
        self._snapshot_at = 0.0

    # -- lookups

    def sent_by(self, generation_id: str, destination: str) -> str | None:
        """The run that got ``generation_id`` acknowledged by ``destination``, or None if never.

        Lookups read a snapshot refreshed every :data:`SNAPSHOT_SECONDS` (one read transaction on a
        second connection: a fraction of the cost of a transaction per lookup). A generation committed
        since, by this process or another, may still read as unsent for that long: at worst it is sent
        once more, onto the same IDs, and not recorded twice.
        """
        with self._reader_lock:
            reader = self._snapshot()
            row = reader.execute(
                "SELECT run_id FROM sent WHERE destination = ? AND generation_id = ?",
                (destination, generation_id),
            ).fetchone()
        return row[0] if row else None

    def _snapshot(self) -> sqlite3.Connection:
        now = time.monotonic()
        if self._reader is None:
            self._reader = sqlite3.connect(
                str(self.path), timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
        elif now - self._snapshot_at < SNAPSHOT_SECONDS:
            return self._reader
        else:
            self._reader.execute("COMMIT")
        self._reader.execute("BEGIN")
        self._snapshot_at = now
        return self._reader

    def has(self, generation_id: str, destination: str) -> bool:
        return self.sent_by(generation_id, destination) is not None

    def holds(self, destination: str) -> bool:
        """Whether ``destination`` acknowledged anything yet."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM sent WHERE destination = ? LIMIT 1", (destination,)
            ).fetchone()
        return row is not None

    def count(self, destination: str | None = None, run_id: str | None = None) -> int:
        query, args = "SELECT count(*) FROM sent WHERE 1=1", []
        if destination is not None:
            query += " AND destination = ?"
            args.append(destination)
        if run_id is not None:
            query += " AND run_id = ?"
            args.append(run_id)
        with self._lock:
            return int(self._db.execute(query, args).fetchone()[0])

    def entries(self, destination: str) -> list[tuple[str, str, str]]:
        """(generation id, trace id, run id) of every acknowledged generation: for tests and tools."""
        with self._lock:
            rows = self._db.execute(
                "SELECT generation_id, trace_id, run_id FROM sent WHERE destination = ?"
                " ORDER BY generation_id",
                (destination,),
            ).fetchall()
        return [(str(a), str(b), str(c)) for a, b, c in rows]

    # -- writes

    def commit(self, destination: str, run_id: str, entries: Sequence[Entry] | Iterable[Entry]) -> int:
        """Record an acknowledged batch in one transaction; returns how many rows were new.

        A generation already recorded for the destination keeps its first row (``--force`` re-sends
        do not create a second acknowledgement).
        """
        now = time.time()
        rows = [(destination, e.generation_id, e.trace_id, e.spans, run_id, now) for e in entries]
        if not rows:
            return 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                before = self._db.total_changes
                self._db.executemany(
                    "INSERT OR IGNORE INTO sent (destination, generation_id, trace_id, spans, run_id,"
                    " acked_at) VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
                added = self._db.total_changes - before
                self._db.execute(
                    "UPDATE runs SET acknowledged = acknowledged + ? WHERE run_id = ?", (added, run_id)
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return added

    def start_run(self, destination: str, command: str) -> RunStart:
        """Register a run; earlier unfinished runs to the same destination are the ones it resumes."""
        run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = self._db.execute(
                    "SELECT run_id, status, pid FROM runs WHERE destination = ? AND resumed_by IS NULL"
                    " AND status IN (?, ?, ?) ORDER BY started_at",
                    (destination, RUNNING, INTERRUPTED, FAILED),
                ).fetchall()
                earlier = tuple(
                    rid for rid, status, pid in rows if status != RUNNING or not _pid_alive(int(pid))
                )
                self._db.execute(
                    "INSERT INTO runs (run_id, destination, command, pid, started_at, status)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (run_id, destination, command, os.getpid(), time.time(), RUNNING),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return RunStart(run_id, earlier)

    def finish_run(self, run_id: str, status: str, resumed: Iterable[str] = ()) -> None:
        """Close a run; a run that completed marks the earlier runs it picked up as resumed."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?",
                    (status, time.time(), run_id),
                )
                if status == DONE:
                    self._db.executemany(
                        "UPDATE runs SET resumed_by = ? WHERE run_id = ?", [(run_id, r) for r in resumed]
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def run_status(self, run_id: str) -> tuple[str, int] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT status, acknowledged FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
        return (str(row[0]), int(row[1])) if row else None

    def close(self) -> None:
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        with self._lock:
            self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
