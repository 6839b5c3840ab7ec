"""One-line diagnoses for ``test-connection``: network failures, HTTP answers, OpenRouter keys.

Every function here is pure: it looks at the request's URL, the answer (or the transport error) and
the settings, and returns a :class:`Diagnosis` (detail, hint, exit code). Nothing here prints or sends.
OTLP and Tempo answers (Grafana Cloud set-up mistakes) are explained in :mod:`orbcast.tracing_diagnosis`.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson

from orbcast.config import Settings, mask, redact
from orbcast.errors import ExitCode
from orbcast.retry import DNS_MARKERS

GRAFANA_SUFFIX = ".grafana.net"


@dataclass(frozen=True)
class Diagnosis:
    detail: str
    hint: str
    code: ExitCode


# ----------------------------------------------------------------------------- URLs


def safe_url(url: str) -> str:
    """The URL as it may be shown: no user:password part, registered secrets masked."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return redact(urlunsplit((parts.scheme, host, parts.path, parts.query, "")))


def is_grafana(url: str) -> bool:
    return (urlsplit(url).hostname or "").endswith(GRAFANA_SUFFIX)


# ----------------------------------------------------------------------------- bodies and codes


def body_snippet(response: httpx.Response, limit: int = 140) -> str:
    """The gist of an error body in one short line (the message of a JSON error, else the text)."""
    ctype = response.headers.get("content-type", "")
    text = response.text.strip()
    if "html" in ctype or text.lower().startswith(("<!doctype", "<html")):
        return "an HTML page"
    try:
        data = orjson.loads(text) if text else None
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            text = str(error["message"])
        elif isinstance(error, str):
            text = error
        elif data.get("message"):
            text = str(data["message"])
    line = " ".join(text.split())
    if len(line) > limit:
        line = line[: limit - 1] + "…"
    return redact(line)


def status_detail(response: httpx.Response) -> str:
    reason = response.reason_phrase or ""
    snippet = body_snippet(response)
    head = f"HTTP {response.status_code} {reason}".rstrip()
    return f"{head}: {snippet}" if snippet else head


def code_for_status(status: int) -> ExitCode:
    if status in (401, 403):
        return ExitCode.AUTH
    if status in (408, 429) or status >= 500:
        return ExitCode.UNAVAILABLE
    return ExitCode.NOT_FOUND


