"""Searching a window of any length: split where Tempo says it is too long, without losing backfill.

Tempo finds a trace by search only when the window covers both the trace's real time and the time
range recorded for the block that holds it, which for spans pushed late (backfill) is about the time
they were pushed (README: "Windows and backfilled spans"). So the window is not cut into back-to-back
pieces, which would put a backfilled trace's start in one piece and its push time in the next: pieces
are as long as Tempo allows, overlap by half, and the last one always reaches the end of the search.
A trace is then found whenever one search of Tempo's maximum length could find it and it was pushed
within half that length of its start (always, for traces in the newest piece).

The split is reactive: the whole window is tried first (Grafana Cloud may allow more than the OSS
default of 168h), and Tempo's 400 says how long a window may be.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from orbcast.errors import QueryRejected
from orbcast.tempo import LimitTooHigh, RangeTooLong

if TYPE_CHECKING:
    from orbcast.tempo import TempoClient

T = TypeVar("T")
SAFETY = timedelta(minutes=1)  # stay clear of the limit despite rounding to whole seconds
DEFAULT_MAX = timedelta(hours=168)
MIN_PIECE = timedelta(hours=1)


def next_longest(exc: RangeTooLong, current: timedelta) -> timedelta:
    """The next piece length after Tempo rejected ``current`` as too long: what Tempo allows, or half
    of ``current`` when it does not say or allows no less; re-raises ``exc`` below :data:`MIN_PIECE`."""
    allowed = timedelta(seconds=exc.max_seconds) if exc.max_seconds else current / 2
    if allowed >= current:
        allowed = current / 2
    if allowed < MIN_PIECE:
        raise exc
    return allowed


def plan_chunks(
    start: datetime,
    end: datetime,
    longest: timedelta,
    *,
    overlap: bool = True,
    keep_before: datetime | None = None,
) -> list[tuple[datetime, datetime]]:
    """Windows no longer than ``longest`` covering [start, end].

    With ``overlap`` each window starts half a length after the previous one and the last one is
    ``[end - longest, end]``; only windows starting before ``keep_before`` are kept (a window that starts
    later cannot find a trace that started earlier). Without ``overlap`` the windows are back to back
    (metrics, where overlapping would count twice).
    """
    longest = max(longest - SAFETY, MIN_PIECE / 2)
    if end - start <= longest:
        return [(start, end)]
    out: list[tuple[datetime, datetime]] = []
    if not overlap:
        cursor = start
        while cursor < end:
            out.append((cursor, min(cursor + longest, end)))
            cursor += longest
        return out
    step = longest / 2
    limit = keep_before or end
    cursor = start
    while cursor < limit and cursor + longest < end:
        out.append((cursor, cursor + longest))
        cursor += step
    last = (max(start, end - longest), end)  # reaches the end: finds whatever was pushed lately
    if last[0] < limit or not out:
        out.append(last)
    return out


@dataclass
class WindowSearch(Generic[T]):
    items: list[T]
    truncated: bool = False
    pages: int = 0
    chunks: list[tuple[datetime, datetime]] = field(default_factory=list)
    longest: timedelta | None = None  # set when Tempo made us split
    limit: int = 0
    notes: list[str] = field(default_factory=list)
    partial_messages: list[str] = field(default_factory=list)


def search_window(
    client: TempoClient,
    query: str,
    start: datetime,
    end: datetime,
    *,
    limit: int,
    spss: int | None,
    convert: Callable[[dict[str, Any]], T | None],
    key: Callable[[T], str] | None = None,
    keep_before: datetime | None = None,
    on_page: Callable[[int, int], None] | None = None,
) -> WindowSearch[T]:
    """Search [start, end], split as Tempo demands, merged by ``key`` (first answer wins)."""
    key = key or (lambda item: str(item))
    outcome: WindowSearch[T] = WindowSearch(items=[], limit=limit)
    longest: timedelta | None = None
    seen: dict[str, T] = {}
    while True:
        chunks = (
            [(start, end)] if longest is None else plan_chunks(start, end, longest, keep_before=keep_before)
        )
        outcome.chunks = chunks
        try:
            for n, (a, b) in enumerate(chunks, 1):
                page = client.search(query, a, b, limit=outcome.limit, spss=spss, convert=convert)
                outcome.pages += 1
                if page.truncated:
                    outcome.truncated = True
                if page.message:
                    outcome.partial_messages.append(page.message)
                for item in page.items:
                    seen.setdefault(key(item), item)
                if on_page is not None:
                    on_page(n, len(chunks))
            break
        except RangeTooLong as exc:
            allowed = next_longest(exc, longest or (end - start))
            longest = allowed
            outcome.longest = allowed
            outcome.notes.append(
                f"Tempo allows {_hours(allowed)} per search: the window was searched in overlapping pieces"
            )
        except LimitTooHigh as exc:
            if exc.max_limit <= 0 or exc.max_limit >= outcome.limit:
                raise QueryRejected(exc.message, exc.hint) from None
            outcome.notes.append(f"Tempo allows at most {exc.max_limit} traces per search; used that limit")
            outcome.limit = exc.max_limit
    outcome.items = list(seen.values())
    return outcome


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:g}h" if hours >= 1 else f"{delta.total_seconds() / 60:g}m"
