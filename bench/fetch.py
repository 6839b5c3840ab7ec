"""Benchmark: ``orbcast fetch`` of 20,000 generations against the loopback fake OpenRouter.

Every request to the fake takes ``--latency`` (default 20 ms). The fetch runs as a real
``python -m orbcast fetch`` subprocess, once per concurrency; the fake runs in a process of its own, so
that this launcher stays small (Linux carries a process's pre-``exec`` RSS into ``ru_maxrss``). Printed
per run: generations/second over the fetch phase (first to last GET /generation) and end to end, the
ceiling the concurrency allows (concurrency / latency), the share of it reached, and the child's peak
RSS (``resource`` rusage of that child). Targets: >= 80 % of the ceiling, peak RSS < 100 MB.

    .venv/bin/python bench/fetch.py [--generations 20000] [--latency 0.02] [--concurrency 8,16,32]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orbcast.fetching import DEFAULT_CONCURRENCY  # noqa: E402
from tests.fake_openrouter import MGMT_KEY, FakeOpenRouter, make_generations  # noqa: E402


def serve(count: int, latency: float, start: datetime, spacing: timedelta, conn: Connection) -> None:
    """The fake, in its own process. Commands on ``conn``: "clear", "span" -> (GETs, first, last)."""
    fake = FakeOpenRouter(make_generations(count, start, spacing), latency=latency).start()
    conn.send(fake.url)
    while True:
        command = conn.recv()
        if command == "clear":
            with fake.lock:
                fake.seen.clear()
            conn.send(None)
        elif command == "span":
            gets = [s.at for s in fake.requests("generation")]
            conn.send((len(gets), min(gets, default=0.0), max(gets, default=0.0)))
        else:
            fake.stop()
            conn.send(None)
            return


def run_once(
    conn: Connection, url: str, count: int, concurrency: int, start: datetime, end: datetime
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "history.jsonl"
        env = {
            **os.environ,
            "OPENROUTER_MANAGEMENT_KEY": MGMT_KEY,
            "OPENROUTER_BASE_URL": url,
            "ORBCAST_STATE_DIR": str(Path(tmp) / "state"),
            "ORBCAST_CONFIG": str(Path(tmp) / "none.toml"),
        }
        argv = [sys.executable, "-m", "orbcast", "fetch", "-q", "--from", start.isoformat(), "--to"]
        argv += [end.isoformat(), "-o", str(out), "--concurrency", str(concurrency)]
        conn.send("clear")
        conn.recv()
        began = time.perf_counter()
        child = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        stderr = child.stderr.read().decode() if child.stderr else ""
        _pid, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - began
        code = os.waitstatus_to_exitcode(status)
        lines = sum(1 for _ in out.open("rb")) if out.exists() else 0
        if code != 0 or lines != count:
            raise SystemExit(f"fetch failed: exit {code}, {lines}/{count} lines\n{stderr}")
        conn.send("span")
        gets, first, last = conn.recv()
        phase = last - first if gets > 1 else wall
        return {
            "rate": count / phase,
            "end_to_end": count / wall,
            "wall": wall,
            "rss_mb": usage.ru_maxrss / 1024,  # Linux: kilobytes
            "cpu": usage.ru_utime + usage.ru_stime,
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--generations", type=int, default=20_000)
    parser.add_argument("--latency", type=float, default=0.020, help="seconds per request at the fake")
    parser.add_argument("--concurrency", default="8,16,32", help="comma-separated concurrencies to run")
    args = parser.parse_args()
    start = datetime(2026, 11, 1, tzinfo=UTC)
    spacing = timedelta(seconds=20)
    end = start + spacing * args.generations
    print(
        f"orbcast fetch: {args.generations:,} generations, {args.latency * 1000:.0f} ms per request",
        flush=True,
    )
    header = f"{'concurrency':>11} {'ceiling/s':>10} {'gen/s':>8} {'% ceiling':>9} {'end-to-end/s':>12}"
    print(header + f" {'wall s':>7} {'peak RSS MB':>11}  verdict", flush=True)
    met: list[int] = []
    context = multiprocessing.get_context("spawn")
    conn, theirs = context.Pipe()
    server = context.Process(target=serve, args=(args.generations, args.latency, start, spacing, theirs))
    server.start()
    url = conn.recv()
    try:
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            result = run_once(conn, url, args.generations, concurrency, start, end)
            ceiling = concurrency / args.latency
            share = result["rate"] / ceiling * 100
            passed = share >= 80 and result["rss_mb"] < 100
            if passed:
                met.append(concurrency)
            print(
                f"{concurrency:>11} {ceiling:>10,.0f} {result['rate']:>8,.0f} {share:>8.1f}% "
                f"{result['end_to_end']:>12,.0f} {result['wall']:>7.1f} {result['rss_mb']:>11.1f}  "
                f"{'ok' if passed else 'BELOW TARGET'}  (cpu {result['cpu']:.1f} s)",
                flush=True,
            )
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"largest fetch peak RSS (getrusage RUSAGE_CHILDREN): {children:.1f} MB")
    finally:
        conn.send("stop")
        server.join(timeout=10)
    print(
        f"targets (>= 80% of concurrency/latency, peak RSS < 100 MB) met at concurrency: "
        f"{', '.join(map(str, met)) or 'none'} (default {DEFAULT_CONCURRENCY})"
    )


if __name__ == "__main__":
    main()
