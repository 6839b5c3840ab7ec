"""Generations read back from Tempo: search results -> one :class:`GenerationRow` per trace.

The window rule: a search finds a backfilled trace only if its window reaches the time the trace was
pushed (the recorded real-Tempo answers show a window that ends in the past finds *nothing* pushed
later, on default settings, for good). So a window that ends in the past is searched up to now, and
the traces that started inside the user's window are kept.

A trace whose answer lacks its ``LLM Generation`` span (the query matched only provider-attempt spans,
or combined pipelines so no ``select()`` could be added) is read by trace ID, up to a bound.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any

from orbcast.report import GenerationRow
from orbcast.tempo import TempoClient
from orbcast.tempo_json import Span, any_value, nanos, pad_trace_id
from orbcast.tempo_search import search_window
from orbcast.timeparse import Window, to_unix_nano
from orbcast.traceql import ROOT_SPAN_NAME, Query

SPSS = 10  # spans per spanset: a generation has its root plus a few attempts
LOOKUP_LIMIT = 200  # traces read by ID when their search answer lacks the generation span
LOOKUP_WORKERS = 4
SERVICE = "openrouter"
PRESENT = timedelta(minutes=1)  # a window ending less than this before now already reaches now


_MINUTES: dict[int, str] = {}


def iso_ns(ns: int) -> str:
    """Unix nanoseconds as ISO 8601 UTC with milliseconds (``2026-11-26T21:19:25.524Z``); fast."""
    seconds, rest = divmod(ns, 1_000_000_000)
    minute, second = divmod(seconds, 60)
    prefix = _MINUTES.get(minute)
    if prefix is None:
        if len(_MINUTES) > 200_000:
            _MINUTES.clear()
        prefix = _MINUTES[minute] = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))
    return prefix + _SECONDS[second] + _MILLIS[rest // 1_000_000]


_SECONDS = tuple(f"{n:02d}." for n in range(60))
_MILLIS = tuple(f"{n:03d}Z" for n in range(1000))


# attribute (as Tempo returns it, unscoped) -> GenerationRow field
_FIELDS = {
    "gen_ai.request.model": "model",
    "gen_ai.response.id": "generation_id",
    "trace.metadata.openrouter.provider_name": "provider",
    "trace.metadata.openrouter.first_token_ms": "ttft_ms",
    "gen_ai.usage.input_tokens": "input_tokens",
    "gen_ai.usage.output_tokens": "output_tokens",
    "gen_ai.usage.output_tokens.reasoning": "reasoning_tokens",
    "gen_ai.usage.input_tokens.cached": "cached_tokens",
    "gen_ai.usage.total_cost": "cost_usd",
    "user.id": "user",
    "session.id": "session",
    "trace.metadata.openrouter.api_key_name": "api_key",
    "status": "status",
    "name": "",  # the span name, when selected: not an attribute of the generation
}


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


def _num(value: Any) -> float | None:
    return float(value) if type(value) in (int, float) else None


def _status(value: Any) -> str | None:
    if value is None:
        return None
    return "error" if str(value).lower() in ("error", "status_code_error", "2") else "ok"


def build_row(
    trace_id: str,
    start_ns: int,
    duration_ns: int,
    known: dict[str, Any],
    extra: dict[str, Any],
    status: str | None,
) -> GenerationRow:
    """A row from a generation span's attributes, split into row fields (``known``) and the rest."""
    get = known.get
    return GenerationRow(
        trace_id=trace_id,
        generation_id=get("generation_id") or extra.get("openrouter.trace.id"),
        start=iso_ns(start_ns),
        model=get("model") or extra.get("gen_ai.response.model"),
        provider=get("provider"),
        duration_ms=duration_ns / 1e6,
        ttft_ms=_num(get("ttft_ms")),
        input_tokens=_int(get("input_tokens")),
        output_tokens=_int(get("output_tokens")),
        reasoning_tokens=_int(get("reasoning_tokens")),
        cached_tokens=_int(get("cached_tokens")),
        cost_usd=_num(get("cost_usd")),
        status=_status(get("status")) or status or "ok",
        user=get("user"),
        session=get("session"),
        api_key=get("api_key"),
        attrs=extra,
    )


