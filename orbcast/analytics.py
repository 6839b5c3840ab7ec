"""Enumerating generations with ``POST /analytics/query`` (there is no list endpoint).

The window is walked in slices of at most 31 days (3 hours for ``--detail summary``, so that rows carry
minute timestamps). Each query asks for ``limit: 10000`` and an explicit ``time_range``. When a slice
comes back truncated it is halved and asked again, down to one minute, the API's smallest granularity;
a one-minute slice still truncated is reported. Slices grow again after sparse answers, so a quiet
history costs few requests. Only one slice's rows are ever held in memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from orbcast.errors import ServiceUnavailable
from orbcast.openrouter import ANALYTICS_ROW_LIMIT, AnalyticsRejected, AnalyticsTimeout, OpenRouterClient
from orbcast.pacing import ANALYTICS_BUDGET, ANALYTICS_PERIOD
from orbcast.records import GenerationRecord, MalformedRecord, _float, _int, parse_created_at
from orbcast.timeparse import Window, from_unix_nano, iso, to_unix_nano

MAX_SLICE = timedelta(days=31)  # generation_id queries are limited to 31-day ranges
MINUTE_GRANULARITY_MAX = timedelta(hours=3)  # granularity "minute" only for ranges <= 3 h
MIN_SLICE = timedelta(minutes=1)  # the API's smallest granularity
COUNT_SPAN = timedelta(days=365)  # volume metrics without generation_id span up to a year
TARGET_ROWS = 6000  # aim each slice at this many rows, well under the 10,000 limit
FULL_METRICS = ["request_count"]
SUMMARY_METRICS = [
    "request_count",
    "total_usage",
    "tokens_prompt",
    "tokens_completion",
    "reasoning_tokens",
    "cached_tokens",
    "avg_latency",
]
SUMMARY_ESTIMATED = ("created_at", "latency", "model", "tokens_prompt", "tokens_completion")


@dataclass
class Slice:
    start: datetime
    end: datetime
    rows: list[dict[str, Any]]
    truncated: bool = False
    models: dict[str, str] = field(default_factory=dict)  # generation_id -> model label (summary)


def _query(
    start: datetime,
    end: datetime,
    metrics: list[str],
    dimensions: list[str],
    granularity: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metrics": metrics,
        "time_range": {"start": iso(start), "end": iso(end)},
        "limit": ANALYTICS_ROW_LIMIT,
    }
    if dimensions:
        body["dimensions"] = dimensions
    if granularity:
        body["granularity"] = granularity
    return body


def count_generations(client: OpenRouterClient, window: Window) -> int | None:
    """Generations in the window (``request_count`` without dimensions), ``None`` when not answered."""
    total = 0
    cursor = window.start
    while cursor < window.end:
        end = min(cursor + COUNT_SPAN, window.end)
        try:
            page = client.analytics(_query(cursor, end, ["request_count"], []))
        except (AnalyticsTimeout, AnalyticsRejected):  # a timed-out or rejected query costs only the estimate
            return None
        total += sum(_int(row.get("request_count")) or 0 for row in page.rows)
        cursor = end
    return total


def initial_span(window: Window, expected: int | None, summary: bool) -> timedelta:
    """The first slice's length: sized to ~TARGET_ROWS rows when the count is known."""
    ceiling = MINUTE_GRANULARITY_MAX if summary else MAX_SLICE
    if expected:
        seconds = window.seconds * TARGET_ROWS / expected
        span = timedelta(seconds=seconds)
    else:
        span = ceiling if summary else timedelta(days=1)
    return max(MIN_SLICE, min(ceiling, span))


