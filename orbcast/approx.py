"""``query --approx``: the tables from TraceQL metrics (``/api/metrics/query``) instead of listing spans.

For windows too large to list. The figures are approximate: Tempo's quantiles come from power-of-two
buckets, and on default Tempo settings metrics leave out spans pushed more than a couple of minutes
after they ran (backfill). Windows longer than Tempo's metrics limit (24h by default, stated in its
400) are cut into back-to-back pieces: counts, tokens and cost add up; percentiles over several pieces
are count-weighted means of each piece's (said so in the warnings).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from orbcast.report import GroupStats, Report, share_and_sort
from orbcast.tempo import RangeTooLong, TempoClient
from orbcast.tempo_json import any_value
from orbcast.tempo_search import next_longest, plan_chunks
from orbcast.timeparse import Window, iso
from orbcast.traceql import Query, group_attribute

APPROX_WARNING = (
    "approximate figures from TraceQL metrics: percentiles come from power-of-two buckets, and on "
    "default Tempo settings metrics leave out backfilled spans (pushed more than 2 minutes after they ran); "
    "drop --approx for exact figures"
)
TTFT = "span.trace.metadata.openrouter.first_token_ms"
SUMS = {
    "cost_usd": "span.gen_ai.usage.total_cost",
    "input_tokens": "span.gen_ai.usage.input_tokens",
    "output_tokens": "span.gen_ai.usage.output_tokens",
}


def _label(series: dict[str, Any]) -> tuple[str | None, float | None]:
    """(group label value or None for an ungrouped series, quantile p or None)."""
    group: str | None = None
    p: float | None = None
    for label in series.get("labels") or []:
        key, value = label.get("key"), any_value(label.get("value"))
        if key == "p":
            p = float(value) if isinstance(value, int | float) else None
        elif key != "__name__":
            group = "(none)" if value in (None, "", "nil") else str(value)
    return group, p


def _value(series: dict[str, Any]) -> float:
    value = series.get("value")
    return float(value) if isinstance(value, int | float) else 0.0  # zero values are omitted


@dataclass
class _Piece:
    """Figures of one metrics window, per group (``None`` = all)."""

    count: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    errors: dict[str | None, float] = field(default_factory=lambda: defaultdict(float))
    sums: dict[str, dict[str | None, float]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(float))
    )
    maximum: dict[str | None, float] = field(default_factory=dict)
    quantiles: dict[tuple[str, str | None, float], float] = field(default_factory=dict)
    partial: list[str] = field(default_factory=list)  # Tempo's messages for answers marked PARTIAL


def _piece(client: TempoClient, query: Query, by: str, start: datetime, end: datetime) -> _Piece:
    piece = _Piece()
    grouped = f" by ({by})"

    def run(stage: str, errors_only: bool = False) -> list[dict[str, Any]]:
        doc = client.metrics_instant(query.metrics(stage, errors_only=errors_only), start, end)
        if (doc.get("status") or "").upper() == "PARTIAL":
            piece.partial.append(str(doc.get("message") or "partial answer"))
        return [s for s in doc.get("series") or [] if isinstance(s, dict)]

    def group_of(series: dict[str, Any]) -> str:
        return _label(series)[0] or "(none)"

    for series in run("count_over_time()" + grouped):
        piece.count[group_of(series)] += _value(series)
    for series in run("count_over_time()" + grouped, errors_only=True):
        piece.errors[group_of(series)] += _value(series)
    for name, attribute in SUMS.items():
        for series in run(f"sum_over_time({attribute})" + grouped):
            piece.sums[name][group_of(series)] += _value(series)
    for series in run("max_over_time(duration)" + grouped):
        piece.maximum[group_of(series)] = _value(series) * 1000
    for what, attribute, scale, qs in (
        ("d", "duration", 1000.0, ".5, .95, .99"),
        ("t", TTFT, 1.0, ".5, .95"),
    ):
        for suffix in (grouped, ""):
            for series in run(f"quantile_over_time({attribute}, {qs}){suffix}"):
                group, p = _label(series)
                if p is None or "value" not in series:
                    continue
                key = (group or "(none)") if suffix else None
                piece.quantiles[(what, key, round(p, 3))] = _value(series) * scale
    return piece


def approximate_report(
    client: TempoClient,
    query: Query,
    window: Window,
    *,
    group_by: str,
    on_piece: Callable[[int, int], None] | None = None,
) -> Report:
    by = group_attribute(group_by)[0]
    warnings = [APPROX_WARNING]
    truncated = False
    longest: timedelta | None = None
    while True:
        chunks = (
            [(window.start, window.end)]
            if longest is None
            else plan_chunks(window.start, window.end, longest, overlap=False)
        )
        try:
            pieces = []
            for n, (a, b) in enumerate(chunks, 1):
                pieces.append(_piece(client, query, by, a, b))
                if on_piece is not None:
                    on_piece(n, len(chunks))
            break
        except RangeTooLong as exc:
            longest = next_longest(exc, longest or (window.end - window.start))
    messages = list(dict.fromkeys(m for p in pieces for m in p.partial))
    if messages:
        truncated = True
        warnings.append(
            "Tempo marked metrics answers partial, the figures are incomplete: "
            + "; ".join(messages)
            + " (narrow the window, or drop --approx to list the generations)"
        )
    if len(pieces) > 1:
        warnings.append(
            f"the window was measured in {len(pieces)} pieces (Tempo's metrics limit): percentiles are "
            "count-weighted means of each piece's"
        )
    keys = sorted({g for p in pieces for g in p.count})
    group_list = [s for s in (_stats(g, pieces) for g in keys) if s.count]
    totals = _stats(None, pieces)
    share_and_sort(group_list, totals)
    report = Report(
        query=query.sent,
        window={"from": iso(window.start), "to": iso(window.end)},
        group_by=group_by,
        groups=group_list,
        totals=totals,
        generations=[],
        truncated=truncated,
        warnings=warnings,
        approximate=True,
    )
    report.searched = dict(report.window)
    return report


def _stats(group: str | None, pieces: list[_Piece]) -> GroupStats:
    stats = GroupStats(key=group or "total")
    if group is None:
        counts = [sum(p.count.values()) for p in pieces]
        errors = [sum(p.errors.values()) for p in pieces]
        sums = {name: sum(sum(p.sums[name].values()) for p in pieces) for name in SUMS}
        maxima = [max(p.maximum.values(), default=0.0) for p in pieces]
    else:
        counts = [p.count.get(group, 0.0) for p in pieces]
        errors = [p.errors.get(group, 0.0) for p in pieces]
        sums = {name: sum(p.sums[name].get(group, 0.0) for p in pieces) for name in SUMS}
        maxima = [p.maximum.get(group, 0.0) for p in pieces]
    stats.count = int(round(sum(counts)))
    stats.errors = int(round(sum(errors)))
    stats.error_rate = stats.errors / stats.count if stats.count else 0.0
    stats.cost_usd = round(sums["cost_usd"], 10)
    stats.input_tokens = int(round(sums["input_tokens"]))
    stats.output_tokens = int(round(sums["output_tokens"]))
    stats.max_ms = max(maxima) if any(maxima) else None

    def quantile(what: str, p: float) -> float | None:
        weighted = [
            (p_.quantiles[(what, group, p)], c)
            for p_, c in zip(pieces, counts, strict=True)
            if (what, group, p) in p_.quantiles
        ]
        total = sum(c for _, c in weighted)
        if not weighted:
            return None
        if total <= 0:
            return weighted[0][0]
        return sum(v * c for v, c in weighted) / total

    stats.p50_ms, stats.p95_ms, stats.p99_ms = (quantile("d", p) for p in (0.5, 0.95, 0.99))
    stats.ttft_p50_ms, stats.ttft_p95_ms = quantile("t", 0.5), quantile("t", 0.95)
    return stats
