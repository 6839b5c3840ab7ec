"""The record model: one OpenRouter generation, whatever it was read from.

Parsed from the ``/generation`` ``data`` object, a row of the dashboard's per-generation CSV export,
or orbcast's own JSONL (which is the ``/generation`` object plus an ``orbcast`` key). Unknown fields
are kept and written back out. Nulls stay ``None``: "unknown" is never silently 0.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import orjson
from dateutil import parser as dateparser

from orbcast.timeparse import to_unix_nano


class MalformedRecord(ValueError):
    """A record that cannot be used (no id, no parsable time, not an object)."""


# ----------------------------------------------------------------------------- value coercion


_INT64_MAX = 2**63 - 1
MAX_DURATION_MS = 86_400_000  # a longer generation_time / latency is not a real one


def _int(value: Any) -> int | None:
    """An integer, or None when absent, not a number, or beyond int64 (no real count is; JSON/OTLP can't)."""
    number = _any_int(value)
    return number if number is not None and -_INT64_MAX - 1 <= number <= _INT64_MAX else None


def _any_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value == value and abs(value) < 1e30 else None
    if isinstance(value, str):
        text = value.strip().replace(",", "")
        if not text:
            return None
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return None
            return int(number) if number == number and abs(number) < 1e30 else None
    return None


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(",", "")
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            return None
    else:
        return None
    if number != number or number in (float("inf"), float("-inf")):
        return None
    return number


def _str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    return None


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in {"true", "t", "yes", "1"}:
            return True
        if text in {"false", "f", "no", "0"}:
            return False
    return None


def _attempts(value: Any) -> list[dict[str, Any]] | None:
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    if not isinstance(value, list):
        return None
    return [item for item in value if isinstance(item, dict)]


_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?\s*(Z|[+-]\d{2}:?\d{2})?$"
)


_MAX_NANOS = 2**63 - 1  # 2262-04-11: the last instant int64 nanoseconds can hold


_EPOCH_DAYS: dict[str, int] = {}  # "YYYY-MM-DD" -> days since 1970-01-01: a history spans few dates
_EPOCH_ORDINAL = datetime(1970, 1, 1).toordinal()


def _epoch_days(date: str) -> int:
    """Days since the epoch of a valid ``YYYY-MM-DD`` (ValueError otherwise), remembered."""
    days = datetime(int(date[:4]), int(date[5:7]), int(date[8:10])).toordinal() - _EPOCH_ORDINAL
    if len(_EPOCH_DAYS) >= 100_000:
        _EPOCH_DAYS.clear()
    _EPOCH_DAYS[date] = days
    return days


def parse_created_at(value: Any) -> int:
    """``created_at`` in any observed shape (0-9 fractional digits, ``Z``, ``+00:00``, none) -> unix ns."""
    nanos = _created_at_nanos(value)
    if not 0 < nanos <= _MAX_NANOS:
        raise MalformedRecord(f"created_at is out of range (1970 to 2262): {value!r}")
    return nanos


