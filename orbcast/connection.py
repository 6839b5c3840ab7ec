"""``test-connection`` as library code: five checks, each a :class:`CheckResult` row, and the exit code.

Checks, in order: the OpenRouter key (``GET /key``), history access (``POST /analytics/query``, only with
a management key), an empty OTLP export, a Tempo read (echo, build info, search tags) and, on request, a
round trip (one labelled span pushed, then looked up by trace ID). Every request is tried once with a
short timeout: this is a diagnostic, so it reports instead of retrying. Failures carry a one-line
diagnosis from :mod:`orbcast.diagnosis`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import httpx

from orbcast import diagnosis as dx
from orbcast import roundtrip as rt
from orbcast import tracing_diagnosis as td
from orbcast.config import Settings, redact
from orbcast.errors import ExitCode
from orbcast.retry import new_client
from orbcast.timeparse import iso

GROUPS = ("openrouter", "otlp", "tempo")
HISTORY_SKIP = "history needs a management key; CSV and id sources still work"
EMPTY_EXPORT = b'{"resourceSpans":[]}'
NOTHING_CONFIGURED = "nothing to test: no OpenRouter key, OTLP endpoint or Tempo URL is configured"
CONFIGURE_HINT = (
    "set OPENROUTER_API_KEY; ORBCAST_OTLP_ENDPOINT, ORBCAST_OTLP_USER and ORBCAST_OTLP_TOKEN; "
    "ORBCAST_TEMPO_URL and ORBCAST_TEMPO_USER (or the matching flags, or 'orbcast config set NAME')"
)


class Status(StrEnum):
    passed = "passed"
    failed = "failed"
    skipped = "skipped"


@dataclass
class CheckResult:
    """One row of the report. ``code`` is the exit code a failure stands for."""

    name: str
    status: Status
    url: str | None = None
    http_status: int | None = None
    ms: int | None = None
    detail: str = ""
    hint: str | None = None
    code: ExitCode | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "url": dx.safe_url(self.url) if self.url else None,
            "http_status": self.http_status,
            "ms": self.ms,
            "detail": redact(self.detail),
            "hint": redact(self.hint) if self.hint else None,
        }


@dataclass(frozen=True)
class CheckOptions:
    only: frozenset[str] = frozenset(GROUPS)
    round_trip: bool = False
    round_trip_timeout: float = 60.0
    timeout: float = 10.0


def nothing_ran(results: list[CheckResult]) -> bool:
    """True when every check was skipped: nothing is configured (for the selected checks)."""
    return all(r.status is Status.skipped for r in results)


def exit_code(results: list[CheckResult]) -> ExitCode:
    """0 when every check that ran passed; 3 when none could run; else the first failure's code."""
    if nothing_ran(results):
        return ExitCode.CONFIG
    for result in results:
        if result.status is Status.failed:
            return result.code or ExitCode.ERROR
    return ExitCode.OK


def run_checks(
    settings: Settings, options: CheckOptions, log: Callable[[str], None] | None = None
) -> list[CheckResult]:
    with _Checker(settings, options, log or (lambda _: None)) as checker:
        return checker.run()


def _is_html(response: httpx.Response) -> bool:
    return dx.body_snippet(response) == "an HTML page"


@dataclass
class _Row:
    """A check under way: its name and clock; ends as a :class:`CheckResult`."""

    name: str
    started: float = field(default_factory=time.monotonic)
    url: str | None = None
    http_status: int | None = None

    def ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)

    def passed(self, detail: str, hint: str | None = None) -> CheckResult:
        return CheckResult(self.name, Status.passed, self.url, self.http_status, self.ms(), detail, hint)

    def failed(self, diagnosis: dx.Diagnosis) -> CheckResult:
        return CheckResult(
            self.name,
            Status.failed,
            self.url,
            self.http_status,
            self.ms(),
            diagnosis.detail,
            diagnosis.hint,
            diagnosis.code,
        )

    def skipped(self, reason: str) -> CheckResult:
        return CheckResult(self.name, Status.skipped, self.url, detail=reason)


