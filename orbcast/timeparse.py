"""Time arguments: durations (``90m``, ``36h``, ``7d``, ``2w``), absolute times, ``now`` and ``now-2h``.

Times are UTC unless an offset is given. Every bad value raises :class:`UsageError` naming the
accepted forms.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dateutil import parser as dateparser

from orbcast.errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(
    r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|m|min|mins|h|hr|hrs|d|day|days|w|wk|wks)\s*$", re.I
)
_NOW = re.compile(r"^\s*now\s*(?:([+-])\s*(.+))?$", re.I)
# A bare duration where a time is expected means that long ago ("--to 1d"), as for --since.
_AGO = re.compile(r"^\s*([+-]?)\s*(\d+(?:\.\d+)?\s*(?:s|secs?|m|mins?|h|hrs?|d|days?|w|wks?))\s*$", re.I)
FORMS = (
    "a duration like 90m, 36h, 7d or 2w; an ISO 8601 time like 2026-11-20T08:00:00Z; "
    "a date like 2026-11-20; or now / now-2h"
)


def parse_duration(text: str) -> timedelta:
    """``90m`` -> 90 minutes. Raises UsageError for anything else."""
    match = _DURATION.match(text or "")
    if not match:
        raise UsageError(f"cannot read duration {text!r}: expected a number and a unit (s, m, h, d, w)")
    number, unit = float(match.group(1)), match.group(2)[0].lower()
    try:
        return timedelta(seconds=number * _UNITS[unit])
    except OverflowError:
        raise UsageError(f"duration {text.strip()!r} is too large") from None


def parse_time(text: str, *, now: datetime | None = None, option: str = "time") -> datetime:
    """An absolute instant from a flag value; timezone-aware UTC."""
    now = now or datetime.now(UTC)
    value = (text or "").strip()
    if not value:
        raise UsageError(f"{option}: empty value; accepted forms: {FORMS}")
    match = _NOW.match(value)
    ago = None if match else _AGO.match(value)
    if match and not match.group(1):
        return now
    found = match or ago
    if found:
        sign, amount = found.group(1) or "-", found.group(2)
        try:
            delta = parse_duration(amount)
            return now + delta if sign == "+" else now - delta
        except (UsageError, OverflowError):
            raise UsageError(f"{option}: cannot read {text!r}; accepted forms: {FORMS}") from None
    if re.fullmatch(r"\d{9,11}(\.\d+)?", value):  # unix seconds
        return datetime.fromtimestamp(float(value), UTC)
    try:
        parsed = dateparser.isoparse(value)
    except (ValueError, OverflowError):
        try:
            with warnings.catch_warnings():  # an unknown zone name would silently read as UTC
                warnings.simplefilter("error", dateparser.UnknownTimezoneWarning)
                # missing date parts ("8pm") come from `now`, not from the machine's clock
                today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
                parsed = dateparser.parse(value, default=today)
        except dateparser.UnknownTimezoneWarning:
            raise UsageError(
                f"{option}: unknown time zone name in {text!r}; give an offset like +02:00, or Z for UTC"
            ) from None
        except (ValueError, OverflowError, TypeError):
            raise UsageError(f"{option}: cannot read {text!r}; accepted forms: {FORMS}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # an offset of 24h or more, or a time out of range once in UTC
        raise UsageError(f"{option}: cannot read {text!r}; accepted forms: {FORMS}") from None


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """``--since``: a duration back from now, or an absolute time."""
    now = now or datetime.now(UTC)
    if _DURATION.match(text or ""):
        try:
            return now - parse_duration(text)
        except OverflowError:
            raise UsageError(f"--since {text.strip()!r} reaches before year 1") from None
    return parse_time(text, now=now, option="--since")


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def describe(self) -> str:
        return f"{iso(self.start)} → {iso(self.end)}"


def resolve_window(
    since: str | None,
    from_: str | None,
    to: str | None,
    *,
    default_since: str = "24h",
    now: datetime | None = None,
) -> Window:
    """The window of ``--since`` / ``--from`` / ``--to``. ``--since`` and ``--from`` exclude each other."""
    now = now or datetime.now(UTC)
    if since and from_:
        raise UsageError("--since and --from both give the start of the window; use one")
    end = parse_time(to, now=now, option="--to") if to else now
    if from_:
        start = parse_time(from_, now=now, option="--from")
    else:
        start = parse_since(since or default_since, now=now)
    if start >= end:
        raise UsageError(f"the window is empty: start {iso(start)} is not before end {iso(end)}")
    return Window(start, end)


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z and millisecond precision."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def to_unix_nano(moment: datetime) -> int:
    """Exact nanoseconds since the epoch (no float rounding)."""
    moment = moment.astimezone(UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def from_unix_nano(nanos: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=nanos // 1000)
