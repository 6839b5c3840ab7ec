"""``orbcast fetch``: OpenRouter generation history as JSONL, one record per line, resumable."""

from __future__ import annotations

import fcntl
import os
import sys
import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import typer
from rich.progress import Progress, TaskID

from orbcast.console import UI, explain_interrupt
from orbcast.errors import OrbcastError, PartialFailure, UsageError
from orbcast.fetching import (
    DEFAULT_CONCURRENCY,
    MAX_CONCURRENCY,
    FetchEvent,
    FetchOptions,
    FetchStats,
    human_seconds,
    iter_records,
)
from orbcast.options import GENERAL, Runtime, with_settings
from orbcast.sources import Problems, SourceSpec, read_done_ids
from orbcast.timeparse import Window, from_unix_nano, iso, resolve_window

HELP = """Fetch OpenRouter generation history and write it as JSONL (one /generation record per line).

By default generation ids come from the OpenRouter analytics API (needs a management key) and each is
fetched with GET /generation. Other sources: the dashboard's per-generation CSV export, a list of ids,
or an earlier orbcast JSONL. Writing to a file (-o) appends, and ids already in the file are not fetched
again, so an interrupted fetch resumes when re-run with the same -o.

Examples:

\b
  orbcast fetch --since 7d -o history.jsonl
  orbcast fetch --from 2026-11-01 --to 2026-11-08 --detail summary -o nov.jsonl
  orbcast fetch --source ids:ids.txt --with-content -o with-content.jsonl
  orbcast fetch --source csv:openrouter_activity_2026-11-20.csv > history.jsonl

Exit codes: 0 done; 2 bad flag or (with --strict) malformed input; 3 no key configured; 4 key refused,
not a management key, or insufficient credits; 5 wrong --openrouter-url; 6 OpenRouter unavailable after
retries (everything fetched so far is kept); 9 finished, but some generations failed or input lines
were malformed; 130 interrupted.
"""
FILTERS = "Selection"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FLUSH_BYTES = 256 * 1024
FLUSH_SECONDS = 0.5
PLAIN_PROGRESS_SECONDS = 10.0
FAILURES_SHOWN = 10


class Detail(StrEnum):
    full = "full"
    summary = "summary"