# ----------------------------------------------------------------------------- transport errors


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def transport(exc: BaseException, url: str, timeout: float) -> Diagnosis:
    """DNS, TLS, refused, timed out, dropped: the network failure named, with the fix."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    chain = _chain(exc)
    text = " ".join(str(e) for e in chain).lower()
    unavailable = ExitCode.UNAVAILABLE
    if isinstance(exc, httpx.TimeoutException):
        doing = "connecting to" if isinstance(exc, httpx.ConnectTimeout) else "waiting for an answer from"
        return Diagnosis(
            f"timed out after {timeout:g} s {doing} {host}:{port}",
            "the host did not answer in time: check the URL and any proxy or firewall in between; "
            "raise --timeout on a slow link",
            unavailable,
        )
    if any(type(e).__name__ == "gaierror" for e in chain) or any(m in text for m in DNS_MARKERS):
        where = (
            " (copy the URL from the stack's page; the region is part of the name)" if is_grafana(url) else ""
        )
        return Diagnosis(
            f"DNS lookup failed for {host}",
            f"the host name {host} does not resolve: check its spelling{where}, or this machine's DNS",
            unavailable,
        )
    if any(isinstance(e, ssl.SSLError) for e in chain) or "ssl" in text or "certificate" in text:
        if "mismatch" in text:
            return Diagnosis(
                f"TLS failure: the certificate of {host} is for another host name",
                "connect with the host name the certificate was issued for (check the URL's host)",
                unavailable,
            )
        if "certificate" in text:
            return Diagnosis(
                f"TLS failure: the certificate of {host} is not trusted",
                "the certificate is self-signed or from an unknown CA (a TLS-inspecting proxy?): "
                "point SSL_CERT_FILE at the right CA bundle",
                unavailable,
            )
        return Diagnosis(
            f"TLS failure: handshake with {host}:{port} failed",
            f"the server on port {port} does not speak TLS: use http:// for a plain-HTTP endpoint "
            "(a local collector or Tempo), https:// only where TLS is served",
            unavailable,
        )
    if "refused" in text:
        return Diagnosis(
            f"connection refused by {host}:{port}",
            f"nothing listens on {host}:{port}: is the service running and the port right? "
            "(OTLP/HTTP is usually 4318, Tempo's query API 3200)",
            unavailable,
        )
    grpc = " (4317 is OTLP/gRPC; orbcast speaks OTLP/HTTP, usually 4318)" if port == 4317 else ""
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return Diagnosis(
            f"connection to {host}:{port} closed without an HTTP answer",
            f"the port may serve another protocol{grpc}; check the URL's port and scheme",
            unavailable,
        )
    return Diagnosis(
        f"could not connect to {host}:{port}: {redact(str(exc)) or type(exc).__name__}",
        f"check the URL, the network and any proxy settings{grpc}",
        unavailable,
    )


def redirected(response: httpx.Response) -> Diagnosis:
    target = response.headers.get("location", "")
    shown = safe_url(str(response.url.join(target))) if target else "elsewhere"
    return Diagnosis(
        f"HTTP {response.status_code}: redirected to {shown}",
        f"use the URL it redirects to ({shown}); orbcast does not follow redirects with credentials",
        ExitCode.NOT_FOUND,
    )


# ----------------------------------------------------------------------------- OpenRouter

OPENROUTER_KEYS = "https://openrouter.ai/settings/keys"
MANAGEMENT_KEYS = "https://openrouter.ai/settings/management-keys"


def openrouter_failure(response: httpx.Response, settings: Settings, *, history: bool) -> Diagnosis:
    status = response.status_code
    if 300 <= status < 400:
        return redirected(response)
    detail = status_detail(response)
    base = str(settings.openrouter_url).rstrip("/")
    if status == 401:
        hint = (
            "the management key is invalid, revoked or expired: check --management-key / "
            f"OPENROUTER_MANAGEMENT_KEY ({MANAGEMENT_KEYS})"
            if history
            else "the key is invalid, revoked or expired: check --openrouter-key / OPENROUTER_API_KEY"
        )
    elif status == 403:
        hint = (
            f"this is not a management key; history needs one: create it at {MANAGEMENT_KEYS} and set "
            "OPENROUTER_MANAGEMENT_KEY (CSV and id sources still work without it)"
            if history
            else f"OpenRouter refused the key: it may be disabled ({OPENROUTER_KEYS})"
        )
    elif status in (404, 405):
        hint = (
            f"--openrouter-url must end in /api/v1 (default https://openrouter.ai/api/v1): {safe_url(base)}"
            if not base.endswith("/api/v1")
            else f"no OpenRouter API at {safe_url(base)}: check --openrouter-url (default https://openrouter.ai/api/v1)"
        )
    elif status == 429:
        hint = (
            "rate limited: /analytics/query allows 64 requests a minute; wait a minute and retry"
            if history
            else "rate limited by OpenRouter: wait a little and retry"
        )
    elif status == 408 or status >= 500:
        hint = "OpenRouter is having trouble: retry later (https://status.openrouter.ai)"
    else:
        hint = "unexpected answer: check --openrouter-url (default https://openrouter.ai/api/v1)"
    return Diagnosis(detail, hint, code_for_status(status))


def describe_auth(user: str | None, token: str | None, headers: dict[str, str]) -> str:
    """How a request authenticates, for --verbose: user shown, token masked, header values never."""
    if user and token:
        return f"Basic auth as user {user}, token {mask(token)}"
    if token:
        return f"Bearer token {mask(token)}"
    if any(k.lower() == "authorization" for k in headers):
        return "Authorization from the configured OTLP headers (value hidden)"
    return "no credentials"
