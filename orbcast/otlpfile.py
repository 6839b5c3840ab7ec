"""OTLP/HTTP JSON files as replay input: one request per file, or one request per line.

Each ``ResourceSpans`` is re-sent as it is (the spans are not converted again). A resource whose spans
belong to several traces is split by trace, keeping its resource and scopes, so that the ledger can
record each trace once: the ledger key is the generation id when the resource carries Broadcast's
``openrouter.trace.id`` (so replaying orbcast's own ``--write-otlp`` output and backfilling the same
generations agree), else ``otlp:<traceId>:<digest of its span ids>``.

IDs are checked before anything is sent: Tempo rejects a whole request for one bad ID.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from orbcast.errors import UsageError
from orbcast.sources import Problems, sniff_kind

FILE_KINDS = ("csv", "jsonl", "ids", "otlp")
_MAX_WHOLE_FILE = 256 * 1024 * 1024


@dataclass(slots=True)
class OtlpUnit:
    key: str
    trace_id: str
    resource_spans: dict[str, Any]
    spans: int
    start_ns: int | None
    cost: float | None


def detect_kind(path: str, forced: str | None = None) -> str:
    """csv, jsonl, ids or otlp, from the content (``--format`` overrides)."""
    if forced:
        if forced not in FILE_KINDS:
            raise UsageError(f"--format {forced!r}: expected one of {', '.join(FILE_KINDS)}")
        return forced
    if path == "-":
        raise UsageError(
            "replay reads files, not stdin: use orbcast backfill --source ids:- for a piped id list"
        )
    return sniff_kind(path)


def _check_id(value: Any, size: int, what: str, *, allow_empty: bool = False) -> str | None:
    """The reason ``value`` is not a valid OTLP hex ID, or None."""
    if allow_empty and value in (None, ""):
        return None
    if not isinstance(value, str) or len(value) != size * 2:
        return f"{what} {value!r} is not {size * 2} hex characters"
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return f"{what} {value!r} is not hex"
    if not any(raw):
        return f"{what} is all zeros"
    return None


def _nanos(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _gen_id(resource: Mapping[str, Any]) -> str | None:
    for kv in resource.get("attributes") or ():
        if isinstance(kv, Mapping) and kv.get("key") == "openrouter.trace.id":
            value = (kv.get("value") or {}).get("stringValue")
            return value if isinstance(value, str) and value else None
    return None


def _cost(span: Mapping[str, Any]) -> float | None:
    for kv in span.get("attributes") or ():
        if isinstance(kv, Mapping) and kv.get("key") == "gen_ai.usage.total_cost":
            value = (kv.get("value") or {}).get("doubleValue")
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
    return None


def split_resource_spans(rs: Mapping[str, Any]) -> tuple[list[OtlpUnit], str | None]:
    """One ``ResourceSpans`` as units (one per trace); or ([], reason) when it cannot be sent."""
    if not isinstance(rs, Mapping):
        return [], "a resourceSpans item is not an object"
    resource = rs.get("resource") or {}
    scopes = rs.get("scopeSpans") or rs.get("scope_spans") or []
    if not isinstance(resource, Mapping) or not isinstance(scopes, list):
        return [], "resource or scopeSpans has the wrong type"
    by_trace: dict[str, list[tuple[int, Mapping[str, Any]]]] = {}
    for index, scope in enumerate(scopes):
        if not isinstance(scope, Mapping) or not isinstance(scope.get("spans") or [], list):
            return [], "a scopeSpans item is not an object with a spans list"
        for span in scope.get("spans") or []:
            if not isinstance(span, Mapping):
                return [], "a span is not an object"
            reason = (
                _check_id(span.get("traceId"), 16, "traceId")
                or _check_id(span.get("spanId"), 8, "spanId")
                or _check_id(span.get("parentSpanId"), 8, "parentSpanId", allow_empty=True)
            )
            if reason:
                return [], reason
            by_trace.setdefault(str(span["traceId"]), []).append((index, span))
    if not by_trace:
        return [], None  # nothing to send (an empty resource)
    gen_id = _gen_id(resource) if len(by_trace) == 1 else None
    units = []
    for trace_id, members in by_trace.items():
        if len(by_trace) == 1:
            unit_rs = {k: v for k, v in rs.items() if k != "scope_spans"}
            unit_rs["scopeSpans"] = scopes
        else:
            unit_rs = {k: v for k, v in rs.items() if k not in ("scopeSpans", "scope_spans")}
            unit_rs["scopeSpans"] = [
                {
                    **{k: v for k, v in scopes[i].items() if k != "spans"},
                    "spans": [s for j, s in members if j == i],
                }
                for i in sorted({i for i, _ in members})
            ]
        spans = [s for _, s in members]
        if gen_id:
            key = gen_id
        else:
            digest = hashlib.sha256(",".join(sorted(str(s["spanId"]).lower() for s in spans)).encode())
            key = f"otlp:{trace_id.lower()}:{digest.hexdigest()[:16]}"
        starts = [n for n in (_nanos(s.get("startTimeUnixNano")) for s in spans) if n is not None]
        costs = [c for c in (_cost(s) for s in spans) if c is not None]
        units.append(
            OtlpUnit(
                key=key,
                trace_id=trace_id.lower(),
                resource_spans=unit_rs,
                spans=len(spans),
                start_ns=min(starts) if starts else None,
                cost=sum(costs) if costs else None,
            )
        )
    return units, None


def _requests(path: str, problems: Problems) -> Iterator[tuple[int, Any]]:
    """(line number, parsed request) for a file of one request, or of one request per line."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not a file") from None
    with fh:
        first = b""
        for raw in fh:
            if raw.strip():
                first = raw
                break
        try:
            data = orjson.loads(first)
            per_line = isinstance(data, dict)
        except orjson.JSONDecodeError:
            per_line = False
        fh.seek(0)
        if not per_line:
            blob = fh.read(_MAX_WHOLE_FILE + 1)
            if len(blob) > _MAX_WHOLE_FILE:
                raise UsageError(f"{path}: a single OTLP request larger than 256 MiB; split it into lines")
            try:
                yield 1, orjson.loads(blob)
            except orjson.JSONDecodeError as exc:
                problems.report(path, 1, f"not valid JSON ({exc.msg})")
            return
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                yield number, orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                problems.report(path, number, f"not valid JSON ({exc.msg})")


def iter_otlp_units(path: str, problems: Problems) -> Iterator[OtlpUnit]:
    """Every sendable unit of an OTLP/HTTP JSON file; bad requests are reported with their line number."""
    for number, request in _requests(path, problems):
        items = request.get("resourceSpans") if isinstance(request, dict) else None
        if items is None and isinstance(request, dict):
            items = request.get("resource_spans")
        if not isinstance(items, list):
            problems.report(path, number, "not an OTLP/HTTP JSON request (no resourceSpans list)")
            continue
        for rs in items:
            units, reason = split_resource_spans(rs)
            if reason:
                problems.report(path, number, reason)
                continue
            yield from units
