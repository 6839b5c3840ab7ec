"""The OpenRouter client against the loopback fake: error mapping, retries, late 404s, pacing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from orbcast.errors import AuthError, EndpointNotFound, ServiceUnavailable
from orbcast.openrouter import (
    MANAGEMENT_ONLY,
    GenerationUnavailable,
    InsufficientCredits,
    KeyRef,
    OpenRouterClient,
)
from orbcast.pacing import AdaptiveLimiter, AnalyticsPacer, Cancelled
from tests.fake_openrouter import API_KEY, MGMT_KEY, FakeOpenRouter, make_generations

NOW = datetime.now(UTC)
OLD = make_generations(5, NOW - timedelta(days=3), timedelta(minutes=1))
RECENT = make_generations(3, NOW - timedelta(minutes=1), timedelta(seconds=1), first=100)


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter(OLD + RECENT) as server:
        yield server


def client(
    fake: FakeOpenRouter, key: str = MGMT_KEY, tmp: Path | None = None, **kw: object
) -> OpenRouterClient:
    ref = KeyRef(key, "management key" if key == MGMT_KEY else "API key", "env TEST_KEY")
    return OpenRouterClient(fake.url, key=ref, state_dir=str(tmp) if tmp else None, **kw)  # type: ignore[arg-type]


def test_generation_shape_and_key_info(fake: FakeOpenRouter) -> None:
    with client(fake) as c:
        data = c.generation(OLD[0]["id"])
        assert data["id"] == OLD[0]["id"] and data["total_cost"] == OLD[0]["total_cost"]
        assert c.key_info()["is_management_key"] is True
    assert fake.requests("generation")[0].authorization == f"Bearer {MGMT_KEY}"


@pytest.mark.parametrize("status", [500, 502, 503, 524, 529])
def test_transient_statuses_are_retried(fake: FakeOpenRouter, status: int) -> None:
    fake.fail("generation", status, times=3)
    retries: list[str] = []
    with client(fake, on_retry=lambda what, reason, wait: retries.append(reason)) as c:
        assert c.generation(OLD[1]["id"])["id"] == OLD[1]["id"]
    assert retries == [f"HTTP {status}"] * 3
    assert len(fake.requests("generation")) == 4


def test_dropped_connection_and_timeout_are_retried(
    fake: FakeOpenRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The policy's time budget (300 s) scaled to 6 s: room for a 1 s timeout, waits of a few ms.
    monkeypatch.setenv("ORBCAST_BACKOFF_SCALE", "0.02")
    fake.fail("generation", "drop", times=2)
    fake.fail("generation", "slow", delay=3.0)  # far past the 1 s timeout; other answers take ms
    reasons: list[str] = []
    with client(fake, timeout=1.0, on_retry=lambda what, reason, wait: reasons.append(reason)) as c:
        assert c.generation(OLD[2]["id"])["id"] == OLD[2]["id"]
    assert reasons == ["connection dropped", "connection dropped", "timed out"]


def test_persistent_5xx_ends_as_service_unavailable(fake: FakeOpenRouter) -> None:
    fake.fail("generation", 503, times=50)
    with client(fake) as c, pytest.raises(ServiceUnavailable) as info:
        c.generation(OLD[0]["id"])
    assert "503" in info.value.message and "after retries" in info.value.message
    assert len(fake.requests("generation")) == 8  # the policy's bound


def test_429_honours_retry_after_and_slows_down(fake: FakeOpenRouter) -> None:
    # An HTTP date has whole seconds: 10 s ahead is still >= 5 s ahead however slow the machine is.
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True)
    fake.fail("generation", 429, retry_after="3")
    fake.fail("generation", 429, retry_after=later)
    waits: list[float] = []
    with client(fake, concurrency=8, on_retry=lambda what, reason, wait: waits.append(wait)) as c:
        assert c.generation(OLD[0]["id"])["id"] == OLD[0]["id"]
        assert c.limiter.limit == 2 and c.limiter.slowdowns == 2  # 8 -> 4 -> 2
    # Each wait is at least Retry-After (scaled by ORBCAST_BACKOFF_SCALE=0.001).
    assert waits[0] >= 3 * 0.001 and waits[1] >= 5 * 0.001


def test_limiter_grows_back_after_successes() -> None:
    limiter = AdaptiveLimiter(8)
    request = httpx.Request("GET", "http://x/")
    limiter.acquire()
    limiter.release(httpx.Response(429, request=request))
    assert limiter.limit == 4
    for _ in range(200):
        limiter.acquire()
        limiter.release(httpx.Response(200, request=request))
    assert limiter.limit == 8


def test_limiter_stop_cancels_waiters() -> None:
    stop = threading.Event()
    limiter = AdaptiveLimiter(1, stop)
    limiter.acquire()  # the only slot is held: the next acquire() blocks
    outcome: list[BaseException | None] = []

    def waiter() -> None:
        try:
            limiter.acquire()
            outcome.append(None)
        except Cancelled as exc:
            outcome.append(exc)

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while limiter._waiting == 0 and time.monotonic() < deadline:  # until it is really waiting
        time.sleep(0.005)
    assert limiter._waiting == 1 and not outcome
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], Cancelled)


def test_late_404_is_retried_until_the_generation_appears(fake: FakeOpenRouter) -> None:
    fake.late[RECENT[0]["id"]] = 3
    reasons: list[str] = []
    with client(fake, on_retry=lambda what, reason, wait: reasons.append(reason)) as c:
        assert c.generation(RECENT[0]["id"])["id"] == RECENT[0]["id"]
    assert reasons == ["404 (not available yet)"] * 3


def test_old_404_is_a_per_record_failure_at_once(fake: FakeOpenRouter) -> None:
    missing = f"gen-{int((NOW - timedelta(days=2)).timestamp())}-nosuchgeneration0000"
    with client(fake) as c, pytest.raises(GenerationUnavailable) as info:
        c.generation(missing)
    assert "404" in info.value.reason
    assert len(fake.requests("generation", missing)) == 1


def test_404_of_unknown_age_gets_a_few_tries(fake: FakeOpenRouter) -> None:
    with client(fake) as c, pytest.raises(GenerationUnavailable) as info:
        c.generation("gen-shapeless-id")
    assert len(fake.requests("generation", "gen-shapeless-id")) == 3
    assert "re-run later" in info.value.reason


def test_404_without_an_openrouter_body_means_a_wrong_url(fake: FakeOpenRouter) -> None:
    ref = KeyRef(MGMT_KEY, "management key", "env X")
    with OpenRouterClient(fake.url + "/wrong", key=ref) as c, pytest.raises(EndpointNotFound) as info:
        c.generation(OLD[0]["id"])
    assert "--openrouter-url" in (info.value.hint or "")


def test_401_names_the_key_needed_and_never_the_key(fake: FakeOpenRouter) -> None:
    with client(fake, key="sk-or-v1-not-a-real-key-000000") as c, pytest.raises(AuthError) as info:
        c.analytics(
            {"metrics": ["request_count"], "time_range": {"start": "2026-01-01", "end": "2026-01-02"}}
        )
    assert "401" in info.value.message
    assert "management key" in (info.value.hint or "")


def test_analytics_with_an_api_key_says_management_keys_only(fake: FakeOpenRouter) -> None:
    with client(fake, key=API_KEY) as c, pytest.raises(AuthError) as info:
        c.analytics(
            {"metrics": ["request_count"], "time_range": {"start": "2026-01-01", "end": "2026-01-02"}}
        )
    assert info.value.message.startswith(MANAGEMENT_ONLY)
    assert "csv:" in (info.value.hint or "") and "ids:" in (info.value.hint or "")


def test_402_is_reported_as_insufficient_credits(fake: FakeOpenRouter) -> None:
    fake.credits_exhausted = True
    with client(fake) as c, pytest.raises(InsufficientCredits) as info:
        c.generation(OLD[0]["id"])
    assert "insufficient credits" in info.value.message and info.value.exit_code == 4


def test_content_needs_a_management_key_and_404_means_none(fake: FakeOpenRouter) -> None:
    fake.no_content.add(OLD[1]["id"])
    with client(fake) as c:
        assert c.content(OLD[0]["id"])["output"]["completion"] == f"answer {OLD[0]['id']}"  # type: ignore[index]
        assert c.content(OLD[1]["id"]) is None
    with client(fake, key=API_KEY) as c, pytest.raises(AuthError) as info:
        c.content(OLD[0]["id"])
    assert MANAGEMENT_ONLY in info.value.message


def test_403_after_successes_is_a_per_record_failure(fake: FakeOpenRouter) -> None:
    with client(fake) as c:
        c.generation(OLD[0]["id"])
        fake.fail("generation", 403)
        with pytest.raises(GenerationUnavailable):
            c.generation(OLD[1]["id"])
    fake.fail("generation", 403)
    with client(fake) as c, pytest.raises(AuthError):
        c.generation(OLD[1]["id"])


def test_pacer_keeps_to_the_budget_across_processes_sharing_state(tmp_path: Path) -> None:
    clock = [1000.0]
    first = AnalyticsPacer(str(tmp_path), budget=5, period=60, clock=lambda: clock[0])
    second = AnalyticsPacer(str(tmp_path), budget=5, period=60, clock=lambda: clock[0])
    sent: list[float] = []
    for pacer in [first, second] * 10:
        while (delay := pacer.reserve()) > 0:
            clock[0] += delay
        sent.append(clock[0])
    # In any 60 s window (scaled by ORBCAST_BACKOFF_SCALE) at most 5 requests went out, from both pacers.
    period = 60 * 0.001
    for i, moment in enumerate(sent):
        assert sum(1 for t in sent[i:] if t < moment + period) <= 5
    assert sent[-1] - sent[0] >= 3 * period - 1e-9  # 20 requests at 5 a period span 3 periods
