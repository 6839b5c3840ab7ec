"""What OTLP receivers and Tempo mean when they refuse: the Grafana Cloud set-up mistakes, named.

Instance ID vs Tempo user, ``traces:write`` / ``traces:read`` scopes, a missing ``/otlp`` or ``/tempo``
path, ``/v1/traces`` twice, a percent-encoded ``Basic%20`` header, endpoints from different regions.
Pure functions: the caller sends the requests (including the one probe of a corrected URL after a 404).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

import httpx

from orbcast.config import Settings
from orbcast.diagnosis import Diagnosis, code_for_status, is_grafana, safe_url, status_detail
from orbcast.errors import ExitCode

OTLP_GATEWAY = "https://otlp-gateway-<zone>.grafana.net/otlp"
TEMPO_QUERY = "https://tempo-<zone>.grafana.net/tempo"
_REGION = re.compile(r"(?<![a-z])((?:us|eu|ap|au|ca|sa|me|af|in|jp|br|gb|uk)-[a-z]+-\d+)(?![a-z0-9])")


def mentions_scope(response: httpx.Response) -> bool:
    return "scope" in response.text.lower()


def region(url: str | None) -> str | None:
    """The cloud region in a Grafana Cloud host name (``eu-west-2``), if there is one."""
    if not url:
        return None
    match = _REGION.search(urlsplit(url).hostname or "")
    return match.group(1) if match else None


def region_note(settings: Settings) -> str | None:
    otlp, tempo = region(settings.otlp_endpoint), region(settings.tempo_url)
    if otlp and tempo and otlp != tempo:
        return (
            f"the OTLP endpoint is in {otlp} but the Tempo URL in {tempo}: "
            "copy both from the same Grafana Cloud stack"
        )
    return None


# ----------------------------------------------------------------------------- OTLP


def percent_encoded_auth(headers: dict[str, str]) -> bool:
    """An Authorization header that still holds URL encoding (``Basic%20…``): never valid on the wire."""
    for key, value in headers.items():
        if key.lower() == "authorization" and re.search(r"%(?:20|25|3d|2b|2f)", value, re.I):
            return True
    return False


def _percent_hint(settings: Settings) -> str:
    source = settings.source("otlp_headers")
    if source.startswith("env"):
        return (
            "the Authorization header is still percent-encoded after decoding OTEL_EXPORTER_OTLP_HEADERS "
            "once (it was encoded twice, e.g. Basic%2520…): write Authorization=Basic%20<base64> there, "
            "or use --otlp-user and --otlp-token"
        )
    return (
        f"the Authorization header ({source}) is still percent-encoded ('Basic%20…'): a real header "
        "needs a plain space ('Basic <base64>'); better, set --otlp-user and --otlp-token"
    )


def otlp_auth(response: httpx.Response, settings: Settings) -> Diagnosis:
    status = response.status_code
    headers = settings.otlp_auth_headers()
    detail = status_detail(response)
    if percent_encoded_auth(headers):
        hint = _percent_hint(settings)
    elif status == 403 or mentions_scope(response):
        hint = (
            "the credentials are accepted but the token may not push traces: give its access policy "
            "the traces:write scope (Grafana Cloud → Administration → Access policies)"
        )
    elif not any(k.lower() == "authorization" for k in headers):
        hint = "no credentials were sent: set --otlp-user (the OTLP instance ID) and --otlp-token"
    elif settings.otlp_token and not settings.otlp_user:
        hint = (
            "only a token is set, so it went as Bearer; Grafana Cloud wants Basic auth: "
            "set --otlp-user to the stack's OTLP instance ID (OpenTelemetry card)"
        )
    elif settings.otlp_user and settings.tempo_user and settings.otlp_user == settings.tempo_user:
        hint = (
            f"bad credentials, and the OTLP user equals the Tempo user ({settings.otlp_user}): "
            "the OTLP user is the instance ID from the stack's OpenTelemetry card, usually a different number"
        )
    else:
        hint = (
            "bad credentials: the OTLP user must be the stack's OTLP instance ID (OpenTelemetry card) "
            "and the token a current access-policy token (not revoked or expired)"
        )
    return Diagnosis(detail, hint, ExitCode.AUTH)


def otlp_not_found_hint(url: str, fixed: str | None, settings: Settings) -> str:
    """Why a POST to the traces URL found nothing; ``fixed`` is a corrected URL that did answer."""
    path = urlsplit(url).path.rstrip("/")
    host = urlsplit(url).hostname or ""
    if path.count("/v1/traces") > 1:
        return (
            f"the endpoint ends in /v1/traces twice ({path}): give the base URL (…/otlp on Grafana Cloud); "
            "orbcast appends /v1/traces once"
        )
    if fixed:
        if "/otlp/" in urlsplit(fixed).path and "/otlp" not in path:
            return f"the OTLP URL lacks the /otlp path: use {safe_url(fixed.removesuffix('/v1/traces'))}"
        return f"the receiver answers at {safe_url(fixed)}: set --otlp-endpoint to that base"
    if is_grafana(url):
        if host.startswith("tempo-") or "/tempo" in path:
            return f"this is a Tempo query URL, not the OTLP gateway: push to {OTLP_GATEWAY}"
        if not path.startswith("/otlp"):
            return f"the Grafana Cloud OTLP URL lacks /otlp: use https://{host}/otlp (/v1/traces is appended)"
    if not path.endswith("/v1/traces") and settings.source("otlp_endpoint").endswith("TRACES_ENDPOINT"):
        return (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used exactly as given: end it in /v1/traces, "
            "or set the base in OTEL_EXPORTER_OTLP_ENDPOINT"
        )
    return (
        f"no OTLP/HTTP receiver at {path or '/'}: set --otlp-endpoint to the receiver's base URL "
        f"(Grafana Cloud {OTLP_GATEWAY}, a collector http://host:4318); orbcast appends /v1/traces"
    )


def otlp_candidates(url: str) -> list[str]:
    """Corrected traces URLs worth one probe after a 404: de-duplicated path, /otlp inserted."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    out: list[str] = []
    if path.count("/v1/traces") > 1:
        out.append(path[: path.index("/v1/traces")] + "/v1/traces")
    base = path.removesuffix("/v1/traces")
    if not base.endswith("/otlp") and "/otlp/" not in base + "/":
        out.append(base + "/otlp/v1/traces")
    if not path.endswith("/v1/traces"):
        out.append(path + "/v1/traces")
    return [urlunsplit((parts.scheme, parts.netloc, p, "", "")) for p in out]