def split_values(pairs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    known: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    fields = _FIELDS
    for key, value in pairs:
        name = fields.get(key)
        if name:
            known[name] = value
        elif name is None:
            extra[key] = value
    return known, extra


# GenerationRow's positional order, for the fast path below
_SLOTS = {name: n for n, name in enumerate(
    ("trace_id", "generation_id", "start", "model", "provider", "duration_ms", "ttft_ms", "input_tokens",
     "output_tokens", "reasoning_tokens", "cached_tokens", "cost_usd", "status", "user", "session", "api_key")
)}  # fmt: skip
_KEY_SLOTS = {key: _SLOTS[name] for key, name in _FIELDS.items() if name}


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _as_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _search_row(trace_id: str, start_ns: int, duration_ns: int, attributes: Any, stats: Any) -> GenerationRow:
    """A row straight from search-answer attributes: the hot path of a 50,000-trace answer.

    Each ``value`` is a one-key object (``{"intValue": "157"}``); its only value is taken as is and
    converted by the field it lands in (int64 arrive as strings).
    """
    args: list[Any] = [None] * 16
    extra: dict[str, Any] = {}
    slots = _KEY_SLOTS
    try:
        for item in attributes or ():
            key = item["key"]
            if key in slots:  # (no method call: cheaper than slots.get on 500,000 attributes)
                (args[slots[key]],) = item["value"].values()
            elif key != "name":
                value = item["value"]
                extra[key] = value["stringValue"] if "stringValue" in value else any_value(value)
    except (KeyError, TypeError, ValueError, AttributeError):  # not Tempo's shape: the careful way
        args = [None] * 16
        known, extra = split_values(
            (a.get("key"), any_value(a.get("value"))) for a in attributes if isinstance(a, dict)
        )
        for name, value in known.items():
            args[_SLOTS[name]] = value
    _, gen_id, _, model, provider, _, ttft, tin, tout, reasoning, cached, cost, status, user, session, kn = (
        args
    )  # fmt: skip
    try:
        if tin is not None:
            tin = int(tin)
        if tout is not None:
            tout = int(tout)
        if reasoning is not None:
            reasoning = int(reasoning)
        if cached is not None:
            cached = int(cached)
        if ttft is not None:
            ttft = float(ttft)
        if cost is not None:
            cost = float(cost)
    except (TypeError, ValueError):  # one unreadable figure: convert each on its own
        tin, tout, reasoning, cached = (_as_int(v) if v is not None else None for v in args[7:11])
        ttft, cost = (_as_float(v) if v is not None else None for v in (args[6], args[11]))
    if gen_id is None:
        gen_id = extra.get("openrouter.trace.id")
    if model is None:
        model = extra.get("gen_ai.response.model")
    if status != "ok":
        status = _status(status)
    if status is None:  # the status was not selected (--raw): the trace's error count stands in
        errors = isinstance(stats, dict) and any(
            isinstance(s, dict) and s.get("errorCount") for s in stats.values()
        )
        status = "error" if errors else "ok"
    return GenerationRow(
        trace_id, gen_id, iso_ns(start_ns), model, provider, duration_ns / 1e6, ttft, tin, tout, reasoning,
        cached, cost, status, user, session, kn, extra,
    )  # fmt: skip


# One trace of a search answer: (trace ID, start in unix ns, its row, or None when the generation span
# was not in the answer and must be read by ID). A plain tuple: there may be 50,000 of them.
Hit = tuple[str, int, GenerationRow | None]


@dataclass
class Tally:
    not_generations: int = 0


def _generation_span(trace: dict[str, Any], trace_id: str) -> dict[str, Any] | None:
    """The ``LLM Generation`` span among the matched ones: by name (present when the query names it),
    by Broadcast's root span ID (the trace ID's first 16 hex), or as the span carrying the model."""
    sets = trace.get("spanSets") or ([trace["spanSet"]] if trace.get("spanSet") else [])
    by_id = by_model = None
    for spanset in sets:
        for span in spanset.get("spans") or ():
            if span.get("name") == ROOT_SPAN_NAME:
                return span
            if span.get("spanID") == trace_id[:16]:
                by_id = span
            elif by_model is None and any(
                a.get("key") == "gen_ai.request.model" for a in span.get("attributes") or ()
            ):
                by_model = span
    return by_id or by_model


_SEARCH_ID = re.compile(r"[0-9a-f]{1,32}").fullmatch


def convert_trace(trace: dict[str, Any], tally: Tally) -> Hit | None:
    """A search trace -> :class:`Hit`; ``None`` (counted) for traces that are not OpenRouter generations."""
    raw = trace.get("traceID")
    # quick for an ID as search writes it (lowercase hex, leading zeros trimmed), else validated
    trace_id = (
        raw.rjust(32, "0") if isinstance(raw, str) and _SEARCH_ID(raw) else pad_trace_id(str(raw or "0"))
    )
    try:  # usually the first span of the first spanset (the query names it); else look at them all
        span = trace["spanSets"][0]["spans"][0]
        if span["name"] != ROOT_SPAN_NAME:
            span = _generation_span(trace, trace_id)
    except (KeyError, IndexError, TypeError):
        span = _generation_span(trace, trace_id)
    if span is None:
        if trace.get("rootServiceName") not in (SERVICE, None) and "not yet received" not in str(
            trace.get("rootServiceName")
        ):
            tally.not_generations += 1
            return None
        return (trace_id, nanos(trace.get("startTimeUnixNano")), None)
    try:
        start, duration = int(span["startTimeUnixNano"]), int(span["durationNanos"])
    except (KeyError, TypeError, ValueError):
        start, duration = nanos(span.get("startTimeUnixNano")), nanos(span.get("durationNanos"))
    start = start or nanos(trace.get("startTimeUnixNano"))
    row = _search_row(trace_id, start, duration, span.get("attributes"), trace.get("serviceStats"))
    return (trace_id, start, row)


def row_from_spans(trace_id: str, spans: list[Span]) -> GenerationRow | None:
    """The generation of a trace read by ID (its ``LLM Generation`` span), or ``None``."""
    root = next((s for s in spans if s.name == ROOT_SPAN_NAME), None)
    if root is None:
        root = next((s for s in spans if "gen_ai.request.model" in s.attributes and not s.parent_id), None)
    if root is None:
        return None
    known, extra = split_values({**root.resource, **root.attributes}.items())
    known["status"] = root.status
    return build_row(trace_id, root.start_ns, max(0, root.end_ns - root.start_ns), known, extra, None)


@dataclass
class Readback:
    rows: list[GenerationRow]
    truncated: bool
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    searched: tuple[datetime, datetime] | None = None
    pages: int = 0


def read_generations(
    client: TempoClient,
    query: Query,
    window: Window,
    *,
    limit: int,
    now: datetime,
    on_page: Callable[[int, int], None] | None = None,
) -> Readback:
    """Every generation matching ``query`` that started inside ``window``."""
    search_end = now if window.end < now - PRESENT else window.end
    tally = Tally()
    outcome = search_window(
        client,
        query.sent,
        window.start,
        search_end,
        limit=limit,
        spss=SPSS,
        convert=lambda trace: convert_trace(trace, tally),
        key=itemgetter(0),
        keep_before=window.end,
        on_page=on_page,
    )
    lo, hi = to_unix_nano(window.start), to_unix_nano(window.end)
    hits = [h for h in outcome.items if lo <= h[1] < hi]
    result = Readback(rows=[], truncated=outcome.truncated, searched=(window.start, search_end))
    result.pages = outcome.pages
    result.notes.extend(outcome.notes)
    if query.note:
        result.notes.append(query.note)
    if search_end > window.end:
        result.notes.append(
            "the window ends in the past: searched up to now so that spans pushed later (backfill) are "
            f"found; {len(hits)} of the {len(outcome.items)} traces found started inside the window"
        )
    if outcome.longest is not None:
        result.warnings.append(
            f"Tempo allows {outcome.longest.total_seconds() / 3600:g}h per search: generations pushed long "
            "after they ran (backfill) can only be found within that distance of their push; "
            "`orbcast trace ID` always finds them"
        )
    if tally.not_generations:
        result.notes.append(
            f"{tally.not_generations} matching traces are not OpenRouter generations (left out)"
        )
    missing = [h for h in hits if h[2] is None]
    looked_up = _lookup(client, missing[:LOOKUP_LIMIT])
    unknown = 0
    for trace_id, _start, found in hits:
        row = found or looked_up.get(trace_id)
        if row is None:
            unknown += 1
            continue
        result.rows.append(row)
    if missing:
        result.notes.append(f"{min(len(missing), LOOKUP_LIMIT)} generations were read by trace ID")
    if unknown:
        result.warnings.append(
            f"{unknown} matching traces could not be read as generations "
            f"(more than {LOOKUP_LIMIT} to read by ID, or no LLM Generation span): left out; add "
            f'span:name = "{ROOT_SPAN_NAME}" to the query to match the generation spans themselves'
        )
    if outcome.truncated:
        reasons = []
        if outcome.partial_messages:
            reasons.append("Tempo: " + "; ".join(dict.fromkeys(outcome.partial_messages)))
        reasons.append(
            f"a search returned {outcome.limit} traces, the limit, or not all of Tempo's jobs finished"
        )
        beyond = (
            " (the search ran to now, so later traces count against the limit too)"
            if search_end > window.end
            else ""
        )
        result.warnings.append(
            f"results are truncated: {'; '.join(reasons)}{beyond}. "
            f"Get the rest with --limit {max(outcome.limit * 4, 1000)} or a narrower window"
        )
    return result


def _lookup(client: TempoClient, hits: list[Hit]) -> dict[str, GenerationRow]:
    if not hits:
        return {}

    def one(hit: Hit) -> tuple[str, GenerationRow | None]:
        spans = client.trace(hit[0])
        return hit[0], row_from_spans(hit[0], spans) if spans else None

    with ThreadPoolExecutor(max_workers=LOOKUP_WORKERS) as pool:
        found = dict(pool.map(one, hits))
    return {k: v for k, v in found.items() if v is not None}
