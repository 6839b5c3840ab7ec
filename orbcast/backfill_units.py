"""The reading side of a backfill: sources -> units (ledger entry + encoded fragment), skipping what is done.

A unit is one generation (or, from an OTLP file, one trace of one resource): its ledger entry, its
pre-encoded fragment in the chosen encoding, its cost and start time. Skipped before it is even fetched:
what the ledger says this destination acknowledged (``--force`` turns that off) and, with
``--skip-existing``, what Tempo already holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from orbcast.backfill_summary import Summary
from orbcast.config import Settings
from orbcast.fetching import DEFAULT_CONCURRENCY as FETCH_CONCURRENCY
from orbcast.fetching import FetchEvent, FetchOptions, FetchStats, iter_records
from orbcast.otlp import DEFAULT_BATCH_BYTES, DEFAULT_BATCH_SPANS, DEFAULT_CONCURRENCY, JSON, PROTOBUF
from orbcast.otlpfile import iter_otlp_units
from orbcast.protobuf import EncodeError, resource_spans_fragment
from orbcast.sources import Problems, SourceSpec
from orbcast.spanjson import resource_spans_json_traced
from orbcast.spans import SpanOptions, resource_spans, trace_id_for
from orbcast.state import Entry, Ledger
from orbcast.timeparse import Window, to_unix_nano

EXISTING_QUERY = '{ resource.service.name = "openrouter" }'
EXISTING_LIMIT = 100_000

Unit = tuple[Entry, bytes, float | None, int | None]  # (ledger entry, fragment, cost, start ns)


@dataclass
class Plan:
    """Everything a backfill or replay run was asked to do."""

    command: str  # backfill | replay
    inputs: list[SourceSpec]  # kinds: api, csv, jsonl, ids, otlp
    window: Window | None
    span_options: SpanOptions = field(default_factory=SpanOptions)
    encoding: str = JSON
    gzip: bool = True
    batch_spans: int = DEFAULT_BATCH_SPANS
    batch_bytes: int = DEFAULT_BATCH_BYTES
    concurrency: int = DEFAULT_CONCURRENCY
    fetch_concurrency: int = FETCH_CONCURRENCY
    detail: str = "full"
    strict: bool = False
    dry_run: bool = False
    write_otlp: IO[bytes] | None = None
    skip_existing: bool = False
    force: bool = False
    verify: bool = False

    @property
    def pushing(self) -> bool:
        return not self.dry_run and self.write_otlp is None


class Units:
    """The units of a run's inputs, in order, skipping what is done. Counts go to ``summary``."""

    def __init__(
        self,
        settings: Settings,
        plan: Plan,
        summary: Summary,
        problems: Problems,
        on_event: Callable[[FetchEvent], None] | None = None,
    ) -> None:
        self.settings = settings
        self.plan = plan
        self.summary = summary
        self.problems = problems
        self.on_event = on_event
        self.fetch_stats: list[FetchStats] = []
        self.ledger: Ledger | None = None
        self.destination: str | None = None
        self.earlier: frozenset[str] = frozenset()  # interrupted runs this one resumes
        self.ledger_empty = False  # the destination had nothing acknowledged when the run started
        self.existing: set[str] | None = None  # trace IDs Tempo already holds (--skip-existing)
        # set once when iteration starts (ledger, existing, earlier are settled by then): the ledger to ask,
        # if it can say "done" at all this run, and whether any skipping can happen
        self._asking: tuple[Ledger, str] | None = None
        self.skipping = False

    def open_ledger(self, ledger: Ledger, destination: str) -> None:
        """Skip what ``ledger`` says ``destination`` acknowledged (unless --force)."""
        self.ledger, self.destination = ledger, destination
        # nothing acknowledged yet: no lookups needed (a concurrent process's sends would only be repeated)
        self.ledger_empty = not ledger.holds(destination)

    def find_existing(self) -> None:
        from orbcast.tempo import TempoClient

        window = self.plan.window
        assert window is not None
        # Up to now: Tempo finds spans pushed late (earlier backfills) only in windows reaching their push.
        end = max(window.end, datetime.now(UTC))
        with TempoClient(self.settings) as tempo:
            self.existing = tempo.search_trace_ids(EXISTING_QUERY, window.start, end, EXISTING_LIMIT)
            self.summary.existing_truncated = tempo.last_truncated
        if self.summary.existing_truncated:
            self.summary.warnings.append(
                "Tempo's answer about existing traces was incomplete: some generations already in Tempo may "
                "be sent again (harmless: they land on the same trace and span IDs)"
            )

    def _settle_skipping(self) -> None:
        """Decide once per run what :meth:`should_skip` consults (and whether to call it at all)."""
        ledger, destination = self.ledger, self.destination
        self._asking = None
        if ledger is not None and destination is not None and not (self.plan.force or self.ledger_empty):
            self._asking = (ledger, destination)
        self.skipping = self._asking is not None or self.existing is not None

    def should_skip(self, gen_id: str, trace_id: str | None = None) -> bool:
        """Already acknowledged by this destination (ledger) or already in Tempo (--skip-existing)."""
        if self._asking is not None:
            ledger, destination = self._asking
            run = ledger.sent_by(gen_id, destination)
            if run is not None:
                if run in self.earlier:
                    self.summary.resumed += 1
                else:
                    self.summary.already_sent += 1
                return True
        if self.existing is not None and (trace_id or trace_id_for(gen_id)) in self.existing:
            self.summary.skipped_existing += 1
            return True
        return False

    def _record_units(self, spec: SourceSpec) -> Iterator[Unit]:
        plan = self.plan
        stats = FetchStats()
        self.fetch_stats.append(stats)
        options = FetchOptions(
            source=spec,
            window=plan.window,
            detail=plan.detail,
            with_content=plan.span_options.include_content,
            privacy=plan.span_options.privacy,
            concurrency=plan.fetch_concurrency,
            strict=plan.strict,
            should_skip=self.should_skip if self.skipping else None,
        )
        span_options = plan.span_options
        protobuf = plan.encoding == PROTOBUF
        want_sample = plan.dry_run and self.summary.sample is None
        # files need no live events (their warnings reach the summary): one callback a record less
        events = self.on_event if spec.kind in ("api", "ids") else None
        for record in iter_records(self.settings, options, stats, self.problems, events):
            if want_sample:
                self.summary.sample = resource_spans(record, span_options)
                want_sample = False
            if protobuf:
                fragment = resource_spans_fragment(resource_spans(record, span_options))
                trace_id = trace_id_for(record.id)
            else:
                fragment, trace_id = resource_spans_json_traced(record, span_options)
            entry = Entry(record.id, trace_id, 1 + len(record.provider_responses or ()))
            yield entry, fragment, record.total_cost, record.start_ns

    def _otlp_units(self, spec: SourceSpec) -> Iterator[Unit]:
        assert spec.path is not None
        window = self.plan.window
        low = to_unix_nano(window.start) if window else None
        high = to_unix_nano(window.end) if window else None
        protobuf = self.plan.encoding == PROTOBUF
        skipping = self.skipping
        for unit in iter_otlp_units(spec.path, self.problems):
            self.summary.read += 1
            if (
                low is not None
                and high is not None
                and (unit.start_ns is None or not low <= unit.start_ns < high)
            ):
                self.summary.outside_window += 1
                continue
            if skipping and self.should_skip(unit.key, unit.trace_id):
                continue
            if self.plan.dry_run and self.summary.sample is None:
                self.summary.sample = unit.resource_spans
            try:
                fragment = (
                    resource_spans_fragment(unit.resource_spans)
                    if protobuf
                    else _json_fragment(unit.resource_spans)
                )
            except (EncodeError, TypeError, ValueError) as exc:
                self.problems.report(spec.path, 0, f"trace {unit.trace_id}: {exc}")
                continue
            yield Entry(unit.key, unit.trace_id, unit.spans), fragment, unit.cost, unit.start_ns

    def __iter__(self) -> Iterator[Unit]:
        self._settle_skipping()
        for spec in self.plan.inputs:
            if spec.kind == "otlp":
                yield from self._otlp_units(spec)
            else:
                yield from self._record_units(spec)


def _json_fragment(rs: dict[str, Any]) -> bytes:
    return orjson.dumps(rs)
