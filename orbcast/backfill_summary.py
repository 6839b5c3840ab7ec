"""What a backfill or replay run reports: its figures, and how to find the pushed data in Tempo.

Finding backfilled spans follows what a real Tempo does (``../shared/fixtures/tempo/README.md``):
trace by ID finds them at once; a search finds spans that were more than ~2 minutes old when pushed
(Tempo's default ``ingestion_time_range_slack``) only once their block reached the backend, about 15
minutes after the push, and only with a window that reaches the push time; TraceQL metrics do not count
them at all on default settings.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from rich.table import Table

from orbcast.timeparse import Window, from_unix_nano, iso

INGESTION_SLACK_S = 120  # Tempo default ingestion_time_range_slack
BACKEND_FLUSH_S = 15 * 60  # query_backend_after: the search window older than this reads backend blocks


@dataclass
class Summary:
    """The figures of one run."""

    command: str
    status: str = "running"  # done | interrupted | failed
    mode: str = "push"  # push | dry-run | write-otlp
    destination: str | None = None
    run_id: str | None = None
    window: Window | None = None
    encoding: str = "json"
    read: int = 0  # generations (or traces) the sources gave, before skipping
    generations: int = 0  # acknowledged (dry run / --write-otlp: prepared)
    spans: int = 0
    requests: int = 0
    retries: int = 0
    bytes_sent: int = 0
    bytes_raw: int = 0
    cost_usd: float = 0.0
    already_sent: int = 0
    resumed: int = 0
    resumed_runs: list[str] = field(default_factory=list)
    skipped_existing: int = 0
    existing_truncated: bool = False
    duplicates: int = 0
    outside_window: int = 0
    rejected_spans: int = 0
    rejected_generations: int = 0
    failed: int = 0  # could not be fetched
    malformed: int = 0
    unsent: int = 0  # read but not acknowledged when the run stopped
    first_ns: int | None = None
    last_ns: int | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    verify_checked: int = 0
    verify_found: int = 0
    sample_trace_ids: list[str] = field(default_factory=list)
    sample: dict[str, Any] | None = None  # dry run: one resource span as it would be sent
    warnings: list[str] = field(default_factory=list)

    @property
    def elapsed(self) -> float:
        return (self.finished or time.time()) - self.started

    @property
    def rate(self) -> float:
        return self.generations / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def incomplete(self) -> bool:
        """Something was rejected, failed or unreadable: the run ends with exit 9."""
        return bool(self.rejected_spans or self.failed or self.malformed)

    def note_span_time(self, start_ns: int | None) -> None:
        if start_ns is None:
            return
        if self.first_ns is None or start_ns < self.first_ns:
            self.first_ns = start_ns
        if self.last_ns is None or start_ns > self.last_ns:
            self.last_ns = start_ns


class Reservoir:
    """A uniform sample of at most ``size`` items from a stream (for --verify), in constant memory."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.seen = 0
        self.items: list[str] = []

    def add(self, item: str) -> None:
        self.seen += 1
        if len(self.items) < self.size:
            self.items.append(item)
            return
        slot = random.randrange(self.seen)
        if slot < self.size:
            self.items[slot] = item


# ----------------------------------------------------------------------------- finding the data


def _hhmm(epoch: float) -> str:
    return time.strftime("%H:%M UTC", time.gmtime(epoch))


