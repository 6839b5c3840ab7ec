"""What a backfill or replay run shows while it runs and at the end (progress, summary, sample, hints)."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import IO, Any

import orjson
from rich.progress import Progress, TaskID

from orbcast.backfill_summary import Summary, find_guidance, sample_lines, summary_json, summary_table
from orbcast.backfilling import Backfill
from orbcast.console import UI
from orbcast.errors import UsageError
from orbcast.fetching import FetchEvent
from orbcast.options import Output

PLAIN_PROGRESS_SECONDS = 10.0
PROBLEMS_SHOWN = 10


class BackfillProgress:
    """Fetch events and pipeline ticks as a rich progress bar on a terminal, plain lines otherwise."""

    def __init__(self, ui: UI, bar: Progress | None, verb: str) -> None:
        self.ui = ui
        self.bar = bar
        self.verb = verb
        self.last = time.monotonic()
        self.tasks: dict[str, TaskID] = {}
        self.shown: set[str] = set()  # warnings already printed while running
        self.failures = 0
        if bar is not None:
            self.tasks["read"] = bar.add_task("read", total=None, detail="")
            self.tasks["sent"] = bar.add_task(
                "acknowledged" if verb == "sent" else verb, total=None, detail=""
            )

    def event(self, event: FetchEvent) -> None:
        if event.kind == "estimate":
            self.ui.info(event.message)
        elif event.kind == "warning":
            self.shown.add(event.message)
            self.ui.warn(event.message)
        elif event.kind == "failed":
            self.failures += 1
            show = self.ui.warn if self.failures <= PROBLEMS_SHOWN else self.ui.detail
            show(f"could not fetch {event.message}")
        elif event.kind == "info":
            self.ui.detail(event.message)

    def retry(self, message: str) -> None:
        self.ui.detail(f"retrying {message}")

    def tick(self, run: Backfill) -> None:
        summary = run.summary
        stats = run.fetch_stats[-1] if run.fetch_stats else None
        # while running, summary.read counts OTLP units only; at the end it holds everything
        read = summary.read if summary.finished else summary.read + sum(s.found for s in run.fetch_stats)
        expected = stats.expected if stats is not None else None
        skipped = summary.already_sent + summary.resumed + summary.skipped_existing
        if self.bar is not None:
            self.bar.update(
                self.tasks["read"],
                completed=read,
                total=expected,
                detail=f"converted {run.converted:,} · skipped {skipped:,}",
            )
            self.bar.update(
                self.tasks["sent"],
                completed=summary.generations,
                total=(expected - skipped) if expected else None,
                detail=f"{summary.requests:,} requests ({run.in_flight} in flight) · {summary.spans:,} spans "
                f"· {summary.retries} retried · {summary.rate:,.0f}/s",
            )
            return
        now = time.monotonic()
        if now - self.last >= PLAIN_PROGRESS_SECONDS:
            self.last = now
            total = f"/{expected:,}" if expected else ""
            self.ui.info(
                f"{summary.command}: read {read:,}{total}, converted {run.converted:,}, "
                f"{self.verb} {summary.generations:,} ({summary.spans:,} spans, {summary.requests:,} "
                f"requests), skipped {skipped:,}, {summary.retries} retried, {summary.rate:,.0f}/s"
            )


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops a run like Ctrl-C does (clean stop, exit 130)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def otlp_writer(path: str | None) -> Iterator[IO[bytes] | None]:
    if path is None:
        yield None
        return
    if path == "-":
        yield sys.stdout.buffer
        sys.stdout.flush()
        return
    try:
        fh = open(path, "wb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    with fh:
        yield fh


def report(
    ui: UI,
    summary: Summary,
    output: Output,
    *,
    to_stderr: bool,
    problems: list[Any],
    shown: set[str] | None = None,
) -> None:
    """Problems and warnings (stderr), then the summary: a table (stdout) or ``--output json``."""
    for path, line, reason in problems[:PROBLEMS_SHOWN]:
        ui.warn(f"{path}:{line}: {reason} (skipped)")
    if len(problems) > PROBLEMS_SHOWN:
        ui.warn(f"… and {summary.malformed - PROBLEMS_SHOWN} more malformed lines")
    fresh = [w for w in summary.warnings if w not in (shown or set())]
    for warning in fresh[:PROBLEMS_SHOWN]:
        ui.warn(warning)
    if len(fresh) > PROBLEMS_SHOWN:
        ui.warn(f"… and {len(fresh) - PROBLEMS_SHOWN} more warnings (--output json lists them all)")
    if output == Output.json:
        ui.data(orjson.dumps(summary_json(summary), option=orjson.OPT_INDENT_2).decode())
        return
    if to_stderr:
        ui.rich(summary_table(summary))
    else:
        ui.table(summary_table(summary))
    if summary.mode == "dry-run" and summary.sample is not None:
        ui.info("a sample of what would be sent (the first generation; --output json has it as OTLP JSON):")
        text = "\n".join(sample_lines(summary.sample))
        if to_stderr:
            ui.info(text)
        else:
            ui.data(text)
    if summary.resumed:
        ui.info(
            f"resumed: {summary.resumed:,} generations acknowledged by an interrupted earlier run "
            "were not sent again"
        )
    guidance = find_guidance(summary)
    if guidance:
        ui.info("finding the data in Tempo:")
        for note in guidance["notes"]:
            ui.info(f"  - {note}")
