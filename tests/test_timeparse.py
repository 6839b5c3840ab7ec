"""Time arguments: durations, absolute times, now/now-2h, offsets, and clean errors naming the forms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbcast.errors import ExitCode, UsageError
from orbcast.timeparse import (
    FORMS,
    from_unix_nano,
    iso,
    parse_duration,
    parse_since,
    parse_time,
    resolve_window,
    to_unix_nano,
)
from tests.conftest import Result

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400, "day": 86400, "w": 604800}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90m", 5400), ("36h", 129600), ("7d", 604800), ("2w", 1209600), ("45s", 45), ("1.5h", 5400),
     (" 10 min ", 600), ("3days", 259200), ("1H", 3600)],
)  # fmt: skip
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert parse_since(text, now=NOW) == NOW - timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20T08:00:00Z", datetime(2026, 11, 20, 8, tzinfo=UTC)),
        ("2026-11-20T08:00:00.123456Z", datetime(2026, 11, 20, 8, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-20T08:00:00+02:00", datetime(2026, 11, 20, 6, tzinfo=UTC)),
        ("2026-11-20T08:00:00-0530", datetime(2026, 11, 20, 13, 30, tzinfo=UTC)),
        ("2026-11-20 08:00", datetime(2026, 11, 20, 8, tzinfo=UTC)),  # no offset: UTC
        ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),
        ("Nov 20 2026 8:30pm", datetime(2026, 11, 20, 20, 30, tzinfo=UTC)),  # dateutil
        ("20 November 2026 08:00 +01:00", datetime(2026, 11, 20, 7, tzinfo=UTC)),
        ("1795000000", datetime.fromtimestamp(1795000000, UTC)),  # unix seconds
        ("now", NOW),
        ("NOW", NOW),
        ("now-2h", NOW - timedelta(hours=2)),
        ("now - 90m", NOW - timedelta(minutes=90)),
        ("now+1d", NOW + timedelta(days=1)),
        ("5h", NOW - timedelta(hours=5)),  # a bare duration: that long ago, as for --since
        ("-5h", NOW - timedelta(hours=5)),
        ("+1d", NOW + timedelta(days=1)),
        ("8pm", datetime(2026, 11, 26, 20, tzinfo=UTC)),  # not a duration: dateutil's today at 8pm
    ],
)
def test_absolute_times(text: str, expected: datetime) -> None:
    parsed = parse_time(text, now=NOW)
    assert parsed == expected and parsed.tzinfo is not None and parsed.utcoffset() == timedelta(0)


def test_since_accepts_absolute_times_too() -> None:
    assert parse_since("2026-11-25T00:00:00Z", now=NOW) == datetime(2026, 11, 25, tzinfo=UTC)
    assert parse_since("now-3h", now=NOW) == NOW - timedelta(hours=3)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "yesterday-ish",
        "7x",
        "now-",
        "now-soon",
        "2026-13-45",
        "1d ago",
        "d7",
        "now-99999999d",
        "0A-24",
    ],
)
def test_bad_values_name_the_accepted_forms(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_time(text, now=NOW, option="--from")
    assert info.value.exit_code == ExitCode.USAGE
    assert "--from" in info.value.message and FORMS in info.value.message


def test_an_unknown_zone_name_is_an_error_not_silently_utc() -> None:
    with pytest.raises(UsageError, match="unknown time zone name"):
        parse_time("2026-11-20 08:00 PST", now=NOW, option="--from")
    assert parse_time("2026-11-20 08:00 UTC", now=NOW) == datetime(2026, 11, 20, 8, tzinfo=UTC)


@pytest.mark.parametrize("text", ["", "5", "h", "5 hours ago", "1y"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(UsageError, match="unit"):
        parse_duration(text)


def test_windows() -> None:
    window = resolve_window("24h", None, None, now=NOW)
    assert (window.start, window.end, window.seconds) == (NOW - timedelta(days=1), NOW, 86400)
    window = resolve_window(None, "2026-11-20", "2026-11-21T06:00:00+06:00", now=NOW)
    assert (window.start, window.end) == (
        datetime(2026, 11, 20, tzinfo=UTC),
        datetime(2026, 11, 21, tzinfo=UTC),
    )
    assert resolve_window(None, None, None, default_since="7d", now=NOW).start == NOW - timedelta(days=7)
    assert window.describe() == "2026-11-20T00:00:00.000Z → 2026-11-21T00:00:00.000Z"
    with pytest.raises(UsageError, match="use one"):
        resolve_window("1h", "2026-11-20", None, now=NOW)
    with pytest.raises(UsageError, match="empty"):
        resolve_window(None, "now", "now-1h", now=NOW)


def test_a_bad_time_on_the_command_line_is_exit_2_with_the_forms(cli: object) -> None:
    result: Result = cli("demo", "--now", "half past nine-ish")  # type: ignore[operator]
    assert result.exit_code == 2
    assert "--now" in result.stderr and "now-2h" in result.stderr and "Traceback" not in result.output


# ----------------------------------------------------------------------------- properties

moments = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)  # fmt: skip
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@given(moments)
def test_iso_output_parses_back_to_the_millisecond(moment: datetime) -> None:
    back = parse_time(iso(moment), now=NOW)
    assert back == moment.replace(microsecond=moment.microsecond // 1000 * 1000)


@given(moments, offsets)
def test_any_offset_means_the_same_instant(moment: datetime, offset: timezone) -> None:
    local = moment.astimezone(offset)
    assert parse_time(local.isoformat(), now=NOW) == moment


@given(st.integers(min_value=0, max_value=100_000), st.sampled_from(sorted(UNITS)))
def test_duration_is_number_times_unit(number: int, unit: str) -> None:
    assert parse_duration(f"{number}{unit}") == timedelta(seconds=number * UNITS[unit])
    assert parse_time(f"now-{number}{unit}", now=NOW) == NOW - timedelta(seconds=number * UNITS[unit])


@given(moments)
def test_unix_nano_round_trip_is_exact(moment: datetime) -> None:
    nanos = to_unix_nano(moment)
    assert nanos % 1000 == 0
    assert from_unix_nano(nanos) == moment


@given(st.text(max_size=30))
def test_any_text_parses_or_is_a_usage_error(text: str) -> None:
    try:
        parsed = parse_time(text, now=NOW)
    except UsageError as exc:
        assert FORMS in exc.message or "duration" in exc.message
    else:
        assert parsed.tzinfo is not None
