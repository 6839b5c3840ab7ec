"""A built-in, seeded, realistic OpenRouter history for ``orbcast demo`` (no account, no network).

Generations are produced as ``/generation`` ``data`` objects (plus the ``orbcast`` key that carries what
only the dashboard CSV export knows: API key name and time to first token) and parsed with
:meth:`GenerationRecord.from_api`, so they take exactly the path real history takes. The same seed and
the same ``now`` give the same history, byte for byte; timestamps fall in the 7 days before ``now``.
"""

from __future__ import annotations

import hashlib
import math
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from orbcast.records import GenerationRecord

DEFAULT_SEED = 42
DEFAULT_COUNT = 600
DAYS = 7
VIRTUAL_NOW = datetime(2026, 1, 9, 18, 0, tzinfo=UTC)  # a Friday evening: the week before it is drawn
_ALNUM = string.ascii_letters + string.digits
T = TypeVar("T")


def _shares(spec: str) -> tuple[tuple[str, float], ...]:
    """``"OpenAI=0.8,Azure=0.2"`` -> ``(("OpenAI", 0.8), ("Azure", 0.2))``."""
    return tuple((name, float(share)) for name, _, share in (p.partition("=") for p in spec.split(",")))


@dataclass(frozen=True)
class Provider:
    name: str
    ttft_ms: float  # median time to first token for a short prompt
    tokens_per_s: float  # output speed
    fail_rate: float  # chance that an attempt fails and OpenRouter falls back


@dataclass(frozen=True)
class Model:
    slug: str
    input_price: float  # USD per million prompt tokens
    output_price: float  # USD per million completion tokens (reasoning included)
    cached_price: float | None  # USD per million cached prompt tokens; None: no prompt caching
    serving: str  # serving providers and their share of traffic, "Name=share,..."
    reasoning: float = 0.0  # reasoning tokens as a share of the visible output
    speed: float = 1.0  # multiplier on the provider's output speed
    normalize: float = 1.0  # OpenRouter-normalized token count / native count

    @property
    def providers(self) -> tuple[tuple[str, float], ...]:
        return _shares(self.serving)


@dataclass(frozen=True)
class Workload:
    """One kind of traffic: an API key, the models it uses and the shape of its requests."""

    api_key: str
    models: str  # "slug=share,..."
    prompt: tuple[float, float]  # median and log-sigma of prompt tokens
    output: tuple[float, float]  # median and log-sigma of visible completion tokens
    turns: tuple[int, int]  # generations per session (or per batch run)
    gap_s: tuple[float, float]  # pause between them
    stream: float  # share of streamed requests
    tools: float  # share ending in tool_calls
    weight: float  # share of sessions
    users: tuple[str, ...]
    sessions: bool
    hours: tuple[int, int]  # busy hours (UTC)
    search: float = 0.0  # share using web search