# ----------------------------------------------------------------------------- Tempo


def tempo_auth(response: httpx.Response, settings: Settings) -> Diagnosis:
    status = response.status_code
    detail = status_detail(response)
    fallback = "" if settings.tempo_token else " (the Tempo token defaults to the OTLP token)"
    if settings.tempo_user and settings.otlp_user and settings.tempo_user == settings.otlp_user:
        hint = (
            f"the Tempo user equals the OTLP instance ID ({settings.tempo_user}): Tempo wants the 'User' "
            "from the stack's Tempo card (Details → Configure the client), usually a different number"
        )
    elif status == 403 or mentions_scope(response):
        hint = (
            f"the credentials are accepted but may not read traces{fallback}: give the token's access "
            "policy the traces:read scope, or set --tempo-token to one that has it"
        )
    elif not settings.effective_tempo_token:
        hint = "no credentials were sent: set --tempo-user and --tempo-token (or --otlp-token)"
    elif not settings.tempo_user:
        hint = (
            "no Tempo user is set, so the token went as Bearer; Grafana Cloud wants Basic auth: "
            "set --tempo-user to the 'User' from the stack's Tempo card"
        )
    else:
        hint = region_note(settings) or (
            "bad credentials: --tempo-user must be the 'User' from the stack's Tempo card and the "
            f"token current (not revoked or expired){fallback}"
        )
    return Diagnosis(detail, hint, ExitCode.AUTH)


def tempo_candidates(base: str) -> list[str]:
    """Corrected Tempo bases worth one probe after a 404: /tempo appended, a pasted /api/… removed."""
    parts = urlsplit(base)
    path = parts.path.rstrip("/")
    out: list[str] = []
    if "/api/" in path + "/":
        out.append(path[: (path + "/").index("/api/")])
    if not path.endswith("/tempo"):
        out.append(path + "/tempo")
    return [urlunsplit((parts.scheme, parts.netloc, p, "", "")) for p in out]


def tempo_not_found_hint(base: str, fixed: str | None) -> str:
    path = urlsplit(base).path.rstrip("/")
    host = urlsplit(base).hostname or ""
    if fixed:
        if "/api/" in path + "/":
            return f"--tempo-url is Tempo's base URL, without /api/…: use {safe_url(fixed)}"
        return f"the Tempo URL lacks the /tempo path: use {safe_url(fixed)}"
    if "/api/" in path + "/":
        return "--tempo-url is Tempo's base URL: drop the /api/… part"
    if is_grafana(base):
        if host.startswith("otlp-gateway"):
            return f"this is the OTLP push gateway, not Tempo: the query URL is {TEMPO_QUERY} (Tempo card)"
        if not path.endswith("/tempo"):
            return f"the Grafana Cloud Tempo URL lacks /tempo: use https://{host}{path}/tempo"
    if path.endswith("/otlp") or urlsplit(base).port == 4318:
        return (
            "that is an OTLP receiver, not Tempo's query API (usually port 3200, or …/tempo on Grafana Cloud)"
        )
    return f"no Tempo API at {safe_url(base)}: set --tempo-url to Tempo's base (host:3200, or {TEMPO_QUERY})"


def otlp_other(response: httpx.Response) -> Diagnosis:
    """A refusal that is neither auth nor a missing path: 415, 429, 5xx, other 4xx."""
    status = response.status_code
    if status == 415:
        hint = (
            "the endpoint refuses OTLP/HTTP JSON, so it is not an OTLP/HTTP receiver "
            "(4317 is gRPC; OTLP/HTTP is usually 4318)"
        )
    elif status == 429:
        hint = "the receiver is rate limiting: wait and retry; Grafana Cloud limits ingestion per stack"
    elif status >= 500 or status == 408:
        hint = "the receiver failed: retry later, and check the service's status page if it persists"
    else:
        hint = "the receiver refused a valid OTLP export: is --otlp-endpoint an OTLP/HTTP receiver?"
    return Diagnosis(status_detail(response), hint, code_for_status(status))


def tempo_other(response: httpx.Response) -> Diagnosis:
    status = response.status_code
    if status == 429 or status >= 500:
        hint = "Tempo is overloaded or failing: retry later; check the service's status page if it persists"
    else:
        hint = "unexpected answer: check that --tempo-url is Tempo's query base"
    return Diagnosis(status_detail(response), hint, code_for_status(status))
