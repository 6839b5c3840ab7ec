"""The backfill pipeline: source -> records -> spans -> batches -> exporter -> ledger.

One thread reads and encodes (records from :func:`orbcast.fetching.iter_records`, or OTLP files), sender
threads compress and POST, and this thread commits each acknowledged batch to the ledger. Nothing is
recorded before the endpoint acknowledged it, so a run stopped at any moment (Ctrl-C, SIGTERM, a kill)
leaves a ledger that is exact or short, never ahead; the next run sends what is missing, and every
re-send lands on the same trace and span IDs because they derive from the generation id.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from queue import Empty, SimpleQueue
from typing import IO, Any

import orjson

from orbcast.config import Settings
from orbcast.errors import UsageError
from orbcast.fetching import DEFAULT_CONCURRENCY as FETCH_CONCURRENCY
from orbcast.fetching import FetchEvent, FetchOptions, FetchStats, iter_records
from orbcast.otlp import (
    DEFAULT_BATCH_BYTES,
    DEFAULT_BATCH_SPANS,
    DEFAULT_CONCURRENCY,
    JSON,
    PROTOBUF,
    Batch,
    Batcher,
    ExporterConfig,
    ExportResult,
    OtlpExporter,
    SendCancelled,
    SenderPool,
    encode_body,
    gzip_bytes,
)
from orbcast.otlpfile import iter_otlp_units
from orbcast.protobuf import EncodeError, resource_spans_fragment
from orbcast.sources import Problems, SourceSpec
from orbcast.spanjson import resource_spans_json
from orbcast.spans import SpanOptions, resource_spans, trace_id_for
from orbcast.state import DONE, FAILED, INTERRUPTED, Entry, Ledger, destination_key
from orbcast.backfill_summary import Reservoir, Summary
from orbcast.timeparse import Window, to_unix_nano

EXISTING_QUERY = '{ resource.service.name = "openrouter" }'
EXISTING_LIMIT = 100_000
VERIFY_SAMPLE = 20
STOP_GRACE_SECONDS = 10.0


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
    with_content: bool = False
    strict: bool = False
    dry_run: bool = False
    write_otlp: IO[bytes] | None = None
    skip_existing: bool = False
    force: bool = False
    verify: bool = False

    @property
    def pushing(self) -> bool:
        return not self.dry_run and self.write_otlp is None


Unit = tuple[Entry, bytes, float | None, int | None]  # (ledger entry, fragment, cost, start ns)


class Backfill:
    """One run. ``on_event`` gets fetch events; ``on_retry`` retry messages; ``tick`` is called often."""

    def __init__(
        self,
        settings: Settings,
        plan: Plan,
        *,
        on_event: Callable[[FetchEvent], None] | None = None,
        on_retry: Callable[[str], None] | None = None,
        tick: Callable[[Backfill], None] | None = None,
    ) -> None:
        self.settings = settings
        self.plan = plan
        self.on_event = on_event
        self.on_retry = on_retry
        self.tick = tick
        self.summary = Summary(command=plan.command, window=plan.window, encoding=plan.encoding)
        self.summary.mode = "dry-run" if plan.dry_run else "write-otlp" if plan.write_otlp else "push"
        self.problems = Problems(strict=plan.strict)
        self.fetch_stats: list[FetchStats] = []
        self.stop = threading.Event()
        self.ledger: Ledger | None = None
        self.destination: str | None = None
        self.earlier: frozenset[str] = frozenset()
        self.existing: set[str] | None = None
        self.sample = Reservoir(VERIFY_SAMPLE)
        self._pending: dict[Future[Any], Batch] = {}
        self._done: SimpleQueue[Future[Any]] = SimpleQueue()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------- setup

    def check(self) -> None:
        """Fail before any work when the configuration cannot do what was asked."""
        plan = self.plan
        if plan.pushing:
            self.settings.require("otlp_endpoint", why=f"{plan.command} (pushing spans)")
        if plan.skip_existing or plan.verify:
            flag = "--skip-existing" if plan.skip_existing else "--verify"
            self.settings.require("tempo_url", why=f"{flag} (asking Tempo)")
        if plan.skip_existing and plan.window is None:
            raise UsageError("--skip-existing asks Tempo about a time window: give --since or --from/--to")
        if plan.write_otlp is not None and plan.encoding == PROTOBUF:
            raise UsageError("--write-otlp writes OTLP/HTTP JSON: leave out --encoding protobuf")

    def _open_ledger(self) -> None:
        endpoint = self.settings.otlp_endpoint
        if not endpoint or self.plan.write_otlp is not None:
            return
        self.destination = destination_key(str(endpoint), self.settings.otlp_user)
        self.summary.destination = self.destination
        self.ledger = Ledger(self.settings.state_dir)

    def _find_existing(self) -> None:
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

    # ------------------------------------------------------------------------- skipping

    def _should_skip(self, gen_id: str, trace_id: str | None = None) -> bool:
        if self.ledger is not None and self.destination is not None and not self.plan.force:
            run = self.ledger.sent_by(gen_id, self.destination)
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

    # ------------------------------------------------------------------------- units

    def _record_units(self, spec: SourceSpec) -> Iterator[Unit]:
        plan = self.plan
        stats = FetchStats()
        self.fetch_stats.append(stats)
        options = FetchOptions(
            source=spec,
            window=plan.window,
            detail=plan.detail,
            with_content=plan.with_content,
            privacy=plan.span_options.privacy or bool(self.settings.privacy),
            concurrency=plan.fetch_concurrency,
            strict=plan.strict,
            should_skip=self._should_skip,
        )
        span_options = plan.span_options
        protobuf = plan.encoding == PROTOBUF
        want_sample = plan.dry_run and self.summary.sample is None
        for record in iter_records(self.settings, options, stats, self.problems, self.on_event):
            if want_sample:
                self.summary.sample = resource_spans(record, span_options)
                want_sample = False
            if protobuf:
                fragment = resource_spans_fragment(resource_spans(record, span_options))
            else:
                fragment = resource_spans_json(record, span_options)
            entry = Entry(record.id, trace_id_for(record.id), 1 + len(record.provider_responses or ()))
            yield entry, fragment, record.total_cost, record.start_ns

    def _otlp_units(self, spec: SourceSpec) -> Iterator[Unit]:
        assert spec.path is not None
        window = self.plan.window
        low = to_unix_nano(window.start) if window else None
        high = to_unix_nano(window.end) if window else None
        protobuf = self.plan.encoding == PROTOBUF
        for unit in iter_otlp_units(spec.path, self.problems):
            self.summary.read += 1
            if (
                low is not None
                and high is not None
                and (unit.start_ns is None or not low <= unit.start_ns < high)
            ):
                self.summary.outside_window += 1
                continue
            if self._should_skip(unit.key, unit.trace_id):
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

    def _units(self) -> Iterator[Unit]:
        for spec in self.plan.inputs:
            if spec.kind == "otlp":
                yield from self._otlp_units(spec)
            else:
                yield from self._record_units(spec)

    # ------------------------------------------------------------------------- the run

    def run(self) -> Summary:
        """Do the run. Raises the error that ended it (after settling the ledger) or KeyboardInterrupt."""
        self.check()
        summary = self.summary
        if self.plan.skip_existing:
            self._find_existing()
        if not self.plan.dry_run or self.settings.otlp_endpoint:
            self._open_ledger()
        pool: SenderPool | None = None
        exporter: OtlpExporter | None = None
        status = FAILED
        try:
            if self.plan.pushing:
                assert self.ledger is not None and self.destination is not None
                start = self.ledger.start_run(self.destination, self.plan.command)
                summary.run_id, self.earlier = start.run_id, frozenset(start.earlier)
                summary.resumed_runs = list(start.earlier)
                exporter = OtlpExporter(
                    ExporterConfig(
                        endpoint=str(self.settings.otlp_endpoint),
                        headers=self.settings.otlp_auth_headers(),
                        encoding=self.plan.encoding,
                        gzip=self.plan.gzip,
                    ),
                    on_retry=self._retried,
                    should_stop=self.stop.is_set,
                    concurrency=self.plan.concurrency,
                )
                pool = SenderPool(exporter, self.plan.concurrency, after_send=self._acknowledged)
            try:
                self._pump(pool)
                status = DONE
            except KeyboardInterrupt:
                status = INTERRUPTED
                self._wind_down(grace=STOP_GRACE_SECONDS)
                raise
            except BaseException:
                self._wind_down(grace=STOP_GRACE_SECONDS)
                raise
        finally:
            self._finish(status, pool, exporter)
        if self.plan.verify and summary.generations:
            self._verify()
        return summary

    def _pump(self, pool: SenderPool | None) -> None:
        plan = self.plan
        batcher = Batcher(plan.batch_spans, plan.batch_bytes)
        max_pending = plan.concurrency * 2
        tick, last_tick = self.tick, 0.0
        for counted, (entry, fragment, cost, start_ns) in enumerate(self._units(), 1):
            self.summary.note_span_time(start_ns)
            full = batcher.add(entry, fragment, cost)
            if full is not None:
                self._dispatch(full, pool, max_pending)
            if not self._done.empty():
                self._settle_ready()
            if tick is not None and counted & 63 == 0:
                now = time.monotonic()
                if now - last_tick >= 0.2:
                    last_tick = now
                    tick(self)
        last = batcher.flush()
        if last is not None:
            self._dispatch(last, pool, max_pending)
        while self._pending:
            self._settle(self._next_done(), strict=True)
            if tick is not None:
                tick(self)

    def _dispatch(self, batch: Batch, pool: SenderPool | None, max_pending: int) -> None:
        summary = self.summary
        if pool is None:  # dry run or --write-otlp: the batch is "sent" here
            body = encode_body(batch.fragments, self.plan.encoding)
            if self.plan.write_otlp is not None:
                self.plan.write_otlp.write(body + b"\n")
                wire = len(body)
            else:
                wire = len(gzip_bytes(body)) if self.plan.gzip else len(body)
            self._account(batch, wire, len(body))
            summary.requests += 1
            return
        while len(self._pending) >= max_pending:
            self._settle(self._next_done(), strict=True)
        future = pool.submit(batch)
        with self._lock:
            self._pending[future] = batch
        future.add_done_callback(self._done.put)
        summary.requests += 1

    def _next_done(self) -> Future[Any]:
        while True:  # short waits, so Ctrl-C is seen at once
            try:
                return self._done.get(timeout=0.25)
            except Empty:
                continue

    def _settle_ready(self) -> None:
        while True:
            try:
                future = self._done.get_nowait()
            except Empty:
                return
            self._settle(future, strict=True)

    def _acknowledged(self, batch: Batch, result: ExportResult) -> None:
        """In the sender thread, right after a 2xx: record the batch unless spans were rejected."""
        if result.rejected_spans:
            return  # which spans were refused is unknown: the whole batch is sent again next run
        assert self.ledger is not None and self.destination is not None and self.summary.run_id is not None
        self.ledger.commit(self.destination, self.summary.run_id, batch.entries)

    def _settle(self, future: Future[Any], *, strict: bool) -> None:
        """Count one finished request; ``strict`` re-raises the error that ended it."""
        with self._lock:
            batch = self._pending.pop(future, None)
        if batch is None or future.cancelled():
            return
        error = future.exception()
        if error is not None:
            if isinstance(error, SendCancelled) or not strict:
                return
            raise error
        result: ExportResult = future.result()
        summary = self.summary
        if result.rejected_spans:
            summary.rejected_spans += result.rejected_spans
            summary.rejected_generations += len(batch)
            message = f"batch {batch.seq} accepted only in part: {result.rejected_spans} spans rejected"
            summary.warnings.append(message + (f" ({result.message})" if result.message else ""))
            return
        if result.message:
            summary.warnings.append(f"the endpoint said about batch {batch.seq}: {result.message}")
        self._account(batch, result.wire_bytes, result.raw_bytes)
        for entry in batch.entries:
            self.sample.add(entry.trace_id)

    def _account(self, batch: Batch, wire: int, raw: int) -> None:
        summary = self.summary
        summary.generations += len(batch)
        summary.spans += batch.spans
        summary.bytes_sent += wire
        summary.bytes_raw += raw
        summary.cost_usd += batch.cost

    def _retried(self, message: str) -> None:
        with self._lock:
            self.summary.retries += 1
        if self.on_retry is not None:
            self.on_retry(message)

    def _wind_down(self, grace: float) -> None:
        """Stop sending: queued batches are dropped, in-flight ones get ``grace`` seconds to be acknowledged.

        A second Ctrl-C gives up waiting at once. Whatever is not acknowledged stays out of the ledger.
        """
        self.stop.set()
        with self._lock:
            futures = list(self._pending)
        for future in futures:
            future.cancel()
        deadline = time.monotonic() + grace
        try:
            while self._pending and time.monotonic() < deadline:
                try:
                    future = self._done.get(timeout=0.2)
                except Empty:
                    continue
                self._settle(future, strict=False)
        except KeyboardInterrupt:
            pass

    def _finish(self, status: str, pool: SenderPool | None, exporter: OtlpExporter | None) -> None:
        summary = self.summary
        summary.status = {DONE: "done", INTERRUPTED: "interrupted"}.get(status, "failed")
        summary.finished = time.time()
        for stats in self.fetch_stats:
            summary.read += stats.found
            summary.duplicates += stats.duplicates
            summary.outside_window += stats.outside_window
            summary.failed += stats.failed
            summary.retries += stats.retried
            summary.warnings.extend(stats.warnings)
        summary.malformed = self.problems.count
        handled = summary.generations + summary.rejected_generations + summary.already_sent
        handled += summary.resumed + summary.skipped_existing
        summary.unsent = max(0, summary.read - handled - summary.failed)
        summary.sample_trace_ids = list(self.sample.items)
        if pool is not None:
            pool.shutdown(wait=0.0 if status != DONE else 1.0)
        if exporter is not None:
            exporter.close()
        if self.ledger is not None:
            if summary.run_id is not None:
                self.ledger.finish_run(summary.run_id, status, self.earlier)
            self.ledger.close()

    def _verify(self) -> None:
        from orbcast.tempo import TempoClient

        with TempoClient(self.settings) as tempo:
            for trace_id in self.sample.items:
                self.summary.verify_checked += 1
                if tempo.trace_exists(trace_id):
                    self.summary.verify_found += 1


def _json_fragment(rs: dict[str, Any]) -> bytes:
    return orjson.dumps(rs)