_P = Provider
PROVIDERS = {
    p.name: p
    for p in (
        _P("OpenAI", 420, 85, 0.03),
        _P("Azure", 520, 70, 0.02),
        _P("Anthropic", 950, 62, 0.06),
        _P("Amazon Bedrock", 1150, 55, 0.03),
        _P("Google Vertex", 650, 140, 0.03),
        _P("Google AI Studio", 560, 160, 0.05),
        _P("Groq", 160, 420, 0.05),
        _P("Together", 480, 95, 0.04),
        _P("DeepInfra", 620, 60, 0.05),
        _P("Fireworks", 380, 110, 0.03),
    )
}
_M = Model
# fmt: off
MODELS = {
    m.slug: m
    for m in (
        _M("openai/gpt-4o-mini", 0.15, 0.60, 0.075, "OpenAI=0.8,Azure=0.2", speed=1.2),
        _M("openai/gpt-4.1", 2.0, 8.0, 0.50, "OpenAI=0.7,Azure=0.3"),
        _M("anthropic/claude-sonnet-4", 3.0, 15.0, 0.30,
           "Anthropic=0.6,Amazon Bedrock=0.25,Google Vertex=0.15", normalize=0.9),
        _M("anthropic/claude-3.5-haiku", 0.80, 4.0, 0.08, "Anthropic=0.7,Amazon Bedrock=0.3", speed=1.3,
           normalize=0.9),
        _M("google/gemini-2.5-flash", 0.30, 2.50, 0.075, "Google AI Studio=0.6,Google Vertex=0.4",
           reasoning=0.3, normalize=0.95),
        _M("google/gemini-2.5-pro", 1.25, 10.0, 0.31, "Google Vertex=0.6,Google AI Studio=0.4", reasoning=0.8,
           speed=0.7, normalize=0.95),
        _M("deepseek/deepseek-r1", 0.55, 2.19, None, "DeepInfra=0.4,Together=0.35,Fireworks=0.25",
           reasoning=1.5, speed=0.6, normalize=0.97),
        _M("meta-llama/llama-3.3-70b-instruct", 0.13, 0.39, None, "Groq=0.5,Together=0.3,DeepInfra=0.2",
           normalize=1.02),
    )
}
_DEVS = ("dev-amara", "dev-bo", "dev-chen", "dev-dana", "dev-emil", "dev-farah", "dev-goran", "dev-hiro")
_W = Workload
WORKLOADS = (
    _W("prod-chat", "openai/gpt-4o-mini=0.5,anthropic/claude-3.5-haiku=0.25,google/gemini-2.5-flash=0.25",
       prompt=(1800, 0.6), output=(260, 0.7), turns=(1, 6), gap_s=(15, 120), stream=0.95, tools=0.05,
       weight=0.4, users=tuple(f"user_{n}" for n in range(1001, 1041)), sessions=True, hours=(7, 21),
       search=0.03),
    _W("prod-agent", "anthropic/claude-sonnet-4=0.6,openai/gpt-4.1=0.25,google/gemini-2.5-pro=0.15",
       prompt=(22000, 0.5), output=(550, 0.8), turns=(2, 9), gap_s=(1, 6), stream=0.7, tools=0.65,
       weight=0.13, users=_DEVS, sessions=True, hours=(8, 19)),
    _W("prod-search",
       "openai/gpt-4.1=0.3,google/gemini-2.5-flash=0.35,meta-llama/llama-3.3-70b-instruct=0.35",
       prompt=(6000, 0.5), output=(350, 0.5), turns=(1, 2), gap_s=(5, 40), stream=0.8, tools=0.0,
       weight=0.3, users=tuple(f"user_{n}" for n in range(2001, 2061)), sessions=True, hours=(6, 22),
       search=0.1),
    _W("batch-summarizer",
       "google/gemini-2.5-flash=0.5,deepseek/deepseek-r1=0.2,anthropic/claude-3.5-haiku=0.3",
       prompt=(30000, 0.6), output=(900, 0.4), turns=(4, 12), gap_s=(0.5, 3), stream=0.0, tools=0.0,
       weight=0.04, users=("nightly-batch",), sessions=False, hours=(1, 4)),
    _W("staging", "deepseek/deepseek-r1=0.4,google/gemini-2.5-pro=0.3,meta-llama/llama-3.3-70b-instruct=0.3",
       prompt=(1200, 0.7), output=(700, 0.6), turns=(1, 4), gap_s=(2, 20), stream=0.3, tools=0.1,
       weight=0.13, users=("qa-bot", "dev-bo", "dev-hiro"), sessions=False, hours=(9, 18)),
)
_NATIVE_FINISH = {  # normalized finish reason -> the provider family's own spelling
    "openai": {"stop": "stop", "length": "length", "tool_calls": "tool_calls",
               "content_filter": "content_filter"},
    "anthropic": {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                  "content_filter": "refusal"},
    "google": {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY"},
}
# fmt: on
_FAILURES = ((429, 0.35), (502, 0.2), (503, 0.25), (500, 0.12), (408, 0.08))


def _pick(rng: random.Random, weighted: Sequence[tuple[T, float]]) -> T:
    items = [item for item, _ in weighted]
    return rng.choices(items, weights=[w for _, w in weighted])[0]


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


def _token(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(_ALNUM) for _ in range(n))


def _created_at(moment: datetime) -> str:
    """As /generation writes it: milliseconds with trailing zeros dropped, ``Z``."""
    millis = f"{moment.microsecond // 1000:03d}".rstrip("0")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{millis}" if millis else "") + "Z"


def _endpoint_id(model: str, provider: str) -> str:
    digest = hashlib.sha256(f"{model}|{provider}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def _upstream_id(rng: random.Random, provider: str) -> str:
    if provider in ("OpenAI", "Azure"):
        return "chatcmpl-" + _token(rng, 29)
    if provider in ("Anthropic", "Amazon Bedrock"):
        return "msg_01" + _token(rng, 22)
    if provider.startswith("Google"):
        return _token(rng, 23)
    return rng.randbytes(16).hex()


def _session_start(rng: random.Random, now: datetime, workload: Workload) -> datetime:
    """A start time in the last 7 days, busier on weekdays inside the workload's hours."""
    first, last = workload.hours
    while True:
        moment = now - timedelta(seconds=rng.uniform(45 * 60, DAYS * 86400))
        weight = 1.0 if first <= moment.hour <= last else 0.08
        if moment.weekday() >= 5 and workload.api_key != "batch-summarizer":
            weight *= 0.35
        if rng.random() < weight:
            return moment


@dataclass
class _Outcome:
    attempts: list[dict[str, Any]]
    provider: str
    ok: bool  # a provider answered


def _attempts(rng: random.Random, model: Model, force_fail: bool) -> _Outcome:
    """Provider attempts in order: fallbacks after failures, like OpenRouter's routing."""
    remaining = list(model.providers)
    attempts: list[dict[str, Any]] = []
    max_attempts = rng.randint(1, min(3, len(remaining))) if force_fail else len(remaining)
    while remaining and len(attempts) < max_attempts:
        name = _pick(rng, remaining)
        remaining = [(p, w) for p, w in remaining if p != name]
        provider = PROVIDERS[name]
        entry = {
            "endpoint_id": _endpoint_id(model.slug, name),
            "id": None,
            "is_byok": False,
            "latency": None,
            "model_permaslug": model.slug,
            "provider_name": name,
            "status": 200,
        }
        attempts.append(entry)
        if force_fail or rng.random() < provider.fail_rate:
            status = _pick(rng, _FAILURES)
            entry["status"] = status
            low, high = (10_000, 30_000) if status == 408 else (60, 400) if status == 429 else (250, 2500)
            entry["latency"] = round(rng.uniform(low, high))
            continue
        return _Outcome(attempts, name, True)
    return _Outcome(attempts, attempts[-1]["provider_name"], False)


def _generation(
    rng: random.Random,
    workload: Workload,
    model: Model,
    created: datetime,
    turn: int,
    user: str,
    session: str | None,
) -> dict[str, Any]:
    author = model.slug.split("/", 1)[0]
    prompt = max(20, round(_lognormal(rng, *workload.prompt) * (1 + 0.25 * turn)))
    visible = max(1, round(_lognormal(rng, *workload.output)))
    finish = "stop"
    roll = rng.random()
    if roll < workload.tools:
        finish, visible = "tool_calls", max(12, visible // 3)
    elif roll < workload.tools + 0.03:
        finish, visible = "length", 4096 if workload.output[0] > 500 else 1024
    elif roll < workload.tools + 0.034:
        finish, visible = "content_filter", min(visible, 20)
    reasoning = round(visible * model.reasoning * rng.uniform(0.5, 1.6)) if model.reasoning else 0
    cached = 0
    repeat = turn > 0 or workload.api_key == "batch-summarizer"  # a prompt prefix seen before
    if model.cached_price is not None and repeat and rng.random() < 0.85:
        cached = round(prompt * rng.uniform(0.4, 0.92))
    streamed = rng.random() < workload.stream
    all_failed = rng.random() < 0.02
    outcome = _attempts(rng, model, all_failed)
    provider = PROVIDERS[outcome.provider]
    overhead = round(rng.uniform(15, 90))
    before = sum(a["latency"] for a in outcome.attempts if a["status"] != 200)  # failed attempts
    cancelled = False
    ttft: int | None = None
    completion = visible + reasoning
    if outcome.ok:
        speed = provider.tokens_per_s * model.speed * math.exp(rng.gauss(0, 0.25))
        first = provider.ttft_ms * math.exp(rng.gauss(0, 0.35)) + prompt * 0.012
        first += reasoning / speed * 1000  # reasoning is thought before the first visible token
        body = visible / speed * 1000
        if rng.random() < 0.02:  # a slow outlier: a congested provider
            first, body = first * rng.uniform(2.5, 6), body * rng.uniform(1.5, 3)
        if streamed and rng.random() < 0.03:  # the user stopped the stream
            cancelled, share = True, rng.uniform(0.05, 0.7)
            body, visible = body * share, max(1, round(visible * share))
            completion, finish = visible + reasoning, ""
        elif rng.random() < 0.01:  # the provider broke off mid-stream
            share = rng.uniform(0.1, 0.8)
            body, visible = body * share, max(1, round(visible * share))
            completion, finish = visible + reasoning, "error"
        attempt = outcome.attempts[-1]
        attempt["latency"] = round(first + body)
        attempt["id"] = _upstream_id(rng, outcome.provider)
        latency = attempt["latency"]
        if streamed:
            ttft = round(before + overhead * 0.6 + first)
    else:
        prompt = completion = reasoning = cached = 0
        finish = "error"
        latency = outcome.attempts[-1]["latency"]
    generation_time = before + (latency if outcome.ok else 0) + overhead
    cost = 0.0
    discount: float | None = None
    search_results: int | None = None
    if outcome.ok:
        price_cached = model.cached_price or model.input_price
        cost = ((prompt - cached) * model.input_price + cached * price_cached) / 1e6
        cost += completion * model.output_price / 1e6
        if cached:
            discount = round(cached * (model.input_price - price_cached) / 1e6, 9)
        if rng.random() < workload.search:
            search_results = 5
            cost += 0.02  # Exa: $4 per 1,000 results
    created_s = int(created.timestamp())
    native_finish = _NATIVE_FINISH.get(author, _NATIVE_FINISH["openai"]).get(finish) if finish else None
    data: dict[str, Any] = {
        "id": f"gen-{created_s}-{_token(rng, 20)}",
        "upstream_id": outcome.attempts[-1]["id"],
        "total_cost": round(cost, 9),
        "usage": round(cost, 9),
        "cache_discount": discount,
        "upstream_inference_cost": 0,
        "created_at": _created_at(created),
        "model": model.slug,
        "streamed": streamed,
        "cancelled": cancelled,
        "provider_name": outcome.provider,
        "latency": latency,
        "generation_time": generation_time,
        "finish_reason": finish or None,
        "native_finish_reason": native_finish if outcome.ok and finish != "error" else None,
        "tokens_prompt": round(prompt * model.normalize),
        "tokens_completion": round(completion * model.normalize),
        "native_tokens_prompt": prompt,
        "native_tokens_completion": completion,
        "native_tokens_reasoning": reasoning,
        "native_tokens_cached": cached,
        "native_tokens_completion_images": 0,
        "num_search_results": search_results,
        "web_search_engine": "exa" if search_results else None,
        "origin": "",
        "is_byok": False,
        "external_user": user,
        "api_type": "completions",
        "service_tier": "default" if author == "google" else None,
        "provider_responses": outcome.attempts,
        "user_agent": "demo-agent/0.3" if workload.api_key == "prod-agent" else "openai-python/1.99.1",
        "data_region": "global",
        "workspace_id": "3f1c0d9e-6a57-4c2b-9d1e-5b7a2c8e4f60",
        "request_id": f"req-{created_s}-{_token(rng, 20)}",
        "session_id": session,
        "orbcast": {"source": "demo", "api_key_name": workload.api_key, "ttft_ms": ttft},
    }
    unknown = ("app_id", "moderation_latency", "num_media_prompt", "num_input_audio_prompt",
               "num_media_completion", "num_fetches", "preset_id", "router", "http_referer")  # fmt: skip
    data.update(dict.fromkeys(unknown))
    return data


def generate_data(
    count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED, now: datetime | None = None
) -> list[dict[str, Any]]:
    """``count`` ``/generation`` data objects, oldest first."""
    # The history is drawn on a fixed virtual clock, then moved to end at ``now``: the same seed gives the
    # same generations, figures and order whenever it runs; only the timestamps (and ids) move.
    shift = (now or datetime.now(UTC)).astimezone(UTC) - VIRTUAL_NOW
    rng = random.Random(seed)
    out: list[tuple[datetime, dict[str, Any]]] = []
    while len(out) < count:
        workload = _pick(rng, [(w, w.weight) for w in WORKLOADS])
        model = MODELS[_pick(rng, _shares(workload.models))]
        user = rng.choice(workload.users)
        session = f"sess_{_token(rng, 16)}" if workload.sessions else None
        moment = _session_start(rng, VIRTUAL_NOW, workload)
        for turn in range(rng.randint(*workload.turns)):
            if len(out) >= count or moment >= VIRTUAL_NOW:
                break
            data = _generation(rng, workload, model, moment + shift, turn, user, session)
            out.append((moment, data))
            moment += timedelta(milliseconds=data["generation_time"] + rng.uniform(*workload.gap_s) * 1000)
    out.sort(key=lambda pair: (pair[0], pair[1]["id"]))
    return [data for _, data in out]


def generate(
    count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED, now: datetime | None = None
) -> list[GenerationRecord]:
    """The demo history as records, through the same parser real ``/generation`` data goes through."""
    return [GenerationRecord.from_api(data, source="demo") for data in generate_data(count, seed, now)]