class JsonlSink:
    """Whole lines to stdout or appended to a file. File writes are ``O_APPEND`` and ``flock``-ed, so
    several orbcast processes can share one output file; a line cut short by a kill is closed with a
    newline before anything else is appended (it then reads as malformed and its id is fetched again)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.fd: int | None = None
        self.buffer: list[bytes] = []
        self.size = 0
        self.flushed = time.monotonic()
        if path is not None:
            try:
                self.fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            except OSError as exc:
                raise UsageError(f"cannot write {path}: {exc.strerror}") from None

    def write(self, line: bytes) -> None:
        self.buffer.append(line)
        self.size += len(line)
        if self.size >= FLUSH_BYTES or time.monotonic() - self.flushed >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self.flushed = time.monotonic()
        if not self.buffer:
            return
        data = b"".join(self.buffer)
        self.buffer, self.size = [], 0
        if self.fd is None:
            sys.stdout.write(data.decode("utf-8"))
            sys.stdout.flush()
            return
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            end = os.fstat(self.fd).st_size
            if end and os.pread(self.fd, 1, end - 1) != b"\n":
                data = b"\n" + data
            view = memoryview(data)
            while view:
                written = os.write(self.fd, view)
                view = view[written:]
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None


class FetchProgress:
    """Turns fetch events into a rich progress bar on a terminal, plain lines every few seconds otherwise."""

    def __init__(self, ui: UI, bar: Progress | None) -> None:
        self.ui = ui
        self.bar = bar
        self.task: TaskID | None = bar.add_task("fetching", total=None, detail="") if bar else None
        self.last = time.monotonic()
        self.failures_shown = 0

    def finish(self, stats: FetchStats) -> None:
        """Draw the final counts (updates are throttled, so the last one may be missing)."""
        if self.bar is not None and self.task is not None:
            self(FetchEvent("done", stats))  # not a "progress" event: drawn whatever the throttle

    def __call__(self, event: FetchEvent) -> None:
        stats = event.stats
        if event.kind == "estimate":
            long = (stats.estimate_seconds or 0) >= 60
            (self.ui.info if long else self.ui.detail)(event.message)
        elif event.kind == "warning":
            self.ui.warn(event.message)
        elif event.kind == "failed":
            if self.failures_shown < FAILURES_SHOWN:
                self.ui.warn(f"could not fetch {event.message}")
            else:
                self.ui.detail(f"could not fetch {event.message}")
            self.failures_shown += 1
        elif event.kind == "info":
            self.ui.detail(event.message)
        now = time.monotonic()
        if self.bar is not None and self.task is not None:
            if now - self.last >= 0.1 or event.kind != "progress":
                self.last = now
                self.bar.update(
                    self.task,
                    total=stats.expected,
                    completed=stats.fetched + stats.failed + stats.skipped,
                    detail=f"found {stats.found:,} · retried {stats.retried} · failed {stats.failed} "
                    f"· {stats.rate:,.0f}/s",
                )
        elif now - self.last >= PLAIN_PROGRESS_SECONDS:
            self.last = now
            total = f"/{stats.expected:,}" if stats.expected else ""
            self.ui.info(
                f"fetch: {stats.fetched:,}{total} fetched, {stats.skipped:,} skipped, {stats.failed} failed, "
                f"{stats.retried} retries, {stats.rate:,.0f}/s"
            )


def summarize(
    ui: UI,
    stats: FetchStats,
    problems: Problems,
    target: str,
    window: Window | None,
    source_kind: str = "api",
) -> None:
    rate = f"{stats.rate:,.0f}/s" if stats.fetched else "-"
    verb = "read" if source_kind in ("csv", "jsonl") else "fetched"
    ui.info(
        f"{verb} {stats.fetched:,} generations → {target} in {human_seconds(stats.elapsed)} ({rate}); "
        f"total cost ${stats.cost_usd:,.6f}"
    )
    if window is not None:
        ui.info(f"window: {window.describe()}")
    elif stats.first_ns is not None and stats.last_ns is not None:
        ui.info(f"records span {iso(from_unix_nano(stats.first_ns))} → {iso(from_unix_nano(stats.last_ns))}")
    parts = [
        f"{stats.skipped:,} already done",
        f"{stats.duplicates:,} duplicates",
        f"{stats.retried:,} {'retry' if stats.retried == 1 else 'retries'}",
        f"{stats.failed:,} failed",
        f"{stats.malformed:,} malformed",
    ]
    if stats.outside_window:
        parts.append(f"{stats.outside_window:,} outside the window")
    if stats.analytics_requests:
        parts.append(f"{stats.analytics_requests} analytics requests")
    if stats.slowdowns:
        parts.append(f"slowed down {stats.slowdowns}x on 429")
    ui.info("; ".join(parts))
    for path, line, reason in problems.items[:FAILURES_SHOWN]:
        ui.warn(f"{path}:{line}: {reason} (skipped)")
    if problems.count > FAILURES_SHOWN:
        ui.warn(f"… and {problems.count - FAILURES_SHOWN} more malformed lines")


def _window(spec: SourceSpec, since: str | None, from_: str | None, to: str | None, ui: UI) -> Window | None:
    if spec.kind == "api":
        return resolve_window(since, from_, to, default_since="24h")
    if not (since or from_ or to):
        return None
    if spec.kind == "ids":
        ui.warn("--since/--from/--to ignored: an id list names its generations")
        return None
    if since or from_:
        return resolve_window(since, from_, to, default_since="24h")
    return Window(EPOCH, resolve_window(None, EPOCH.isoformat(), to).end)  # only --to: everything before it


@with_settings
def fetch(
    rt: Runtime,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="WHEN",
            help="Window start: a duration back from now (90m, 36h, 7d) or a time [default: 24h]",
            rich_help_panel=FILTERS,
        ),
    ] = None,
    from_: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="TIME",
            help="Window start as a time (excludes --since)",
            rich_help_panel=FILTERS,
        ),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option("--to", metavar="TIME", help="Window end [default: now]", rich_help_panel=FILTERS),
    ] = None,
    source: Annotated[
        str,
        typer.Option(
            "--source",
            metavar="SOURCE",
            help="api (default: analytics + GET /generation), csv:EXPORT.csv, jsonl:FILE, "
            "ids:FILE (ids:- = stdin)",
            rich_help_panel=FILTERS,
        ),
    ] = "api",
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Append JSONL here; ids already in FILE are skipped (resume). '-' or absent: stdout",
            rich_help_panel=GENERAL,
        ),
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency",
            metavar="N",
            help=f"GET /generation requests in flight (1-{MAX_CONCURRENCY}); halved on 429",
            rich_help_panel=GENERAL,
        ),
    ] = DEFAULT_CONCURRENCY,
    detail: Annotated[
        Detail,
        typer.Option(
            "--detail",
            case_sensitive=False,
            help="full: GET /generation per id; summary: records from analytics rows only (fast, "
            "fields marked estimated)",
            rich_help_panel=GENERAL,
        ),
    ] = Detail.full,
    with_content: Annotated[
        bool,
        typer.Option(
            "--with-content",
            help="Also fetch prompt and completion (/generation/content)",
            rich_help_panel=GENERAL,
        ),
    ] = False,
    privacy: Annotated[
        bool,
        typer.Option(
            "--privacy",
            help="Privacy mode: never fetch content [env ORBCAST_PRIVACY]",
            rich_help_panel=GENERAL,
        ),
    ] = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="A malformed CSV row or JSONL line is fatal (exit 2)", rich_help_panel=GENERAL
        ),
    ] = False,
) -> None:
    ui = rt.ui
    spec = SourceSpec.parse(source)
    window = _window(spec, since, from_, to, ui)
    path = None if output in (None, "-") else output
    options = FetchOptions(
        source=spec,
        window=window,
        detail=detail.value,
        with_content=with_content,
        privacy=privacy or bool(rt.settings.privacy),
        concurrency=concurrency,
        strict=strict,
    )
    options.check()
    if path is not None:
        if spec.path not in (None, "-") and os.path.exists(path) and os.path.samefile(path, spec.path):
            raise UsageError(f"-o {path} is also the source: write to another file")
        done, _lines, bad = read_done_ids(path)
        if len(done):
            ui.info(f"resuming: {len(done):,} generations already in {path} are skipped")
            options.should_skip = done.__contains__
        if bad:
            ui.warn(f"{bad} unreadable line(s) in {path} ignored (cut short by an interrupted run?)")
    stats = FetchStats()
    problems = Problems(strict=strict)
    sink = JsonlSink(path)
    target = path or "stdout"
    ended: BaseException | None = None
    try:
        with ui.progress() as bar:
            progress = FetchProgress(ui, bar)
            try:
                for record in iter_records(rt.settings, options, stats, problems, progress):
                    sink.write(record.to_json_line())
            finally:
                progress.finish(stats)
    except (OrbcastError, KeyboardInterrupt) as exc:
        ended = exc
        raise
    finally:
        sink.close()
        if stats.found or stats.fetched or stats.failed or ended is None:
            summarize(ui, stats, problems, target, window, spec.kind)
        if isinstance(ended, KeyboardInterrupt):
            again = "re-run the same command to resume" if path else "use -o FILE to make a fetch resumable"
            ui.warn(f"interrupted: {stats.fetched:,} records written to {target}; {again}")
            explain_interrupt()
    if stats.incomplete:
        parts = []
        hints = []
        if stats.failed:
            parts.append(f"{stats.failed:,} generation(s) could not be fetched")
            hints.append(f"re-run with -o {path} to retry only those" if path else "re-run to retry them")
        if stats.malformed:
            parts.append(f"{stats.malformed:,} malformed input line(s) were skipped")
            hints.append("--strict makes malformed input fatal")
        raise PartialFailure(" and ".join(parts) + "; every other record was written", hint="; ".join(hints))


fetch.__doc__ = HELP


def register(app: typer.Typer) -> None:
    app.command("fetch", help=HELP)(fetch)
