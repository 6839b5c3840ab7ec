"""Record -> OTLP spans shaped like OpenRouter Broadcast's own (README: "Span reference").

The output is the OTLP/HTTP JSON form of one ``ResourceSpans`` per generation (hex IDs, integer
enums, lowerCamelCase, int64 as strings), so the default JSON export is a join of these dicts and the
protobuf encoder walks the same structure.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from orbcast.records import MAX_DURATION_MS, GenerationRecord

SERVICE_NAME = "openrouter"
SERVICE_VERSION = "1.0.0"
SCOPE_NAME = "openrouter"
ROOT_SPAN_NAME = "LLM Generation"
TRACE_NAME = "OpenRouter Request"
FAILED_MESSAGE = "Provider returned error"
SPAN_KIND_CLIENT = 3
STATUS_OK = 1
STATUS_ERROR = 2
INT64_MAX = 2**63 - 1
CONTENT_LIMIT = 1_000_000  # characters per content attribute; longer values are cut and flagged

_OPERATIONS = {
    "completions": "chat",
    "embeddings": "embeddings",
    "rerank": "rerank",
    "tts": "text_to_speech",
    "stt": "speech_to_text",
    "video": "generate_content",
    "image": "generate_content",
}


@dataclass(frozen=True)
class SpanOptions:
    """Run-wide choices for the conversion."""

    attrs: Mapping[str, str] = field(default_factory=dict)  # --attr K=V -> trace.metadata.K
    api_key_metadata: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    include_content: bool = False
    privacy: bool = False


def trace_id_for(generation_id: str) -> str:
    """Broadcast's trace ID: sha256(generation id) hex, first 32 characters."""
    return hashlib.sha256(generation_id.encode("utf-8")).hexdigest()[:32]


def root_span_id_for(generation_id: str) -> str:
    """Broadcast's root span ID: sha256(generation id) hex, first 16 characters."""
    return hashlib.sha256(generation_id.encode("utf-8")).hexdigest()[:16]


