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
from collections.abc import Callable
from concurrent.futures import Future
from queue import Empty, SimpleQueue
from typing import Any

from orbcast.backfill_summary import Reservoir, Summary
from orbcast.backfill_units import Plan, Units
from orbcast.config import Settings
from orbcast.errors import OrbcastError, UsageError
from orbcast.fetching import FetchEvent, FetchStats
from orbcast.otlp import (
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
from orbcast.sources import Problems
from orbcast.state import DONE, FAILED, INTERRUPTED, Ledger, destination_key

VERIFY_SAMPLE = 20
STOP_GRACE_SECONDS = 10.0

__all__ = ["Backfill", "Plan", "Summary"]


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
        self.units = Units(settings, plan, self.summary, self.problems, on_event)
        self.stop = threading.Event()
        self.sample = Reservoir(VERIFY_SAMPLE)
        self._pending: dict[Future[Any], Batch] = {}
        self._done: SimpleQueue[Future[Any]] = SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self.converted = 0  # units read, converted and encoded so far

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    @property
    def fetch_stats(self) -> list[FetchStats]:
        return self.units.fetch_stats

    @property
    def ledger(self) -> Ledger | None:
        return self.units.ledger

    @property
    def destination(self) -> str | None:
        return self.units.destination

    @property
    def earlier(self) -> frozenset[str]:
        """Interrupted runs this one resumes."""
        return self.units.earlier

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
        destination = destination_key(str(endpoint), self.settings.otlp_user)
        self.summary.destination = destination
        self.units.open_ledger(Ledger(self.settings.state_dir), destination)

    # ------------------------------------------------------------------------- the run

    def run(self) -> Summary:
        """Do the run. Raises the error that ended it (after settling the ledger) or KeyboardInterrupt."""
        self.check()
        summary = self.summary
        if self.plan.skip_existing:
            self.units.find_existing()
        if not self.plan.dry_run or self.settings.otlp_endpoint:
            self._open_ledger()
        pool: SenderPool | None = None
        exporter: OtlpExporter | None = None
        status = FAILED
        try:
            if self.plan.pushing:
                assert self.ledger is not None and self.destination is not None
                start = self.ledger.start_run(self.destination, self.plan.command)
                summary.run_id, self.units.earlier = start.run_id, frozenset(start.earlier)
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
        summary = self.summary
        counted = 0
        for entry, fragment, cost, start_ns in self.units:
            counted += 1
            if start_ns is not None and not (summary.first_ns or 0) <= start_ns <= (summary.last_ns or 0):
                summary.note_span_time(start_ns)
            full = batcher.add(entry, fragment, cost)
            if full is not None:
                self._dispatch(full, pool, max_pending)
            if not self._done.empty():
                self._settle_ready()
            if tick is not None and counted & 63 == 0:
                self.converted = counted
                now = time.monotonic()
                if now - last_tick >= 0.2:
                    last_tick = now
                    tick(self)
        self.converted = counted
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
        """In the sender thread, right after a 2xx: ledger and summary together, so they always agree.

        A partly rejected batch is not recorded (which spans were refused is unknown: the next run sends
        it again); after the run closed nothing is recorded (the batch stays unacknowledged).
        """
        with self._lock:
            if self._closed:
                raise SendCancelled("the run has ended")
            summary = self.summary
            if result.rejected_spans:
                summary.rejected_spans += result.rejected_spans
                summary.rejected_generations += len(batch)
                message = f"batch {batch.seq} accepted only in part: {result.rejected_spans} spans rejected"
                summary.warnings.append(message + (f" ({result.message})" if result.message else ""))
                return
            assert self.ledger is not None and self.destination is not None and summary.run_id is not None
            self.ledger.commit(self.destination, summary.run_id, batch.entries)
            if result.message:
                summary.warnings.append(f"the endpoint said about batch {batch.seq}: {result.message}")
            self._account(batch, result.wire_bytes, result.raw_bytes)
            for entry in batch.entries:
                self.sample.add(entry.trace_id)

    def _settle(self, future: Future[Any], *, strict: bool) -> None:
        """Forget one finished request; ``strict`` re-raises the error that ended it."""
        with self._lock:
            batch = self._pending.pop(future, None)
        if batch is None or future.cancelled():
            return
        error = future.exception()
        if error is not None and strict and not isinstance(error, SendCancelled):
            raise error

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
        with self._lock:  # from here on a late acknowledgement is not recorded (and not counted)
            self._closed = True
        summary.status = {DONE: "done", INTERRUPTED: "interrupted"}.get(status, "failed")
        summary.finished = time.time()
        for stats in self.fetch_stats:  # the sources' own counts
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
        """Trace by ID (no start/end, so backfilled traces are found) for a sample of what was sent."""
        from orbcast.tempo import TempoClient

        summary = self.summary
        try:
            with TempoClient(self.settings) as tempo:
                for trace_id in self.sample.items:
                    found = tempo.trace_exists(trace_id)
                    summary.verify_checked += 1
                    summary.verify_found += found
        except OrbcastError as exc:
            summary.warnings.append(f"--verify could not ask Tempo: {exc.message}")
            return
        missing = summary.verify_checked - summary.verify_found
        if missing:
            summary.warnings.append(
                f"Tempo does not hold {missing} of the {summary.verify_checked} sampled traces; trace by ID "
                "normally finds pushed spans at once: check that --tempo-url and --tempo-user are the stack "
                "the OTLP endpoint writes to"
            )
