"""The fetch pipeline: every source kind as one stream of :class:`GenerationRecord`, in constant memory.

- ``api``: ids enumerated slice by slice with ``/analytics/query`` (:mod:`orbcast.analytics`), each fetched
  with ``GET /generation`` by a pool of worker threads (``--detail full``), or records built from the
  analytics rows alone (``--detail summary``, no per-id calls).
- ``ids``: an id list fetched with ``GET /generation``.
- ``csv`` / ``jsonl``: read from the file, filtered to the window when one is given.

Ids are deduplicated across slices and files and ``FetchOptions.should_skip`` drops ids already done
(resume, ledger). In-flight work is bounded by queues of a few times the concurrency, so memory stays
flat: beyond one analytics slice, only ids are remembered, at 8 bytes each (:class:`IdSet`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from orbcast.analytics import count_generations, estimate_seconds, iter_slices, summary_record
from orbcast.config import Settings
from orbcast.errors import ConfigError, UsageError
from orbcast.fetchpool import Item, fetch_concurrently
from orbcast.openrouter import MANAGEMENT_KEYS_URL, OTHER_SOURCES, GenerationUnavailable, OpenRouterClient
from orbcast.records import GenerationRecord, MalformedRecord
from orbcast.sources import IdSet, Problems, SourceSpec, count_lines, iter_csv, iter_ids, iter_jsonl
from orbcast.timeparse import Window, to_unix_nano

DEFAULT_CONCURRENCY = 8  # polite: OpenRouter documents no limit for /generation; 8 in flight is modest
MAX_CONCURRENCY = 64
ASSUMED_REQUEST_SECONDS = 0.3  # for the up-front estimate only; the progress bar measures the real rate
FAILURES_KEPT = 100


@dataclass
class FetchOptions:
    source: SourceSpec
    window: Window | None  # None: no window filter (file sources)
    detail: str = "full"  # "full" | "summary"
    with_content: bool = False
    privacy: bool = False  # content is never fetched under privacy
    concurrency: int = DEFAULT_CONCURRENCY
    strict: bool = False
    should_skip: Callable[[str], bool] | None = None  # id already done elsewhere -> not fetched

    def check(self) -> None:
        if self.detail not in ("full", "summary"):
            raise UsageError(f"--detail {self.detail!r}: expected full or summary")
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise UsageError(f"--concurrency {self.concurrency}: expected 1 to {MAX_CONCURRENCY}")
        if self.detail == "summary" and self.source.kind != "api":
            raise UsageError(
                "--detail summary builds records from the analytics API: use it with --source api"
            )
        if self.detail == "summary" and self.with_content and not self.privacy:
            raise UsageError("--with-content fetches per generation: use it with --detail full")
        if self.source.kind == "api" and self.window is None:
            raise UsageError("the OpenRouter API source needs a window (--since or --from/--to)")


@dataclass
class FetchStats:
    """Counts of one run. ``found`` = distinct ids (or records) the source gave; each ends up ``fetched``,
    ``skipped`` (already done: resume / ledger) or ``failed``. ``malformed`` = unreadable input lines."""

    started: float = field(default_factory=time.time)
    expected: int | None = None  # generations the source holds, when known up front
    estimate_seconds: float | None = None
    found: int = 0
    duplicates: int = 0
    skipped: int = 0
    outside_window: int = 0
    fetched: int = 0
    retried: int = 0
    failed: int = 0
    malformed: int = 0
    slowdowns: int = 0
    analytics_requests: int = 0
    slices: int = 0
    splits: int = 0
    truncated_slices: int = 0
    cost_usd: float = 0.0
    first_ns: int | None = None
    last_ns: int | None = None
    finished: float | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def elapsed(self) -> float:
        return (self.finished or time.time()) - self.started

    @property
    def rate(self) -> float:
        return self.fetched / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def incomplete(self) -> bool:
        """Some records were skipped as malformed or failed: the run should end with exit 9."""
        return bool(self.failed or self.malformed)

    def count_retry(self) -> None:
        with self._lock:
            self.retried += 1

    def add(self, record: GenerationRecord) -> None:
        self.fetched += 1
        if record.total_cost is not None:
            self.cost_usd += record.total_cost
        if self.first_ns is None or record.start_ns < self.first_ns:
            self.first_ns = record.start_ns
        if self.last_ns is None or record.start_ns > self.last_ns:
            self.last_ns = record.start_ns


@dataclass
class FetchEvent:
    """What a progress callback receives. ``kind``: estimate | progress | failed | warning | info."""

    kind: str
    stats: FetchStats
    message: str = ""


ProgressFn = Callable[[FetchEvent], None]


def human_seconds(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{int(seconds // 3600)} h {round(seconds % 3600 / 60)} min"


class _Run:
    """Shared plumbing of one ``iter_records`` call: events, dedup/skip, the client."""

    def __init__(
        self, settings: Settings, options: FetchOptions, stats: FetchStats, progress: ProgressFn | None
    ) -> None:
        self.settings = settings
        self.options = options
        self.stats = stats
        self.progress = progress
        self.seen = IdSet()
        self.stop = threading.Event()

    def emit(self, kind: str, message: str = "") -> None:
        if kind == "warning":
            self.stats.warnings.append(message)
        if self.progress is not None:
            self.progress(FetchEvent(kind, self.stats, message))

    def admit(self, gen_id: str) -> bool:
        """Count a distinct id and say whether it still needs fetching."""
        if not self.seen.add(gen_id):
            self.stats.duplicates += 1
            return False
        self.stats.found += 1
        if self.options.should_skip is not None and self.options.should_skip(gen_id):
            self.stats.skipped += 1
            return False
        return True

    def client(self) -> OpenRouterClient:
        return OpenRouterClient.from_settings(
            self.settings,
            concurrency=self.options.concurrency,
            stop=self.stop,
            on_retry=lambda _what, _reason, _wait: self.stats.count_retry(),
            log=lambda message: self.emit("info", message),
        )

    @property
    def content_wanted(self) -> bool:
        return self.options.with_content and not (self.options.privacy or self.settings.privacy)


def iter_records(
    settings: Settings,
    options: FetchOptions,
    stats: FetchStats,
    problems: Problems,
    progress: ProgressFn | None = None,
) -> Iterator[GenerationRecord]:
    """Every record of ``options.source`` not skipped, as a stream. Raises orbcast errors (exit codes)
    for run-ending failures; per-record failures are counted in ``stats`` and reported as events."""
    options.check()
    problems.strict = problems.strict or options.strict
    run = _Run(settings, options, stats, progress)
    if options.with_content and not run.content_wanted:
        run.emit("warning", "--with-content ignored: content is never fetched in privacy mode")
    kind = options.source.kind
    try:
        if kind in ("csv", "jsonl"):
            if options.with_content:
                run.emit("warning", f"--with-content ignored: a {kind} file is read as it is")
            yield from _file_records(run, problems)
        elif kind == "ids":
            yield from _id_records(run, problems)
        else:
            yield from _api_records(run)
    finally:
        run.stop.set()
        stats.malformed = problems.count
        stats.finished = time.time()


# ----------------------------------------------------------------------------- file sources


def _file_records(run: _Run, problems: Problems) -> Iterator[GenerationRecord]:
    path = run.options.source.path or "-"
    lines = count_lines(path)
    if lines is not None:
        run.stats.expected = max(0, lines - (1 if run.options.source.kind == "csv" else 0))
    reader = iter_csv if run.options.source.kind == "csv" else iter_jsonl
    window = run.options.window
    low = to_unix_nano(window.start) if window else None
    high = to_unix_nano(window.end) if window else None
    stats, admit = run.stats, run.admit
    progress = run.progress is not None  # files are read at ~20,000 records a second: no call for nothing
    for record in reader(path, problems):
        if low is not None and high is not None and not low <= record.start_ns < high:
            stats.outside_window += 1
            continue
        if not admit(record.id):
            continue
        stats.add(record)
        if progress:
            run.emit("progress")
        yield record


# ----------------------------------------------------------------------------- network sources


def _id_records(run: _Run, problems: Problems) -> Iterator[GenerationRecord]:
    path = run.options.source.path or "-"
    items = ((gen_id, None, None) for gen_id in iter_ids(path, problems))
    with run.client() as client:
        if client.key is None:
            raise ConfigError(
                "fetching generations by id needs an OpenRouter key: --openrouter-key / OPENROUTER_API_KEY "
                "or --management-key / OPENROUTER_MANAGEMENT_KEY",
                hint="any API key of the account that made the generations works",
            )
        run.stats.expected = count_lines(path)
        if run.stats.expected:
            seconds = run.stats.expected * ASSUMED_REQUEST_SECONDS / run.options.concurrency
            run.stats.estimate_seconds = seconds
            run.emit(
                "estimate",
                f"up to {run.stats.expected:,} ids to fetch, one GET /generation each: roughly "
                f"{human_seconds(seconds)} at concurrency {run.options.concurrency}",
            )
        try:
            yield from _pool(run, client, items)
        finally:
            run.stats.slowdowns = client.limiter.slowdowns


def _api_records(run: _Run) -> Iterator[GenerationRecord]:
    window = run.options.window
    assert window is not None
    summary = run.options.detail == "summary"
    with run.client() as client:
        if client.key is None:
            raise ConfigError(
                "fetching history from the OpenRouter API needs a management key: "
                "--management-key / OPENROUTER_MANAGEMENT_KEY",
                hint=f"create one at {MANAGEMENT_KEYS_URL}, {OTHER_SOURCES}",
            )
        try:
            expected = count_generations(client, window)
            run.stats.expected = expected
            if expected is not None:
                _announce_estimate(run, window, expected)
            slices = iter_slices(
                client,
                window,
                summary=summary,
                expected=expected,
                warn=lambda message: _truncated(run, message),
                log=lambda message: run.emit("info", message),
                on_split=lambda: _bump_splits(run),
            )
            if summary:
                for piece in slices:
                    run.stats.slices += 1
                    for row in piece.rows:
                        try:
                            record = summary_record(row, piece)
                        except MalformedRecord as exc:
                            run.emit("info", f"analytics row skipped: {exc}")
                            continue
                        if run.admit(record.id):
                            run.stats.add(record)
                            run.emit("progress")
                            yield record
            else:
                yield from _pool(run, client, _slice_ids(run, slices))
        finally:
            run.stats.analytics_requests = client.analytics_requests
            run.stats.slowdowns = client.limiter.slowdowns


def _truncated(run: _Run, message: str) -> None:
    run.stats.truncated_slices += 1
    run.emit("warning", message)


def _bump_splits(run: _Run) -> None:
    run.stats.splits += 1


def _slice_ids(run: _Run, slices: Iterable[Any]) -> Iterator[Item]:
    for piece in slices:
        run.stats.slices += 1
        latest = min(piece.end.timestamp(), time.time())  # the latest the generation can have been made
        for row in piece.rows:
            gen_id = row.get("generation_id")
            if isinstance(gen_id, str) and gen_id.strip():
                label = row.get("api_key_id")
                yield gen_id.strip(), (str(label) if label not in (None, "") else None), latest


def _announce_estimate(run: _Run, window: Window, expected: int) -> None:
    concurrency = run.options.concurrency
    full = estimate_seconds(
        expected, window, summary=False, concurrency=concurrency, per_request=ASSUMED_REQUEST_SECONDS
    )
    summary = estimate_seconds(
        expected, window, summary=True, concurrency=concurrency, per_request=ASSUMED_REQUEST_SECONDS
    )
    if run.options.detail == "summary":
        run.stats.estimate_seconds = summary
        text = f"--detail summary reads them from analytics rows: roughly {human_seconds(summary)}"
    else:
        run.stats.estimate_seconds = full
        text = (
            f"--detail full fetches each one: roughly {human_seconds(full)} at concurrency {concurrency} "
            f"(--detail summary would take about {human_seconds(summary)}, with estimated fields)"
        )
    run.emit("estimate", f"about {expected:,} generations in {window.describe()}; {text}")


def _pool(run: _Run, client: OpenRouterClient, items: Iterator[Item]) -> Iterator[GenerationRecord]:
    """Records fetched by the worker pool, with stats and events kept here."""
    outcomes = fetch_concurrently(
        client,
        items,
        workers=run.options.concurrency,
        content=run.content_wanted,
        admit=run.admit,
        stop=run.stop,
    )
    for outcome in outcomes:
        if isinstance(outcome, GenerationUnavailable):
            run.stats.failed += 1
            if len(run.stats.failures) < FAILURES_KEPT:
                run.stats.failures.append((outcome.gen_id, outcome.reason))
            run.emit("failed", f"{outcome.gen_id}: {outcome.reason}")
        else:
            run.stats.add(outcome)
            run.emit("progress")
            yield outcome