def iter_slices(
    client: OpenRouterClient,
    window: Window,
    *,
    summary: bool = False,
    expected: int | None = None,
    warn: Callable[[str], None] = lambda _m: None,
    log: Callable[[str], None] = lambda _m: None,
    on_split: Callable[[], None] = lambda: None,
) -> Iterator[Slice]:
    """The window's generation rows, one slice at a time, in time order."""
    ceiling = MINUTE_GRANULARITY_MAX if summary else MAX_SLICE
    span = initial_span(window, expected, summary)
    cursor = window.start
    metrics = SUMMARY_METRICS if summary else FULL_METRICS
    granularity = "minute" if summary else None
    target = TARGET_ROWS  # lowered when the server truncates below the limit we ask for
    while cursor < window.end:
        end = min(cursor + span, window.end)
        length = end - cursor
        try:
            page = client.analytics(
                _query(cursor, end, metrics, ["generation_id", "api_key_id"], granularity)
            )
            models: dict[str, str] = {}
            truncated = page.truncated
            if summary and not (truncated and length > MIN_SLICE):
                model_page = client.analytics(
                    _query(cursor, end, ["request_count"], ["generation_id", "model"])
                )
                truncated = truncated or model_page.truncated
                models = {
                    str(r["generation_id"]): str(r["model"])
                    for r in model_page.rows
                    if r.get("generation_id") and r.get("model")
                }
        except AnalyticsTimeout:
            if length <= MIN_SLICE:
                raise ServiceUnavailable(
                    f"OpenRouter analytics timed out (408) even for the one-minute slice {iso(cursor)}",
                    hint="re-run later",
                ) from None
            log(f"analytics {iso(cursor)} → {iso(end)}: timed out (408); narrowing the slice")
            span = max(MIN_SLICE, length / 2)
            on_split()
            continue
        log(
            f"analytics {iso(cursor)} → {iso(end)}: {len(page.rows)} rows"
            + (" (truncated)" if truncated else "")
        )
        if page.truncated and page.rows:
            target = min(target, max(1, len(page.rows) * TARGET_ROWS // ANALYTICS_ROW_LIMIT))
        if truncated and length > MIN_SLICE:
            span = max(MIN_SLICE, length / 2)
            on_split()
            continue
        if truncated:
            warn(
                f"{iso(cursor)} → {iso(end)} still holds more than {ANALYTICS_ROW_LIMIT:,} generations at "
                "one minute, the API's smallest granularity: some of that minute's generations are missing "
                "(the dashboard's CSV export, --source csv:PATH, has them all)"
            )
        yield Slice(cursor, end, page.rows, truncated, models)
        cursor = end
        if len(page.rows) < target and span < ceiling:
            span = min(ceiling, span * min(2.0, target / max(1, len(page.rows))))


def row_time_ns(row: dict[str, Any], fallback: datetime) -> tuple[int, str]:
    """The row's ``date__minute`` (or coarser) bucket as (unix ns, ISO text); the slice start if absent."""
    for key in ("date__minute", "date__hour", "date__day", "date"):
        value = row.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = value / 1000 if value > 1e11 else value
            nanos = int(seconds * 1_000_000_000)
            return nanos, iso(from_unix_nano(nanos))
        if isinstance(value, str) and value.strip():
            try:
                nanos = parse_created_at(value)
            except MalformedRecord:
                continue
            return nanos, iso(from_unix_nano(nanos))
    return to_unix_nano(fallback), iso(fallback)


def summary_record(row: dict[str, Any], piece: Slice) -> GenerationRecord:
    """A record from one analytics row: cost, tokens, latency and key name; the rest unknown.

    ``record.estimated`` names the fields that are approximations: the time (minute resolution), the
    latency (the row's average), the model (a display label) and the token counts (normalized or native
    is undocumented).
    """
    gen_id = row.get("generation_id")
    if not isinstance(gen_id, str) or not gen_id.strip():
        raise MalformedRecord("analytics row without a generation_id")
    start_ns, created = row_time_ns(row, piece.start)
    cost = _float(row.get("total_usage"))
    return GenerationRecord(
        id=gen_id.strip(),
        created_at=created,
        start_ns=start_ns,
        total_cost=cost,
        usage=cost,
        tokens_prompt=_int(row.get("tokens_prompt")),
        tokens_completion=_int(row.get("tokens_completion")),
        native_tokens_reasoning=_int(row.get("reasoning_tokens")),
        native_tokens_cached=_int(row.get("cached_tokens")),
        latency=_float(row.get("avg_latency")),
        model=piece.models.get(gen_id),
        api_key_name=_label(row.get("api_key_id")),
        source="summary",
        estimated=SUMMARY_ESTIMATED,
    )


def _label(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def estimate_seconds(
    expected: int, window: Window, *, summary: bool, concurrency: int, per_request: float
) -> float:
    """Rough duration: analytics requests at the 64/minute pace plus, for full detail, one GET each."""
    slices = max(math.ceil(expected / TARGET_ROWS), 1)
    if summary:
        slices = max(slices, math.ceil(window.seconds / MINUTE_GRANULARITY_MAX.total_seconds())) * 2
    else:
        slices = max(slices, math.ceil(window.seconds / MAX_SLICE.total_seconds()))
    paced = max(0, slices - ANALYTICS_BUDGET) * ANALYTICS_PERIOD / ANALYTICS_BUDGET
    analytics = paced + slices * 0.3
    if summary:
        return analytics
    return analytics + expected * per_request / max(1, concurrency)