def find_guidance(summary: Summary) -> dict[str, Any] | None:
    """How and when the pushed spans can be found, as Tempo on default settings behaves."""
    if summary.mode != "push" or not summary.generations or summary.first_ns is None:
        return None
    pushed = summary.finished or time.time()
    first = from_unix_nano(summary.first_ns)
    last = from_unix_nano(summary.last_ns or summary.first_ns)
    # whole minutes around the data: from its first start (floored) to the window end or just past its last
    start = (min(summary.window.start, first) if summary.window else first).replace(second=0, microsecond=0)
    end = summary.window.end if summary.window else last + timedelta(minutes=1)
    end = end.replace(second=0, microsecond=0) + (
        timedelta(minutes=1) if end.second or end.microsecond else timedelta()
    )
    query = f"orbcast query --from {iso(start)[:16]}Z --to {iso(end)[:16]}Z"
    old = summary.first_ns / 1e9 < summary.started - INGESTION_SLACK_S
    searchable_at = pushed + (BACKEND_FLUSH_S if old else 60)
    trace_id = summary.sample_trace_ids[0] if summary.sample_trace_ids else None
    notes = []
    if trace_id:
        notes.append(
            f"By trace ID at once: orbcast trace {trace_id}  (trace IDs = sha256(generation id)[:32])"
        )
    if old:
        notes.append(
            f"By search from about {_hhmm(searchable_at)} (~15 min after the push, once Tempo has flushed "
            f"the spans to its backend), and only with a window that reaches the push time "
            f"({_hhmm(pushed)}): {query}  (orbcast query searches up to now, so that window works)"
        )
        notes.append(
            "TraceQL metrics (orbcast query --approx, Grafana's span metrics) do not count spans that were "
            "more than 2 minutes old when pushed, on default Tempo settings (ingestion_time_range_slack 2m)"
        )
    else:
        notes.append(f"By search within a minute: {query}")
    return {
        "trace_id_command": f"orbcast trace {trace_id}" if trace_id else None,
        "query_command": query,
        "searchable_from": iso(from_unix_nano(int(searchable_at * 1e9))),
        "pushed_at": iso(from_unix_nano(int(pushed * 1e9))),
        "backfilled": old,
        "notes": notes,
    }


# ----------------------------------------------------------------------------- rendering


def summary_json(summary: Summary) -> dict[str, Any]:
    """The ``--output json`` document (a stable contract: README "backfill and replay")."""
    window = summary.window
    data = None
    if summary.first_ns is not None:
        data = {
            "from": iso(from_unix_nano(summary.first_ns)),
            "to": iso(from_unix_nano(summary.last_ns or 0)),
        }
    out: dict[str, Any] = {
        "command": summary.command,
        "status": summary.status,
        "mode": summary.mode,
        "destination": summary.destination,
        "run_id": summary.run_id,
        "window": {"from": iso(window.start), "to": iso(window.end)} if window else None,
        "data_window": data,
        "encoding": summary.encoding,
        "generations_read": summary.read,
        "generations_sent": summary.generations,
        "spans_sent": summary.spans,
        "requests": summary.requests,
        "retries": summary.retries,
        "bytes_sent": summary.bytes_sent,
        "bytes_uncompressed": summary.bytes_raw,
        "skipped_already_sent": summary.already_sent,
        "resumed": summary.resumed,
        "resumed_runs": summary.resumed_runs,
        "skipped_existing": summary.skipped_existing,
        "duplicates": summary.duplicates,
        "outside_window": summary.outside_window,
        "rejected_spans": summary.rejected_spans,
        "rejected_generations": summary.rejected_generations,
        "failed": summary.failed,
        "malformed": summary.malformed,
        "not_sent": summary.unsent,
        "cost_usd": round(summary.cost_usd, 10),
        "seconds": round(summary.elapsed, 3),
        "generations_per_second": round(summary.rate, 1),
        "verify": (
            {"checked": summary.verify_checked, "found": summary.verify_found}
            if summary.verify_checked
            else None
        ),
        "sample_trace_ids": summary.sample_trace_ids,
        "find": find_guidance(summary),
        "warnings": summary.warnings,
    }
    if summary.mode == "dry-run":
        out["sample"] = summary.sample
    return out


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def summary_table(summary: Summary) -> Table:
    verb = {"push": "sent", "dry-run": "would send", "write-otlp": "written"}[summary.mode]
    title = f"orbcast {summary.command}: {summary.status}" + (
        "" if summary.mode == "push" else f" ({summary.mode})"
    )
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what")
    table.add_column("value", justify="right")
    if summary.destination:
        table.add_row("destination", summary.destination)
    if summary.window:
        table.add_row("window", summary.window.describe())
    if summary.first_ns is not None:
        first, last = from_unix_nano(summary.first_ns), from_unix_nano(summary.last_ns or summary.first_ns)
        table.add_row("span times", f"{iso(first)} → {iso(last)}")
    table.add_row("generations read", f"{summary.read:,}")
    table.add_row(f"generations {verb}", f"{summary.generations:,}")
    table.add_row(f"spans {verb}", f"{summary.spans:,}")
    wire = _bytes(summary.bytes_sent)
    if summary.bytes_raw != summary.bytes_sent:
        wire += f" ({_bytes(summary.bytes_raw)} {summary.encoding} before gzip)"
    table.add_row(f"bytes {verb}", wire)
    table.add_row(
        "requests", f"{summary.requests:,}" + (f" ({summary.retries:,} retried)" if summary.retries else "")
    )
    rows = [
        ("skipped: already sent", summary.already_sent),
        ("skipped: resumed from an interrupted run", summary.resumed),
        ("skipped: already in Tempo", summary.skipped_existing),
        ("duplicates in the input", summary.duplicates),
        ("outside the window", summary.outside_window),
        ("rejected spans", summary.rejected_spans),
        ("failed", summary.failed),
        ("malformed input lines", summary.malformed),
        ("not sent (run stopped)", summary.unsent),
    ]
    for label, value in rows:
        if value or label in ("skipped: already sent", "rejected spans", "failed"):
            table.add_row(label, f"{value:,}")
    table.add_row("total cost", f"${summary.cost_usd:,.4f}")
    seconds = summary.elapsed
    table.add_row(
        "time", f"{seconds:,.1f} s ({summary.rate:,.0f} generations/s)" if seconds >= 0.05 else "<0.1 s"
    )
    if summary.verify_checked:
        table.add_row(
            "verify (trace by ID)", f"{summary.verify_found} of {summary.verify_checked} found in Tempo"
        )
    return table