class _Checker:
    def __init__(self, settings: Settings, options: CheckOptions, log: Callable[[str], None]) -> None:
        self.s = settings
        self.o = options
        self.log = log
        self.client = new_client(timeout=options.timeout, follow_redirects=False)

    def __enter__(self) -> _Checker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    # -- one request, never raising for network trouble

    def send(
        self, row: _Row, method: str, url: str, timeout: float | None = None, **kw: Any
    ) -> httpx.Response | dx.Diagnosis:
        row.url = url
        wait = self.o.timeout if timeout is None else timeout
        started = time.monotonic()
        try:
            response = self.client.request(method, url, timeout=wait, **kw)
        except httpx.HTTPError as exc:
            diagnosis = dx.transport(exc, url, wait)
            self.log(f"{row.name}: {method} {dx.safe_url(url)} -> {diagnosis.detail}")
            return diagnosis
        except (httpx.InvalidURL, ValueError, UnicodeError) as exc:  # a host name no resolver takes
            self.log(f"{row.name}: {method} {dx.safe_url(url)} -> invalid URL")
            return dx.Diagnosis(
                f"invalid URL {dx.safe_url(url)}: {redact(str(exc))}",
                "check the host name in the URL",
                ExitCode.CONFIG,
            )
        row.http_status = response.status_code
        ms = int((time.monotonic() - started) * 1000)
        self.log(f"{row.name}: {method} {dx.safe_url(url)} -> HTTP {response.status_code} in {ms} ms")
        return response

    # -- the checks

    def run(self) -> list[CheckResult]:
        results: list[CheckResult] = []
        if "openrouter" in self.o.only:
            key_result, is_management = self.openrouter_key()
            results += [key_result, self.history(key_result, is_management)]
        otlp = self.otlp_write() if "otlp" in self.o.only else None
        tempo = self.tempo_read() if "tempo" in self.o.only else None
        results += [r for r in (otlp, tempo) if r is not None]
        if self.o.round_trip:
            results.append(self.round_trip(otlp, tempo))
        return results

    def openrouter_key(self) -> tuple[CheckResult, bool]:
        row = _Row("openrouter-key")
        key = self.s.openrouter_key or self.s.management_key
        if not key:
            return row.skipped("no OpenRouter key: set --openrouter-key / OPENROUTER_API_KEY"), False
        self.log(f"{row.name}: {dx.describe_auth(None, key, {})}")
        url = str(self.s.openrouter_url).rstrip("/") + "/key"
        answer = self.send(row, "GET", url, headers={"Authorization": f"Bearer {key}"})
        if isinstance(answer, dx.Diagnosis):
            return row.failed(answer), False
        if answer.status_code != 200:
            return row.failed(dx.openrouter_failure(answer, self.s, history=False)), False
        body = rt.json_body(answer)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            return row.failed(
                dx.Diagnosis(
                    f"HTTP 200 but not OpenRouter's /key answer ({dx.body_snippet(answer) or 'empty'})",
                    "check --openrouter-url (default https://openrouter.ai/api/v1)",
                    ExitCode.NOT_FOUND,
                )
            ), False
        is_management = bool(data.get("is_management_key") or data.get("is_provisioning_key"))
        remaining = data.get("limit_remaining")
        credit = "no credit limit" if remaining is None else f"${float(remaining):,.2f} credit left"
        kind = "management key" if is_management else "not a management key"
        hint = None
        if remaining is not None and float(remaining) <= 0:
            hint = f"the key has no credit left: raise its limit at {dx.OPENROUTER_KEYS}"
        return row.passed(f"key {data.get('label') or '?'}, {kind}, {credit}", hint), is_management

    def history(self, key_result: CheckResult, is_management: bool) -> CheckResult:
        row = _Row("openrouter-history")
        key = self.s.management_key or (self.s.openrouter_key if is_management else None)
        if not key:
            if key_result.status is Status.failed:
                return row.skipped("not checked: the OpenRouter key check failed")
            return row.skipped(HISTORY_SKIP)
        url = str(self.s.openrouter_url).rstrip("/") + "/analytics/query"
        now = datetime.now(UTC).replace(microsecond=0)
        query = {
            "metrics": ["request_count"],
            "time_range": {"start": iso(now - timedelta(hours=1)), "end": iso(now)},
            "limit": 1,
        }
        answer = self.send(row, "POST", url, json=query, headers={"Authorization": f"Bearer {key}"})
        if isinstance(answer, dx.Diagnosis):
            return row.failed(answer)
        if answer.status_code != 200:
            return row.failed(dx.openrouter_failure(answer, self.s, history=True))
        return row.passed("management key accepted: /analytics/query answered")

    def otlp_write(self) -> CheckResult:
        row = _Row("otlp-write")
        url = self.s.otlp_endpoint
        if not url:
            given = [n for n in ("otlp_user", "otlp_token", "otlp_headers") if getattr(self.s, n)]
            also = f" ({', '.join(given)} set without it)" if given else ""
            return row.skipped(f"no OTLP endpoint{also}: set --otlp-endpoint / ORBCAST_OTLP_ENDPOINT")
        auth = dx.describe_auth(self.s.otlp_user, self.s.otlp_token, self.s.otlp_auth_headers())
        self.log(f"{row.name}: {auth}")
        answer = self.push(row, url, EMPTY_EXPORT)
        if isinstance(answer, dx.Diagnosis):
            return row.failed(answer)
        return row.passed(f"empty export accepted ({auth.split(',')[0]})")

    def push(self, row: _Row, url: str, body: bytes) -> httpx.Response | dx.Diagnosis:
        """POST an OTLP/JSON body; a Diagnosis unless the receiver took it."""
        headers = {"Content-Type": "application/json", **self.s.otlp_auth_headers()}
        answer = self.send(row, "POST", url, content=body, headers=headers)
        if isinstance(answer, dx.Diagnosis):
            return answer
        status = answer.status_code
        html = _is_html(answer)
        if 200 <= status < 300 and not html:
            return answer
        if 300 <= status < 400:
            return dx.redirected(answer)
        if status in (401, 403):
            return td.otlp_auth(answer, self.s)
        if status in (404, 405) or html:
            fixed = self._probe(row.name, td.otlp_candidates(url), tempo=False)
            return dx.Diagnosis(
                dx.status_detail(answer), td.otlp_not_found_hint(url, fixed, self.s), ExitCode.NOT_FOUND
            )
        return td.otlp_other(answer)

    def _probe(self, name: str, candidates: list[str], tempo: bool) -> str | None:
        """The first corrected URL that answers like the real thing (after a 404), if any."""
        probe = _Row(name)
        for url in candidates:
            if tempo:
                answer = self.send(probe, "GET", url + "/api/echo", headers=self.s.tempo_auth_headers())
                good = isinstance(answer, httpx.Response) and answer.text.strip().startswith("echo")
            else:
                headers = {"Content-Type": "application/json", **self.s.otlp_auth_headers()}
                answer = self.send(probe, "POST", url, content=EMPTY_EXPORT, headers=headers)
                good = (
                    isinstance(answer, httpx.Response)
                    and answer.status_code not in (404, 405)
                    and not _is_html(answer)
                )
            if good:
                return url
        return None

    def tempo_read(self) -> CheckResult:
        row = _Row("tempo-read")
        base = (self.s.tempo_url or "").rstrip("/")
        if not base:
            given = [n for n in ("tempo_user", "tempo_token") if getattr(self.s, n)]
            also = f" ({', '.join(given)} set without it)" if given else ""
            return row.skipped(f"no Tempo URL{also}: set --tempo-url / ORBCAST_TEMPO_URL")
        headers = self.s.tempo_auth_headers()
        self.log(f"{row.name}: {dx.describe_auth(self.s.tempo_user, self.s.effective_tempo_token, headers)}")
        echo = self.send(row, "GET", base + "/api/echo", headers=headers)
        if isinstance(echo, dx.Diagnosis):
            return row.failed(echo)
        bad = self._tempo_failure(row, base, echo)
        if bad is None and not echo.text.strip().startswith("echo"):
            fixed = self._probe(row.name, td.tempo_candidates(base), tempo=True)
            bad = dx.Diagnosis(
                f"HTTP 200 but not Tempo's echo ({dx.body_snippet(echo) or 'empty'})",
                td.tempo_not_found_hint(base, fixed),
                ExitCode.NOT_FOUND,
            )
        if bad is not None:
            return row.failed(bad)
        json_headers = {"Accept": "application/json", **headers}
        info = self.send(row, "GET", base + "/api/status/buildinfo", headers=json_headers)
        if isinstance(info, dx.Diagnosis):
            return row.failed(info)
        version = None
        build = rt.json_body(info) if info.status_code == 200 else None
        if isinstance(build, dict):
            version = build.get("version")
        elif info.status_code not in (404, 405):
            bad = self._tempo_failure(row, base, info)
            if bad is not None:
                return row.failed(bad)
        tags = self.send(
            row, "GET", base + "/api/v2/search/tags?scope=resource&limit=1", headers=json_headers
        )
        if isinstance(tags, dx.Diagnosis):
            return row.failed(tags)
        shown = f"Tempo {version}" if version else "Tempo (version not reported)"
        if tags.status_code in (404, 405) and version:
            return row.passed(f"{shown}; echo and build info answered (no v2 search tags API)")
        bad = self._tempo_failure(row, base, tags)
        if bad is not None:
            return row.failed(bad)
        return row.passed(f"{shown}; echo and an authorised search-tags call answered")

    def _tempo_failure(self, row: _Row, base: str, answer: httpx.Response) -> dx.Diagnosis | None:
        status = answer.status_code
        html = _is_html(answer)
        if status == 200 and not html:
            return None
        if 300 <= status < 400:
            return dx.redirected(answer)
        if status in (401, 403):
            return td.tempo_auth(answer, self.s)
        if status in (404, 405) or html:
            fixed = self._probe(row.name, td.tempo_candidates(base), tempo=True)
            return dx.Diagnosis(
                dx.status_detail(answer), td.tempo_not_found_hint(base, fixed), ExitCode.NOT_FOUND
            )
        return td.tempo_other(answer)

    def round_trip(self, otlp: CheckResult | None, tempo: CheckResult | None) -> CheckResult:
        row = _Row("round-trip")
        missing = [g for g in ("otlp", "tempo") if g not in self.o.only]
        if missing:
            return row.skipped(f"--only leaves out {' and '.join(missing)}; the round trip needs both")
        if not self.s.otlp_endpoint or not self.s.tempo_url:
            return row.skipped("needs both an OTLP endpoint and a Tempo URL")
        for name, result in (("OTLP write", otlp), ("Tempo read", tempo)):
            if result is not None and result.status is Status.failed:
                return row.skipped(f"not run: the {name} check failed")
        trace_id, body = rt.labelled_span()
        self.log(f"{row.name}: pushing one span, service.name={rt.TEST_SERVICE}, trace {trace_id}")
        pushed = self.push(row, self.s.otlp_endpoint, body)
        if isinstance(pushed, dx.Diagnosis):
            return row.failed(pushed)
        reason = rt.rejected_spans(pushed)
        if reason is not None:
            return row.failed(
                dx.Diagnosis(
                    f"the receiver rejected the test span: {reason}",
                    "the receiver takes the connection but not the span; check its limits and logs",
                    ExitCode.UNAVAILABLE,
                )
            )
        url = self.s.tempo_url.rstrip("/") + f"/api/v2/traces/{trace_id}"
        headers = {"Accept": "application/json", **self.s.tempo_auth_headers()}
        outcome = rt.poll(
            lambda wait: self.send(row, "GET", url, timeout=wait, headers=headers),
            started=row.started,
            deadline=row.started + self.o.round_trip_timeout,
            timeout=self.o.timeout,
            settings=self.s,
            trace_id=trace_id,
            total=self.o.round_trip_timeout,
        )
        if isinstance(outcome, dx.Diagnosis):
            return row.failed(outcome)
        return row.passed(
            f"test span visible in Tempo after {outcome.delay:.2f} s ({outcome.lookups} lookups), "
            f"trace {trace_id}"
        )
