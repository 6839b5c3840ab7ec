"""The backfill hot path: one generation straight to its OTLP/HTTP JSON bytes.

:func:`resource_spans_json` returns exactly ``orjson.dumps(spans.resource_spans(record, options))``,
byte for byte (tests/test_otlp_encoding.py holds the two together on recorded and generated records),
without building the hundred-odd small dicts per generation: attribute prefixes are encoded once, only
values are encoded per record, and the exporter joins the fragments into request bodies. About twice
as fast as the dict path. :mod:`orbcast.spans` stays the reference: change it first, then mirror here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import orjson

from orbcast.records import MAX_DURATION_MS, GenerationRecord, _int
from orbcast.spans import (
    _OPERATIONS,
    FAILED_MESSAGE,
    INT64_MAX,
    ROOT_SPAN_NAME,
    SCOPE_NAME,
    SERVICE_NAME,
    SERVICE_VERSION,
    SPAN_KIND_CLIENT,
    STATUS_ERROR,
    STATUS_OK,
    SpanOptions,
    _content_attributes,
    _duration_ns,
    _json_text,
    _s,
    _string_array,
    attempt_span_id_for,
)

_dumps = orjson.dumps
_INT64_MIN = -INT64_MAX - 1
_PREFIXES: dict[tuple[str, str], bytes] = {}


def _prefix(key: str, kind: str) -> bytes:
    """``{"key":"<key>","value":{"<kind>":``: an attribute up to its value (then ``}}`` closes it)."""
    cached = _PREFIXES.get((key, kind))
    if cached is None:
        cached = b'{"key":' + _dumps(key) + b',"value":{"' + kind.encode() + b'":'
        if len(_PREFIXES) < 10_000:
            _PREFIXES[(key, kind)] = cached
    return cached


def _string_attr(key: str, value: str) -> bytes:
    return _prefix(key, "stringValue") + _dumps(value) + b"}}"


# Encoded attributes of the values that repeat from record to record (models, providers, finish reasons,
# users...): one dict lookup instead of encoding them again. Bounded, so a stream of unique values only
# misses.
_MEMO_LIMIT = 4096


def _memo(cache: dict[str, bytes], make: Callable[[str], bytes], value: str) -> bytes:
    """``make(value)`` remembered in ``cache``; call as ``cache.get(value) or _memo(cache, make, value)``."""
    encoded = make(value)
    if len(cache) < _MEMO_LIMIT:
        cache[value] = encoded
    return encoded


# Prefixes of the attributes every generation has, looked up once here rather than per record.
_S = "stringValue"
_OP = _prefix("gen_ai.operation.name", _S)
_PROVIDER = _prefix("gen_ai.provider.name", _S)
_SYSTEM = _prefix("gen_ai.system", _S)
_REQ_MODEL = _prefix("gen_ai.request.model", _S)
_RESP_MODEL = _prefix("gen_ai.response.model", _S)
_RESP_ID = _prefix("gen_ai.response.id", _S)
_FINISH = _prefix("gen_ai.response.finish_reason", _S)
_FINISHES = _prefix("gen_ai.response.finish_reasons", _S)
_IN = _prefix("gen_ai.usage.input_tokens", "intValue")
_OUT = _prefix("gen_ai.usage.output_tokens", "intValue")
_TOTAL = _prefix("gen_ai.usage.total_tokens", "intValue")
_CACHED = _prefix("gen_ai.usage.input_tokens.cached", "intValue")
_REASONING = _prefix("gen_ai.usage.output_tokens.reasoning", "intValue")
_IMAGE = _prefix("gen_ai.usage.output_tokens.image", "intValue")
_COST = _prefix("gen_ai.usage.total_cost", "doubleValue")
_STREAM = _prefix("gen_ai.request.stream", "boolValue")
_USER = _prefix("user.id", _S)
_SESSION = _prefix("session.id", _S)
_M = "trace.metadata.openrouter."
_M_PROVIDER = _prefix(_M + "provider_name", _S)
_M_FINISH = _prefix(_M + "finish_reason", _S)
_M_TTFT = _prefix(_M + "first_token_ms", "intValue")
_M_KEY = _prefix(_M + "api_key_name", _S)
_M_RESPONSES = _prefix(_M + "provider_responses", _S)
_G = "trace.metadata.openrouter_generation."
_G_PROMPT = _prefix(_G + "tokens_prompt", "intValue")
_G_COMPLETION = _prefix(_G + "tokens_completion", "intValue")
_G_USAGE = _prefix(_G + "usage", "doubleValue")
_G_BYOK = _prefix(_G + "is_byok", "boolValue")
_G_STREAMED = _prefix(_G + "streamed", "boolValue")
_G_CANCELLED = _prefix(_G + "cancelled", "boolValue")
_SOURCE = _prefix("orbcast.source", _S)
_A_INDEX = _prefix("span.metadata.attempt_index", "intValue")
_A_STATUS = _prefix("span.metadata.status_code", "intValue")
_A_BYOK = _prefix("span.metadata.is_byok", "boolValue")
_TRUE, _FALSE = b"true}}", b"false}}"

_RS_HEAD = (
    b'{"resource":{"attributes":['
    + _dumps(_s("service.name", SERVICE_NAME))
    + b","
    + _dumps(_s("service.version", SERVICE_VERSION))
    + b","
    + _prefix("openrouter.trace.id", _S)
)
_RS_MID = b'}}]},"scopeSpans":[{"scope":' + _dumps({"name": SCOPE_NAME}) + b',"spans":['
_RS_TAIL = b"]}]}"
_ROOT_HEAD = (
    b'{"traceId":"%s","spanId":"%s","name":'
    + _dumps(ROOT_SPAN_NAME)
    + b',"kind":%d,"startTimeUnixNano":"%d","endTimeUnixNano":"%d","attributes":['
)
_ROOT_CONSTANTS = b",".join(
    _dumps(_s(k, v))
    for k, v in (("trace.name", "OpenRouter Request"), ("span.type", "generation"), ("span.level", "DEFAULT"))
)
_STATUS_OK = b'],"status":' + _dumps({"code": STATUS_OK}) + b"}"
_STATUS_ERROR = (
    b","
    + _dumps(_s("error.type", "provider_error"))
    + b'],"status":'
    + _dumps({"code": STATUS_ERROR, "message": FAILED_MESSAGE})
    + b"}"
)
_ATTEMPT = (
    b'{"traceId":"%s","spanId":"%s","parentSpanId":"%s","name":%s,"kind":%d,'
    b'"startTimeUnixNano":"%d","endTimeUnixNano":"%d","attributes":[%s],"status":{}}'
)
_ATTEMPT_TYPE = _dumps(_s("span.type", "span"))
_DEFAULT_OPTIONS = SpanOptions()


def _model_attrs(model: str) -> bytes:
    """provider/system (the author, when the slug has one) and request/response model."""
    out = b""
    if "/" in model:
        author = _dumps(model.split("/", 1)[0])
        if author != b'""':
            out = _PROVIDER + author + b"}}," + _SYSTEM + author + b"}},"
    value = _dumps(model)
    return out + _REQ_MODEL + value + b"}}," + _RESP_MODEL + value + b"}}"


def _finish_attrs(finish: str) -> bytes:
    return _FINISH + _dumps(finish) + b"}}," + _FINISHES + _dumps(_dumps([finish]).decode()) + b"}}"


def _string_maker(prefix: bytes) -> Callable[[str], bytes]:
    def make(value: str) -> bytes:
        return prefix + _dumps(value) + b"}}"

    return make


_OP_MAKE = _string_maker(_OP)
_USER_MAKE = _string_maker(_USER)
_M_PROVIDER_MAKE = _string_maker(_M_PROVIDER)
_M_FINISH_MAKE = _string_maker(_M_FINISH)
_M_KEY_MAKE = _string_maker(_M_KEY)
_SOURCE_MAKE = _string_maker(_SOURCE)
_OP_MEMO: dict[str, bytes] = {}
_MODEL_MEMO: dict[str, bytes] = {}
_FINISH_MEMO: dict[str, bytes] = {}
_USER_MEMO: dict[str, bytes] = {}
_M_PROVIDER_MEMO: dict[str, bytes] = {}
_M_FINISH_MEMO: dict[str, bytes] = {}
_M_KEY_MEMO: dict[str, bytes] = {}
_SOURCE_MEMO: dict[str, bytes] = {}


def resource_spans_json(record: GenerationRecord, options: SpanOptions | None = None) -> bytes:
    """``orjson.dumps(resource_spans(record, options))`` without the intermediate dicts."""
    return resource_spans_json_traced(record, options)[0]


def resource_spans_json_traced(
    record: GenerationRecord, options: SpanOptions | None = None
) -> tuple[bytes, str]:
    """:func:`resource_spans_json` and the trace ID (``spans.trace_id_for(record.id)``), hashed once."""
    options = options or _DEFAULT_OPTIONS
    gen_id = record.id
    digest = hashlib.sha256(gen_id.encode("utf-8")).hexdigest()
    hex_trace_id = digest[:32]
    trace_id, root_id = hex_trace_id.encode(), digest[:16].encode()
    start = record.start_ns
    end = start + _duration_ns(record.duration_ms)
    gid = _dumps(gen_id)

    spans = [b""]  # the root span, made last: it needs to know whether every attempt failed
    offset = start
    attempts = record.provider_responses
    all_failed = bool(attempts)  # GenerationRecord.failed, worked out on the way
    for index, attempt in enumerate(attempts or ()):
        n = index + 1
        a_start = offset
        latency = attempt.get("latency")
        if type(latency) is int and 0 < latency <= MAX_DURATION_MS:  # the usual case, as _duration_ns has it
            a_end = a_start + latency * 1_000_000
        else:
            a_end = a_start + _duration_ns(latency)
        a_end = min(a_end, end) if end > start else a_end
        offset = a_end
        provider = attempt.get("provider_name") or "unknown"
        # gid is the quoted id; ":attempt-N" needs no escaping, so this equals dumps(f"{gen_id}:attempt-{n}")
        attrs = [b'%s%s:attempt-%d"}},%s,%s"%d"}}' % (_RESP_ID, gid[:-1], n, _ATTEMPT_TYPE, _A_INDEX, index)]
        status = attempt.get("status")
        if type(status) is int:
            if -INT64_MAX <= status <= INT64_MAX:
                attrs.append(b'%s"%d"}}' % (_A_STATUS, status))
            if all_failed and (status == 200 or not _INT64_MIN <= status <= INT64_MAX):
                all_failed = False  # _int(status) in (None, 200)
        else:
            if (
                isinstance(status, int | float)
                and not isinstance(status, bool)
                and -INT64_MAX <= status <= INT64_MAX
            ):
                attrs.append(b'%s"%d"}}' % (_A_STATUS, int(status)))
            if all_failed and _int(status) in (None, 200):
                all_failed = False
        byok = attempt.get("is_byok")
        if isinstance(byok, bool):
            attrs.append(_A_BYOK + (_TRUE if byok else _FALSE))
        value = attempt.get("endpoint_id")
        if isinstance(value, str) and value:
            attrs.append(_string_attr("span.metadata.endpoint_id", value))
        value = attempt.get("model_permaslug")
        if isinstance(value, str) and value:
            attrs.append(_string_attr("span.metadata.model_permaslug", value))
        span_id = attempt_span_id_for(gen_id, n).encode()
        name = _dumps(f"provider attempt {n}: {provider}")
        spans.append(
            _ATTEMPT % (trace_id, span_id, root_id, name, SPAN_KIND_CLIENT, a_start, a_end, b",".join(attrs))
        )
    failed = all_failed or record.finish_reason == "error"
    spans[0] = _root_span(record, options, gid, trace_id, root_id, start, end, failed)
    return b"".join((_RS_HEAD, gid, _RS_MID, b",".join(spans), _RS_TAIL)), hex_trace_id


def _root_span(
    record: GenerationRecord,
    options: SpanOptions,
    gid: bytes,
    trace_id: bytes,
    span_id: bytes,
    start: int,
    end: int,
    failed: bool,
) -> bytes:
    operation = _OPERATIONS.get(record.api_type or "", "chat")
    a = [_OP_MEMO.get(operation) or _memo(_OP_MEMO, _OP_MAKE, operation)]
    append = a.append
    model = record.model
    if model:
        append(_MODEL_MEMO.get(model) or _memo(_MODEL_MEMO, _model_attrs, model))
    append(_RESP_ID + gid + b"}}")
    finish = record.finish_reason
    if finish:
        append(_FINISH_MEMO.get(finish) or _memo(_FINISH_MEMO, _finish_attrs, finish))
    inp, out = record.input_tokens, record.output_tokens
    lo, hi = -INT64_MAX, INT64_MAX
    if inp is not None and lo <= inp <= hi:
        append(b'%s"%d"}}' % (_IN, inp))
    if out is not None and lo <= out <= hi:
        append(b'%s"%d"}}' % (_OUT, out))
    if inp is not None or out is not None:
        total = (inp or 0) + (out or 0)
        if lo <= total <= hi:
            append(b'%s"%d"}}' % (_TOTAL, total))
    number = record.native_tokens_cached
    if number is not None and lo <= number <= hi:
        append(b'%s"%d"}}' % (_CACHED, number))
    number = record.native_tokens_reasoning
    if number is not None and lo <= number <= hi:
        append(b'%s"%d"}}' % (_REASONING, number))
    number = record.native_tokens_completion_images
    if number is not None and lo <= number <= hi:
        append(b'%s"%d"}}' % (_IMAGE, number))
    if record.total_cost is not None:
        append(_COST + _dumps(float(record.total_cost)) + b"}}")
    streamed = record.streamed
    if streamed is not None:
        append(_STREAM + (_TRUE if streamed else _FALSE))
    user = record.external_user
    if user:
        append(_USER_MEMO.get(user) or _memo(_USER_MEMO, _USER_MAKE, user))
    if record.session_id:
        append(_SESSION + _dumps(record.session_id) + b"}}")
    append(_ROOT_CONSTANTS)

    provider = record.provider_name
    if provider:
        append(_M_PROVIDER_MEMO.get(provider) or _memo(_M_PROVIDER_MEMO, _M_PROVIDER_MAKE, provider))
    finish = record.native_finish_reason
    if finish:
        append(_M_FINISH_MEMO.get(finish) or _memo(_M_FINISH_MEMO, _M_FINISH_MAKE, finish))
    ttft = record.ttft_ms
    if ttft is not None and lo <= ttft <= hi:
        append(b'%s"%d"}}' % (_M_TTFT, int(ttft)))
    key_name = record.api_key_name
    if key_name:
        append(_M_KEY_MEMO.get(key_name) or _memo(_M_KEY_MEMO, _M_KEY_MAKE, key_name))
    if record.provider_responses:
        append(_M_RESPONSES + _dumps(_json_text(record.provider_responses)) + b"}}")
    number = record.tokens_prompt
    if number is not None and lo <= number <= hi:
        append(b'%s"%d"}}' % (_G_PROMPT, number))
    number = record.tokens_completion
    if number is not None and lo <= number <= hi:
        append(b'%s"%d"}}' % (_G_COMPLETION, number))
    if record.usage is not None:
        append(_G_USAGE + _dumps(float(record.usage)) + b"}}")
    if record.is_byok is not None:
        append(_G_BYOK + (_TRUE if record.is_byok else _FALSE))
    if streamed is not None:
        append(_G_STREAMED + (_TRUE if streamed else _FALSE))
    if record.cancelled is not None:
        append(_G_CANCELLED + (_TRUE if record.cancelled else _FALSE))

    if options.attrs or options.api_key_metadata:
        custom: dict[str, str] = {}
        if record.api_key_name and record.api_key_name in options.api_key_metadata:
            custom.update(options.api_key_metadata[record.api_key_name])
        custom.update(options.attrs)
        for key, val in custom.items():
            append(_string_attr(f"trace.metadata.{key}", val))

    source = record.source
    append(_SOURCE_MEMO.get(source) or _memo(_SOURCE_MEMO, _SOURCE_MAKE, source))
    if record.estimated:
        append(_dumps({"key": "orbcast.estimated", "value": _string_array(record.estimated)}))
    if options.include_content and not options.privacy and record.content:
        content: list[dict[str, Any]] = []
        _content_attributes(content, record.content)
        a.extend(_dumps(kv) for kv in content)

    head = _ROOT_HEAD % (trace_id, span_id, SPAN_KIND_CLIENT, start, end)
    return head + b",".join(a) + (_STATUS_ERROR if failed else _STATUS_OK)
