"""Benchmark: the query tables for 50,000 generations from one recorded-shape Tempo search answer.

Writes a search answer shaped exactly like the recorded ones (trimmed trace IDs, unscoped keys, int64 as
strings, the deprecated ``spanSet`` copy next to ``spanSets``, the attributes orbcast's select() asks
for), serves it from a separate process on loopback, and times orbcast reading it: the HTTP answer
streamed and cut per trace, one row per generation, the report (exact percentiles, cost shares) and
the three tables rendered. Prints seconds and peak memory. Target: under 1 s and 200 MB on one core.

    .venv/bin/python bench/query.py [--generations 50000] [--tracemalloc]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orbcast.config import load_settings  # noqa: E402
from orbcast.readback import read_generations  # noqa: E402
from orbcast.report import build_report, tables  # noqa: E402
from orbcast.tempo import TempoClient  # noqa: E402
from orbcast.timeparse import Window  # noqa: E402
from orbcast.traceql import TABLE_FIELDS, prepare  # noqa: E402

MODELS = [
    ("openai/gpt-4.1", "OpenAI", 2.0e-6, 8.0e-6),
    ("openai/gpt-5-mini", "OpenAI", 2.5e-7, 2.0e-6),
    ("anthropic/claude-sonnet-4.5", "Amazon Bedrock", 3.0e-6, 1.5e-5),
    ("google/gemini-2.5-flash", "Google Vertex", 3.0e-7, 2.5e-6),
    ("deepseek/deepseek-chat-v3.1", "Together", 2.7e-7, 1.1e-6),
    ("meta-llama/llama-3.3-70b-instruct", "Groq", 1.3e-7, 4.0e-7),
]


def _s(key: str, value: str) -> dict[str, object]:
    return {"key": key, "value": {"stringValue": value}}


def _i(key: str, value: int) -> dict[str, object]:
    return {"key": key, "value": {"intValue": str(value)}}


def write_answer(path: Path, count: int, now: datetime, seed: int = 7, every_field: bool = False) -> int:
    """Stream a search answer of ``count`` generations to ``path``; returns its size in bytes.

    Only the attributes Tempo would return are written: those the query names (``service.name``) or
    select()s; ``every_field`` is the selection of the per-generation outputs (json, jsonl, csv)."""
    rng = random.Random(seed)
    end_ns = int(now.timestamp() * 1e9)
    with path.open("wb") as out:
        out.write(b'{"traces":[')
        for n in range(count):
            model, provider, pin, pout = MODELS[rng.randrange(len(MODELS))]
            trace_id = f"{rng.getrandbits(128):032x}"
            start = end_ns - rng.randrange(60, 23 * 3600) * 1_000_000_000 - rng.randrange(1_000_000_000)
            duration_ms = int(rng.lognormvariate(7.6, 0.7))
            failed = rng.random() < 0.04
            tin, tout = rng.randrange(200, 12_000), 0 if failed else rng.randrange(20, 2_000)
            attributes = [
                _s("service.name", "openrouter"),  # named by the query's filter: Tempo returns it
                _s("status", "error" if failed else "ok"),
                _s("gen_ai.request.model", model),
                _s("trace.metadata.openrouter.provider_name", provider),
                _i("gen_ai.usage.input_tokens", tin),
                _i("gen_ai.usage.output_tokens", tout),
                _i(
                    "gen_ai.usage.output_tokens.reasoning",
                    rng.randrange(0, tout + 1) if "gpt-5" in model else 0,
                ),
                _i("gen_ai.usage.input_tokens.cached", rng.randrange(0, tin // 2 + 1)),
                {
                    "key": "gen_ai.usage.total_cost",
                    "value": {"doubleValue": 0 if failed else tin * pin + tout * pout},
                },
            ]
            if every_field:
                attributes += [
                    _s("gen_ai.response.id", f"gen-{start // 1_000_000_000}-{trace_id[:20]}"),
                    _s("user.id", f"user-{rng.randrange(400)}"),
                    _s("session.id", f"sess-{rng.randrange(5000)}"),
                    _s("trace.metadata.openrouter.api_key_name", f"key-{rng.randrange(6)}"),
                ]
            if not failed:
                attributes.append(
                    _i("trace.metadata.openrouter.first_token_ms", rng.randrange(80, duration_ms))
                )
            rng.shuffle(attributes)
            span = {
                "spanID": trace_id[:16],
                "name": "LLM Generation",
                "startTimeUnixNano": str(start),
                "durationNanos": str(duration_ms * 1_000_000),
                "attributes": attributes,
            }
            spanset = {"spans": [span], "matched": 1}
            stats: dict[str, int] = {"spanCount": 1 + rng.randrange(1, 3)}
            if failed:
                stats["errorCount"] = 1
            trace = {
                "traceID": trace_id.lstrip("0"),
                "rootServiceName": "openrouter",
                "rootTraceName": "LLM Generation",
                "startTimeUnixNano": str(start),
                "durationMs": duration_ms,
                "spanSet": spanset,
                "spanSets": [spanset],
                "serviceStats": {"openrouter": stats},
            }
            if n:
                out.write(b",")
            out.write(orjson.dumps(trace))
        out.write(b'],"metrics":{"inspectedTraces":%d,"completedJobs":4,"totalJobs":4}}' % count)
    return path.stat().st_size


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(url: str, now: datetime, count: int, every_field: bool) -> tuple[float, float, int, int]:
    settings = load_settings({"tempo_url": url}, env={})
    query = prepare(None, fields=None if every_field else TABLE_FIELDS)
    window = Window(now - timedelta(hours=24), now)
    started, cpu = time.perf_counter(), time.process_time()
    with TempoClient(settings) as client:
        found = read_generations(client, query, window, limit=count * 2, now=now)
    report = build_report(found.rows, group_by="model", query=query.sent)
    sink = io.StringIO()
    console = Console(file=sink, width=240, no_color=True)
    for table in tables(report):
        console.print(table)
    return time.perf_counter() - started, time.process_time() - cpu, len(found.rows), len(sink.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--generations", type=int, default=50_000)
    parser.add_argument("--tracemalloc", action="store_true", help="also measure the Python heap (slower)")
    parser.add_argument(
        "--every-field",
        action="store_true",
        help="the selection of --output json/jsonl/csv (4 more attributes)",
    )
    args = parser.parse_args()
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        answer = Path(tmp) / "api" / "search"
        answer.parent.mkdir()
        size = write_answer(answer, args.generations, now, every_field=args.every_field)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", tmp],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            seconds, cpu, rows, rendered = run(url, now, args.generations, args.every_field)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            heap = None
            if args.tracemalloc:
                tracemalloc.start()
                run(url, now, args.generations, args.every_field)
                heap = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
        finally:
            server.terminate()
            server.wait()
    print(f"generations:        {rows:,} (answer {size / 1e6:.1f} MB, tables {rendered:,} characters)")
    print(f"seconds:            {seconds:.3f} wall, {cpu:.3f} CPU in orbcast's process  (target < 1)")
    print(
        f"peak RSS:           {peak / 1024:.0f} MB  (target < 200; {baseline / 1024:.0f} MB before the run)"
    )
    if heap is not None:
        print(f"peak Python heap:   {heap / 1e6:.0f} MB (tracemalloc, second run)")
    print(f"cpu count:          {os.cpu_count()}")


if __name__ == "__main__":
    main()