def attempt_span_id_for(generation_id: str, n: int) -> str:
    """Provider attempt N (1-based): sha256("<gen id>:attempt-N") hex, first 16 characters."""
    return hashlib.sha256(f"{generation_id}:attempt-{n}".encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- attribute helpers


def _s(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def _i(key: str, value: int) -> dict[str, Any]:
    return {"key": key, "value": {"intValue": str(value)}}


def _d(key: str, value: float) -> dict[str, Any]:
    return {"key": key, "value": {"doubleValue": float(value)}}


def _b(key: str, value: bool) -> dict[str, Any]:
    return {"key": key, "value": {"boolValue": value}}


def _add_int(out: list[dict[str, Any]], key: str, value: float | int | None) -> None:
    if value is not None and -INT64_MAX <= value <= INT64_MAX:
        out.append(_i(key, int(value)))


def _add_str(out: list[dict[str, Any]], key: str, value: str | None) -> None:
    if value:
        out.append(_s(key, value))


def _json_text(value: Any) -> str:
    """JSON text of a value kept verbatim from the source (which may hold ints beyond 64 bits)."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _duration_ns(ms: Any) -> int:
    """A duration in ms as ns; 0 when missing, not a number, negative or absurdly long."""
    if isinstance(ms, bool) or not isinstance(ms, int | float) or not 0 < ms <= MAX_DURATION_MS:
        return 0
    return int(ms * 1_000_000)


def _add_content(out: list[dict[str, Any]], key: str, value: Any) -> None:
    text = value if isinstance(value, str) else _json_text(value)
    if len(text) > CONTENT_LIMIT:
        out.append(_s(key, text[:CONTENT_LIMIT]))
        out.append(_b(f"{key}.truncated", True))
    else:
        out.append(_s(key, text))


# ----------------------------------------------------------------------------- conversion


def resource_spans(record: GenerationRecord, options: SpanOptions | None = None) -> dict[str, Any]:
    """One generation as an OTLP JSON ``ResourceSpans``: the root span plus one per provider attempt."""
    options = options or SpanOptions()
    gen_id = record.id
    digest = hashlib.sha256(gen_id.encode("utf-8")).hexdigest()
    trace_id, root_id = digest[:32], digest[:16]
    start = record.start_ns
    end = start + _duration_ns(record.duration_ms)

    spans = [_root_span(record, options, trace_id, root_id, start, end)]
    offset = start
    for index, attempt in enumerate(record.provider_responses or []):
        n = index + 1
        a_start = offset
        a_end = a_start + _duration_ns(attempt.get("latency"))
        a_end = min(a_end, end) if end > start else a_end
        offset = a_end
        provider = attempt.get("provider_name") or "unknown"
        attrs = [_s("gen_ai.response.id", f"{gen_id}:attempt-{n}"), _s("span.type", "span")]
        _add_int(attrs, "span.metadata.attempt_index", index)
        status = attempt.get("status")
        if isinstance(status, int | float) and not isinstance(status, bool):
            _add_int(attrs, "span.metadata.status_code", status)
        if isinstance(attempt.get("is_byok"), bool):
            attrs.append(_b("span.metadata.is_byok", attempt["is_byok"]))
        for key in ("endpoint_id", "model_permaslug"):
            if isinstance(attempt.get(key), str) and attempt[key]:
                attrs.append(_s(f"span.metadata.{key}", attempt[key]))
        spans.append(
            {
                "traceId": trace_id,
                "spanId": attempt_span_id_for(gen_id, n),
                "parentSpanId": root_id,
                "name": f"provider attempt {n}: {provider}",
                "kind": SPAN_KIND_CLIENT,
                "startTimeUnixNano": str(a_start),
                "endTimeUnixNano": str(a_end),
                "attributes": attrs,
                "status": {},
            }
        )
    return {
        "resource": {
            "attributes": [
                _s("service.name", SERVICE_NAME),
                _s("service.version", SERVICE_VERSION),
                _s("openrouter.trace.id", gen_id),
            ]
        },
        "scopeSpans": [{"scope": {"name": SCOPE_NAME}, "spans": spans}],
    }


def _root_span(
    record: GenerationRecord,
    options: SpanOptions,
    trace_id: str,
    span_id: str,
    start: int,
    end: int,
) -> dict[str, Any]:
    a: list[dict[str, Any]] = [_s("gen_ai.operation.name", _OPERATIONS.get(record.api_type or "", "chat"))]
    author = record.author
    if author:
        a.append(_s("gen_ai.provider.name", author))
        a.append(_s("gen_ai.system", author))
    if record.model:
        a.append(_s("gen_ai.request.model", record.model))
        a.append(_s("gen_ai.response.model", record.model))
    a.append(_s("gen_ai.response.id", record.id))
    if record.finish_reason:
        a.append(_s("gen_ai.response.finish_reason", record.finish_reason))
        a.append(_s("gen_ai.response.finish_reasons", orjson.dumps([record.finish_reason]).decode()))
    inp, out = record.input_tokens, record.output_tokens
    _add_int(a, "gen_ai.usage.input_tokens", inp)
    _add_int(a, "gen_ai.usage.output_tokens", out)
    if inp is not None or out is not None:
        _add_int(a, "gen_ai.usage.total_tokens", (inp or 0) + (out or 0))
    _add_int(a, "gen_ai.usage.input_tokens.cached", record.native_tokens_cached)
    _add_int(a, "gen_ai.usage.output_tokens.reasoning", record.native_tokens_reasoning)
    _add_int(a, "gen_ai.usage.output_tokens.image", record.native_tokens_completion_images)
    if record.total_cost is not None:
        a.append(_d("gen_ai.usage.total_cost", record.total_cost))
    if record.streamed is not None:
        a.append(_b("gen_ai.request.stream", record.streamed))
    _add_str(a, "user.id", record.external_user)
    _add_str(a, "session.id", record.session_id)
    a.append(_s("trace.name", TRACE_NAME))
    a.append(_s("span.type", "generation"))
    a.append(_s("span.level", "DEFAULT"))

    # OpenRouter metadata, as real Broadcast traffic spells it
    m = "trace.metadata.openrouter."
    _add_str(a, m + "provider_name", record.provider_name)
    _add_str(a, m + "finish_reason", record.native_finish_reason)
    _add_int(a, m + "first_token_ms", record.ttft_ms)
    _add_str(a, m + "api_key_name", record.api_key_name)
    if record.provider_responses:
        a.append(_s(m + "provider_responses", _json_text(record.provider_responses)))
    g = "trace.metadata.openrouter_generation."
    _add_int(a, g + "tokens_prompt", record.tokens_prompt)
    _add_int(a, g + "tokens_completion", record.tokens_completion)
    if record.usage is not None:
        a.append(_d(g + "usage", record.usage))
    if record.is_byok is not None:
        a.append(_b(g + "is_byok", record.is_byok))
    if record.streamed is not None:
        a.append(_b(g + "streamed", record.streamed))
    if record.cancelled is not None:
        a.append(_b(g + "cancelled", record.cancelled))

    # run-wide custom metadata: config per API key name, then --attr (which wins)
    custom: dict[str, str] = {}
    if record.api_key_name and record.api_key_name in options.api_key_metadata:
        custom.update(options.api_key_metadata[record.api_key_name])
    custom.update(options.attrs)
    for key, value in custom.items():
        a.append(_s(f"trace.metadata.{key}", value))

    a.append(_s("orbcast.source", record.source))
    if record.estimated:
        a.append({"key": "orbcast.estimated", "value": _string_array(record.estimated)})

    if options.include_content and not options.privacy and record.content:
        _content_attributes(a, record.content)

    span: dict[str, Any] = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": ROOT_SPAN_NAME,
        "kind": SPAN_KIND_CLIENT,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(end),
        "attributes": a,
    }
    if record.failed:
        span["status"] = {"code": STATUS_ERROR, "message": FAILED_MESSAGE}
        a.append(_s("error.type", "provider_error"))
    else:
        span["status"] = {"code": STATUS_OK}
    return span


def _string_array(values: Iterable[str]) -> dict[str, Any]:
    return {"arrayValue": {"values": [{"stringValue": v} for v in values]}}


def _content_attributes(a: list[dict[str, Any]], content: Mapping[str, Any]) -> None:
    """Broadcast's content keys, from the /generation/content ``data`` object."""
    prompt = content.get("input")
    completion = content.get("output")
    if prompt:
        for key in ("gen_ai.prompt", "trace.input", "span.input"):
            _add_content(a, key, prompt)
    if completion:
        for key in ("gen_ai.completion", "trace.output", "span.output"):
            _add_content(a, key, completion)


def encode_json(resource_spans_list: Iterable[dict[str, Any]]) -> bytes:
    """The request body for a batch, as OTLP/HTTP JSON bytes."""
    return orjson.dumps({"resourceSpans": list(resource_spans_list)})


def span_count(rs: Mapping[str, Any]) -> int:
    return sum(len(ss.get("spans", ())) for ss in rs.get("scopeSpans", ()))