def _attr_value(value: dict[str, Any]) -> str:
    if "stringValue" in value:
        text = str(value["stringValue"])
        return repr(text if len(text) <= 120 else text[:117] + "...")
    if "intValue" in value:
        return str(value["intValue"])
    for key in ("doubleValue", "boolValue"):
        if key in value:
            return str(value[key]).lower() if key == "boolValue" else str(value[key])
    if "arrayValue" in value:
        return "[" + ", ".join(_attr_value(v) for v in value["arrayValue"].get("values", [])) + "]"
    return str(value)


def sample_lines(rs: dict[str, Any]) -> list[str]:
    """One generation's spans, readable: name, IDs, times, status, then one attribute a line."""
    resource = {
        kv["key"]: _attr_value(kv.get("value") or {}) for kv in rs.get("resource", {}).get("attributes", [])
    }
    lines = ["resource: " + ", ".join(f"{k}={v}" for k, v in resource.items())]
    statuses = {0: "unset", 1: "ok", 2: "error"}
    for scope in rs.get("scopeSpans", []):
        for span in scope.get("spans", []):
            start, end = int(span.get("startTimeUnixNano", 0)), int(span.get("endTimeUnixNano", 0))
            status = span.get("status") or {}
            lines.append(
                f"span {span.get('name')!r}  trace {span.get('traceId')}  span {span.get('spanId')}"
                + (f"  parent {span['parentSpanId']}" if span.get("parentSpanId") else "")
                + f"  start {iso(from_unix_nano(start))}  {(end - start) / 1e9:.3f} s"
                + f"  status {statuses.get(status.get('code', 0), status.get('code'))}"
                + (f" ({status['message']})" if status.get("message") else "")
            )
            for kv in span.get("attributes", []):
                lines.append(f"    {kv['key']} = {_attr_value(kv.get('value') or {})}")
    return lines