def _created_at_nanos(value: Any) -> int:
    if not isinstance(value, str) or not value.strip():
        raise MalformedRecord(f"created_at is missing or not a string: {value!r}")
    text = value.strip()
    match = _TIME.match(text)
    try:
        if match:
            _, _, _, hour, minute, second, frac, tz = match.groups()
            days = _EPOCH_DAYS.get(text[:10])  # the regex matched: the text starts with YYYY-MM-DD
            if days is None:
                days = _epoch_days(text[:10])
            hours, minutes, seconds = int(hour), int(minute), int(second)
            if hours > 23 or minutes > 59 or seconds > 59:  # what datetime() refuses
                raise ValueError("time out of range")
            nanos = (((days * 24 + hours) * 60 + minutes) * 60 + seconds) * 1_000_000_000
            if frac:
                nanos += int(frac.ljust(9, "0"))
            if tz and tz != "Z":
                sign = 1 if tz[0] == "+" else -1
                digits = tz[1:].replace(":", "")
                offset = (int(digits[:2]) * 3600 + int(digits[2:]) * 60) * sign
                nanos -= offset * 1_000_000_000
            return nanos
        with warnings.catch_warnings():  # an unknown zone name must not silently read as UTC
            warnings.simplefilter("error", dateparser.UnknownTimezoneWarning)
            parsed = dateparser.parse(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return to_unix_nano(parsed)
    except (ValueError, OverflowError, TypeError, dateparser.UnknownTimezoneWarning):
        raise MalformedRecord(f"created_at is not a time: {value!r}") from None


# ----------------------------------------------------------------------------- the record

# /generation field -> coercion. The order is the reference table's.
API_FIELDS: dict[str, Callable[[Any], Any]] = {
    "upstream_id": _str,
    "total_cost": _float,
    "usage": _float,
    "cache_discount": _float,
    "upstream_inference_cost": _float,
    "model": _str,
    "app_id": _int,
    "streamed": _bool,
    "cancelled": _bool,
    "provider_name": _str,
    "latency": _float,
    "moderation_latency": _float,
    "generation_time": _float,
    "finish_reason": _str,
    "native_finish_reason": _str,
    "tokens_prompt": _int,
    "tokens_completion": _int,
    "native_tokens_prompt": _int,
    "native_tokens_completion": _int,
    "native_tokens_reasoning": _int,
    "native_tokens_cached": _int,
    "native_tokens_completion_images": _int,
    "num_media_prompt": _int,
    "num_input_audio_prompt": _int,
    "num_media_completion": _int,
    "num_search_results": _int,
    "num_fetches": _int,
    "web_search_engine": _str,
    "origin": _str,
    "is_byok": _bool,
    "external_user": _str,
    "api_type": _str,
    "preset_id": _str,
    "router": _str,
    "service_tier": _str,
    "provider_responses": _attempts,
    "user_agent": _str,
    "http_referer": _str,
    "data_region": _str,
    "workspace_id": _str,
    "request_id": _str,
    "session_id": _str,
    "response_cache_source_id": _str,
}
_KNOWN = frozenset(API_FIELDS) | {"id", "created_at", "orbcast"}

# The backfill hot path converts ~44 fields a record. Calling each converter costs more than the rest of
# the parse, and nearly every value already has its field's type (orbcast's own JSONL always does), so
# _build, generated from API_FIELDS below, keeps such a value as it is and calls the converter for the rest
# only. Each shortcut returns exactly what its converter would (tests/test_records.py checks this).
_SHORTCUTS: dict[Callable[[Any], Any], str] = {
    _str: "v is None or type(v) is str",
    _bool: "v is None or type(v) is bool",
    _int: "v is None or (type(v) is int and -_INT64_MAX - 1 <= v <= _INT64_MAX)",
    _float: "v is None or (type(v) is float and -_INF < v < _INF)",
}


def _make_builder(record_fields: tuple[Any, ...]) -> Callable[..., Any]:
    """``_build(cls, data, gen_id, created, start_ns, source, extra)``: the record, every argument positional
    (matching ~50 keywords costs more than the call)."""
    lines = ["def _build(cls, data, gen_id, created, start_ns, source, extra):", "    get = data.get"]
    namespace: dict[str, Any] = {"_INT64_MAX": _INT64_MAX, "_INF": float("inf")}
    given = {
        "id": "gen_id",
        "created_at": "created",
        "start_ns": "start_ns",
        "source": "source",
        "extra": "extra",
    }
    args = []
    for f in record_fields:
        if f.name in given:
            args.append(given[f.name])
        elif f.name in API_FIELDS:
            conv = API_FIELDS[f.name]
            namespace[f"_c_{f.name}"] = conv
            keep = _SHORTCUTS.get(conv, "v is None")
            lines.append(f"    v = get({f.name!r}); {f.name} = v if {keep} else _c_{f.name}(v)")
            args.append(f.name)
        else:  # orbcast's own fields: their defaults (immutable ones), set by from_api afterwards if given
            namespace[f"_d_{f.name}"] = f.default
            args.append(f"_d_{f.name}")
    lines.append(f"    return cls({', '.join(args)})")
    exec("\n".join(lines), namespace)  # noqa: S102 - code built above from this module's own table
    builder: Callable[..., Any] = namespace["_build"]
    return builder


@dataclass(slots=True)
class GenerationRecord:
    id: str
    created_at: str  # as given by the source
    start_ns: int  # created_at as unix nanoseconds
    upstream_id: str | None = None
    total_cost: float | None = None
    usage: float | None = None
    cache_discount: float | None = None
    upstream_inference_cost: float | None = None
    model: str | None = None
    app_id: int | None = None
    streamed: bool | None = None
    cancelled: bool | None = None
    provider_name: str | None = None
    latency: float | None = None
    moderation_latency: float | None = None
    generation_time: float | None = None
    finish_reason: str | None = None
    native_finish_reason: str | None = None
    tokens_prompt: int | None = None
    tokens_completion: int | None = None
    native_tokens_prompt: int | None = None
    native_tokens_completion: int | None = None
    native_tokens_reasoning: int | None = None
    native_tokens_cached: int | None = None
    native_tokens_completion_images: int | None = None
    num_media_prompt: int | None = None
    num_input_audio_prompt: int | None = None
    num_media_completion: int | None = None
    num_search_results: int | None = None
    num_fetches: int | None = None
    web_search_engine: str | None = None
    origin: str | None = None
    is_byok: bool | None = None
    external_user: str | None = None
    api_type: str | None = None
    preset_id: str | None = None
    router: str | None = None
    service_tier: str | None = None
    provider_responses: list[dict[str, Any]] | None = None
    user_agent: str | None = None
    http_referer: str | None = None
    data_region: str | None = None
    workspace_id: str | None = None
    request_id: str | None = None
    session_id: str | None = None
    response_cache_source_id: str | None = None
    # orbcast's own (not in /generation)
    api_key_name: str | None = None
    ttft_ms: float | None = None  # time to first token, where a source knows it (CSV)
    app_name: str | None = None
    source: str = "api"  # api | csv | summary | demo
    estimated: tuple[str, ...] = ()  # fields that are estimates (summary detail)
    content: dict[str, Any] | None = None  # /generation/content data, only with --with-content
    extra: dict[str, Any] = field(default_factory=dict)  # unknown fields, kept verbatim

    # -- derived

    @property
    def input_tokens(self) -> int | None:
        """Billing (native) prompt tokens, falling back to the normalized count."""
        return self.native_tokens_prompt if self.native_tokens_prompt is not None else self.tokens_prompt

    @property
    def output_tokens(self) -> int | None:
        if self.native_tokens_completion is not None:
            return self.native_tokens_completion
        return self.tokens_completion

    @property
    def duration_ms(self) -> float | None:
        """Span duration: ``generation_time``, falling back to ``latency``; unknown unless 0 < ms <= 24 h."""
        value = self.generation_time if self.generation_time is not None else self.latency
        return value if value is not None and 0 < value <= MAX_DURATION_MS else None

    @property
    def author(self) -> str | None:
        """Model author: the model slug before ``/``."""
        if self.model and "/" in self.model:
            return self.model.split("/", 1)[0]
        return None

    @property
    def failed(self) -> bool:
        """Every provider attempt failed, or OpenRouter normalized the finish reason to ``error``."""
        if self.finish_reason == "error":
            return True
        attempts = self.provider_responses or []
        return bool(attempts) and all(_int(a.get("status")) not in (None, 200) for a in attempts)

    # -- parsing

    @classmethod
    def from_api(cls, data: Any, *, source: str = "api") -> GenerationRecord:
        """From a ``/generation`` ``data`` object (or a JSONL line of orbcast's)."""
        if type(data) is not dict and not isinstance(data, Mapping):
            raise MalformedRecord(f"expected a JSON object, got {type(data).__name__}")
        gen_id = data.get("id")
        if not isinstance(gen_id, str) or not gen_id.strip():
            raise MalformedRecord("the record has no generation id ('id')")
        created = data.get("created_at")
        start_ns = parse_created_at(created)
        extra = {} if _KNOWN.issuperset(data) else {k: v for k, v in data.items() if k not in _KNOWN}
        record: GenerationRecord = _build(cls, data, gen_id.strip(), str(created), start_ns, source, extra)
        own = data.get("orbcast")
        if own and (type(own) is dict or isinstance(own, Mapping)):  # an empty one changes nothing
            record.api_key_name = _str(own.get("api_key_name"))
            record.ttft_ms = _float(own.get("ttft_ms"))
            record.app_name = _str(own.get("app_name"))
            record.source = _str(own.get("source")) or source
            est = own.get("estimated")
            record.estimated = tuple(str(e) for e in est) if isinstance(est, list) else ()
            content = own.get("content")
            record.content = dict(content) if isinstance(content, Mapping) else None
        return record

    @classmethod
    def from_jsonl_line(cls, line: str | bytes) -> GenerationRecord:
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise MalformedRecord(f"not valid JSON ({exc.msg})") from None
        return cls.from_api(data, source="api")

    @classmethod
    def from_csv_row(cls, row: Mapping[str, Any]) -> GenerationRecord:
        """From a row of the dashboard's per-generation CSV export (columns in the reference)."""
        gen_id = (row.get("generation_id") or "").strip()
        if not gen_id:
            raise MalformedRecord("the row has no generation_id")
        created = row.get("created_at")
        start_ns = parse_created_at(created)
        cost = _float(row.get("cost_total"))
        record = cls(
            id=gen_id,
            created_at=str(created),
            start_ns=start_ns,
            total_cost=cost,
            usage=cost,
            model=_str(row.get("model_permaslug")) or None,
            provider_name=_str(row.get("provider_name")) or None,
            cancelled=_bool(row.get("cancelled")),
            streamed=_bool(row.get("streamed")),
            external_user=_str(row.get("user")) or None,
            native_finish_reason=_str(row.get("finish_reason_raw")) or None,
            finish_reason=_str(row.get("finish_reason_normalized")) or None,
            generation_time=_float(row.get("generation_time_ms")),
            native_tokens_prompt=_int(row.get("tokens_prompt")),
            native_tokens_completion=_int(row.get("tokens_completion")),
            native_tokens_reasoning=_int(row.get("tokens_reasoning")),
            native_tokens_cached=_int(row.get("tokens_cached")),
            ttft_ms=_float(row.get("time_to_first_token_ms")),
            api_key_name=_str(row.get("api_key_name")) or None,
            app_name=_str(row.get("app_name")) or None,
            source="csv",
        )
        record.extra = {
            k: v for k, v in row.items() if k not in _CSV_MAPPED and k is not None and v not in (None, "")
        }
        return record

    # -- writing

    def to_dict(self) -> dict[str, Any]:
        """The JSONL form: the /generation object plus an ``orbcast`` key; reads back identically."""
        out: dict[str, Any] = {"id": self.id, "created_at": self.created_at}
        for name in API_FIELDS:
            out[name] = getattr(self, name)
        out.update(self.extra)
        own: dict[str, Any] = {"source": self.source}
        if self.api_key_name is not None:
            own["api_key_name"] = self.api_key_name
        if self.ttft_ms is not None:
            own["ttft_ms"] = self.ttft_ms
        if self.app_name is not None:
            own["app_name"] = self.app_name
        if self.estimated:
            own["estimated"] = list(self.estimated)
        if self.content is not None:
            own["content"] = self.content
        out["orbcast"] = own
        return out

    def to_json_line(self) -> bytes:
        data = self.to_dict()
        try:
            return orjson.dumps(data) + b"\n"
        except orjson.JSONEncodeError:  # an unknown field kept verbatim holds an int beyond 64 bits
            return json.dumps(data, separators=(",", ":"), default=str).encode() + b"\n"


CSV_COLUMNS = [
    "generation_id",
    "created_at",
    "cost_total",
    "cost_web_search",
    "cost_cache",
    "cost_file_processing",
    "byok_usage_inference",
    "tokens_prompt",
    "tokens_completion",
    "tokens_reasoning",
    "tokens_cached",
    "model_permaslug",
    "provider_name",
    "variant",
    "cancelled",
    "streamed",
    "user",
    "finish_reason_raw",
    "finish_reason_normalized",
    "generation_time_ms",
    "time_to_first_token_ms",
    "api_key_disabled",
    "api_key_name",
    "app_name",
]
_CSV_MAPPED = frozenset(
    {
        "generation_id",
        "created_at",
        "cost_total",
        "model_permaslug",
        "provider_name",
        "cancelled",
        "streamed",
        "user",
        "finish_reason_raw",
        "finish_reason_normalized",
        "generation_time_ms",
        "tokens_prompt",
        "tokens_completion",
        "tokens_reasoning",
        "tokens_cached",
        "time_to_first_token_ms",
        "api_key_name",
        "app_name",
    }
)
RECORD_FIELDS = tuple(f.name for f in fields(GenerationRecord))
_build = _make_builder(fields(GenerationRecord))
