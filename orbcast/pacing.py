"""How fast orbcast asks OpenRouter: an adaptive concurrency limit for per-generation requests and a
request budget for ``/analytics/query`` (64 requests/minute per account).

The analytics budget is kept in a small file under the state directory, locked with ``flock``, so that
several orbcast processes (for example one per window) share it instead of each spending 64/minute.
Without a usable state directory the budget is per process. ``ORBCAST_BACKOFF_SCALE`` scales the period.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from orbcast.retry import backoff_scale, parse_retry_after

try:  # POSIX only; elsewhere the budget is per process
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

ANALYTICS_BUDGET = 60  # requests per period orbcast allows itself: a margin under OpenRouter's 64/minute
ANALYTICS_PERIOD = 60.0
PACE_FILE = "openrouter-analytics-pace.json"


class Cancelled(Exception):
    """The run is stopping (Ctrl-C or a fatal error elsewhere): abandon this request quietly."""


class AdaptiveLimiter:
    """At most ``limit`` requests in flight. A 429 halves the limit and pauses everyone for its
    ``Retry-After``; a run of successes raises it again by one, up to ``maximum``."""

    def __init__(self, maximum: int, stop: threading.Event | None = None) -> None:
        self.maximum = max(1, maximum)
        self.limit = self.maximum
        self.active = 0
        self.slowdowns = 0
        self.paused_until = 0.0
        self._successes = 0
        self._waiting = 0
        self._stop = stop or threading.Event()
        self._cond = threading.Condition()

    def acquire(self) -> None:
        with self._cond:
            if self.active < self.limit and not self.paused_until and not self._stop.is_set():
                self.active += 1  # the common case: no waiting, no clock
                return
            self._waiting += 1
            try:
                self._wait_for_slot()
            finally:
                self._waiting -= 1

    def _wait_for_slot(self) -> None:
        while True:
            if self._stop.is_set():
                raise Cancelled()
            now = time.monotonic()
            if now < self.paused_until:
                self._cond.wait(min(self.paused_until - now, 0.2))
            elif self.active < self.limit:
                self.paused_until = 0.0
                self.active += 1
                return
            else:
                self._cond.wait(0.2)

    def release(self, response: httpx.Response | None) -> None:
        with self._cond:
            self.active -= 1
            if response is not None and response.status_code == 429:
                self._slow_down(parse_retry_after(response.headers.get("Retry-After")))
            elif response is not None and response.status_code < 500:
                self._successes += 1
                if self.limit < self.maximum and self._successes >= max(10, 2 * self.limit):
                    self.limit += 1
                    self._successes = 0
            if self._waiting:
                self._cond.notify_all()

    def _slow_down(self, retry_after: float | None) -> None:
        self.limit = max(1, self.limit // 2)
        self._successes = 0
        self.slowdowns += 1
        if retry_after:
            self.paused_until = max(self.paused_until, time.monotonic() + retry_after * backoff_scale())


class AnalyticsPacer:
    """At most ``budget`` requests in any ``period`` seconds, shared through ``state_dir`` when given."""

    def __init__(
        self,
        state_dir: str | None,
        *,
        budget: int = ANALYTICS_BUDGET,
        period: float = ANALYTICS_PERIOD,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.budget = max(1, budget)
        self.period = period * backoff_scale()
        self.clock = clock
        self.path: Path | None = None
        self._stamps: list[float] = []
        self._lock = threading.Lock()
        if state_dir and fcntl is not None:
            try:
                Path(state_dir).mkdir(parents=True, exist_ok=True)
                self.path = Path(state_dir) / PACE_FILE
                self.path.touch(exist_ok=True)
            except OSError:
                self.path = None

    def wait(self, sleep: Callable[[float], None] = time.sleep) -> None:
        """Block until a request may be sent, and count it."""
        while True:
            delay = self.reserve()
            if delay <= 0:
                return
            sleep(delay)

    def reserve(self) -> float:
        """Take a slot now (returns 0) or say how long to wait before asking again."""
        with self._lock, self._stamps_file() as stamps:
            now = self.clock()
            stamps[:] = [t for t in stamps if now - self.period < t <= now + 1]
            if len(stamps) < self.budget:
                stamps.append(now)
                return 0.0
            return max(0.001, stamps[0] + self.period - now)

    @contextlib.contextmanager
    def _stamps_file(self) -> Iterator[list[float]]:
        if self.path is None:
            yield self._stamps
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            self.path = None
            yield self._stamps
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = b""
            while chunk := os.read(fd, 65536):
                raw += chunk
            try:
                loaded = json.loads(raw or b"[]")
                stamps = sorted(float(t) for t in loaded) if isinstance(loaded, list) else []
            except (ValueError, TypeError):
                stamps = []
            yield stamps
            data = json.dumps(stamps[-self.budget :]).encode()
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, data)
        finally:
            os.close(fd)  # closing releases the lock
