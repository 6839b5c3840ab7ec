"""``orbcast test-connection`` against loopback fakes of OpenRouter, an OTLP receiver and Tempo."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from rich.console import Console

from orbcast import diagnosis
from orbcast import tracing_diagnosis as td
from orbcast.commands.connection import _rich
from orbcast.config import Settings, load_settings, register_secret
from orbcast.connection import CheckResult, Status, exit_code
from orbcast.errors import ExitCode
from tests.conftest import Result
from tests.fake_services import FakeOpenRouter, FakeOTLP, FakeTempo, Reply
from tests.otlp_schema import attributes

OR_KEY = "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"
MGMT_KEY = "sk-or-v1-m4n4g3m3nt0000111122223333444455556666777788889999aaaabbbbcccc"
OTLP_USER = "1234567"
TEMPO_USER = "7654321"
TOKEN = "glc_eyJvIjoiMTIzNDU2NyIsIm4iOiJvcmJjYXN0LXRlc3QiLCJrIjoiU0VDUkVUIn0="
TEMPO_TOKEN = "glc_eyJvIjoiNzY1NDMyMSIsIm4iOiJvcmJjYXN0LXJlYWQiLCJrIjoiUkVBRFNFQ1JFVCJ9"
BASIC_OTLP = base64.b64encode(f"{OTLP_USER}:{TOKEN}".encode()).decode()
BASIC_TEMPO = base64.b64encode(f"{TEMPO_USER}:{TEMPO_TOKEN}".encode()).decode()
SECRETS = (OR_KEY, MGMT_KEY, TOKEN, TEMPO_TOKEN, BASIC_OTLP, BASIC_TEMPO)
FIELDS = {"name", "status", "url", "http_status", "ms", "detail", "hint"}


@dataclass
class World:
    openrouter: FakeOpenRouter
    otlp: FakeOTLP
    tempo: FakeTempo

    def args(self, *extra: str, openrouter: bool = True, otlp: bool = True, tempo: bool = True) -> list[str]:
        out: list[str] = []
        if openrouter:
            out += ["--openrouter-url", f"{self.openrouter.url}/api/v1", "--openrouter-key", OR_KEY]
        if otlp:
            out += [
                "--otlp-endpoint",
                f"{self.otlp.url}/otlp",
                "--otlp-user",
                OTLP_USER,
                "--otlp-token",
                TOKEN,
            ]
        if tempo:
            out += ["--tempo-url", f"{self.tempo.url}/tempo", "--tempo-user", TEMPO_USER]
            out += ["--tempo-token", TEMPO_TOKEN]
        return out + list(extra)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("ORBCAST_BACKOFF_SCALE", "0.001")
    openrouter = FakeOpenRouter(
        {
            OR_KEY: {"label": "sk-or-v1-9f8...100", "is_management_key": False, "limit_remaining": 12.5},
            MGMT_KEY: {"label": "sk-or-v1-m4n...ccc", "is_management_key": True, "limit_remaining": None},
        }
    )
    otlp = FakeOTLP(OTLP_USER, TOKEN)
    tempo = FakeTempo(TEMPO_USER, TEMPO_TOKEN, otlp=otlp)
    yield World(openrouter, otlp, tempo)
    for fake in (openrouter, otlp, tempo):
        fake.close()


Cli = Callable[..., Result]


def run_json(cli: Cli, *args: str) -> tuple[Result, dict[str, dict[str, object]]]:
    res = cli("test-connection", "--output", "json", *args)
    rows = json.loads(res.stdout)
    assert isinstance(rows, list)
    for row in rows:
        assert set(row) == FIELDS
    return res, {row["name"]: row for row in rows}


def assert_no_secret(res: Result) -> None:
    for secret in SECRETS:
        assert secret not in res.output


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ----------------------------------------------------------------------------- everything fine


def test_all_checks_pass_and_history_needs_a_management_key(cli: Cli, world: World) -> None:
    res, rows = run_json(cli, *world.args())
    assert res.exit_code == 0, res.output
    assert [r for r in rows] == ["openrouter-key", "openrouter-history", "otlp-write", "tempo-read"]
    key = rows["openrouter-key"]
    assert key["status"] == "passed" and key["http_status"] == 200
    assert "sk-or-v1-9f8...100" in str(key["detail"]) and "not a management key" in str(key["detail"])
    assert "$12.50 credit left" in str(key["detail"])
    history = rows["openrouter-history"]
    assert history["status"] == "skipped"
    assert history["detail"] == "history needs a management key; CSV and id sources still work"
    assert rows["otlp-write"]["status"] == "passed"
    assert rows["otlp-write"]["url"] == f"{world.otlp.url}/otlp/v1/traces"
    assert "3.1.0-dev-ad33aa8faf" in str(rows["tempo-read"]["detail"])
    assert rows["tempo-read"]["status"] == "passed"
    # the empty export went out as the receiver wants it, and nothing was stored
    assert len(world.otlp.exports) == 1 and len(world.otlp.exports[0].resource_spans) == 0
    assert world.openrouter.queries == []
    assert "/tempo/api/v2/search/tags" in world.tempo.paths()
    assert "2 passed" not in res.stderr and "3 passed, 0 failed, 1 skipped" in res.stderr


def test_management_key_reported_by_key_endpoint_is_used_for_history(cli: Cli, world: World) -> None:
    args = world.args()
    args[args.index(OR_KEY)] = MGMT_KEY
    res, rows = run_json(cli, *args)
    assert res.exit_code == 0, res.output
    assert "management key" in str(rows["openrouter-key"]["detail"])
    assert rows["openrouter-history"]["status"] == "passed"
    assert world.openrouter.queries and world.openrouter.queries[0]["metrics"] == ["request_count"]


def test_separate_management_key_is_checked_for_history(cli: Cli, world: World) -> None:
    res, rows = run_json(cli, *world.args("--management-key", MGMT_KEY))
    assert res.exit_code == 0
    assert rows["openrouter-history"]["status"] == "passed"
    assert rows["openrouter-history"]["url"] == f"{world.openrouter.url}/api/v1/analytics/query"


def test_plain_table_lists_every_check_with_url_status_and_hint(cli: Cli, world: World) -> None:
    world.otlp.scopes = frozenset()
    res = cli("test-connection", *world.args())
    assert res.exit_code == 4
    lines = res.stdout.splitlines()
    otlp_line = next(line for line in lines if line.startswith("otlp-write"))
    assert "failed" in otlp_line and "403" in otlp_line and f"{world.otlp.url}/otlp/v1/traces" in otlp_line
    assert any(line.strip().startswith("hint:") and "traces:write" in line for line in lines)
    assert any(line.startswith("openrouter-history") and "skipped" in line for line in lines)
    assert_no_secret(res)


# ----------------------------------------------------------------------------- nothing configured, --only


def test_nothing_configured_exits_3_with_a_hint(cli: Cli) -> None:
    res = cli("test-connection")
    assert res.exit_code == 3
    assert "nothing to test" in res.stderr
    assert "ORBCAST_OTLP_ENDPOINT" in res.stderr and "OPENROUTER_API_KEY" in res.stderr
    assert "skipped" in res.stdout


def test_nothing_configured_json_rows_are_all_skipped_with_reasons(cli: Cli) -> None:
    res, rows = run_json(cli, "--round-trip")
    assert res.exit_code == 3
    assert {r["status"] for r in rows.values()} == {"skipped"}
    assert "--tempo-url" in str(rows["tempo-read"]["detail"])
    assert "--otlp-endpoint" in str(rows["otlp-write"]["detail"])
    assert "needs both" in str(rows["round-trip"]["detail"])


def test_token_without_endpoint_is_named_in_the_skip_reason(cli: Cli) -> None:
    res, rows = run_json(cli, "--otlp-token", TOKEN)
    assert res.exit_code == 3
    assert "otlp_token set without it" in str(rows["otlp-write"]["detail"])
    assert_no_secret(res)


def test_only_limits_the_checks_repeatable_or_comma(cli: Cli, world: World) -> None:
    res, rows = run_json(cli, *world.args("--only", "otlp,tempo"))
    assert list(rows) == ["otlp-write", "tempo-read"] and res.exit_code == 0
    assert world.openrouter.requests == []
    world.otlp.requests.clear()
    res, rows = run_json(cli, *world.args("--only", "tempo", "--only", "openrouter"))
    assert list(rows) == ["openrouter-key", "openrouter-history", "tempo-read"]
    assert world.otlp.requests == []


def test_only_a_part_that_is_not_configured_exits_3(cli: Cli, world: World) -> None:
    res, rows = run_json(cli, *world.args("--only", "tempo", tempo=False))
    assert res.exit_code == 3 and list(rows) == ["tempo-read"]


@pytest.mark.parametrize(
    "args",
    [
        ("--only", "grafana"),
        ("--only", ","),
        ("--timeout", "soon"),
        ("--round-trip-timeout", "0"),
        ("-o", "csv"),
    ],
)
def test_bad_flags_are_usage_errors(cli: Cli, args: tuple[str, ...]) -> None:
    res = cli("test-connection", *args)
    assert res.exit_code == 2
    assert "Traceback" not in res.output and res.stderr.startswith("error:")


def test_help_has_an_example(cli: Cli) -> None:
    res = cli("test-connection", "--help")
    assert res.exit_code == 0
    assert "orbcast test-connection --only otlp,tempo --round-trip" in res.stdout
    assert "--round-trip-timeout" in res.stdout


# ----------------------------------------------------------------------------- OpenRouter failures


def test_invalid_openrouter_key_is_401_exit_4(cli: Cli, world: World) -> None:
    args = world.args(otlp=False, tempo=False)
    args[args.index(OR_KEY)] = "sk-or-v1-revoked-0000000000000000000000000000"
    res, rows = run_json(cli, *args)
    assert res.exit_code == 4
    key = rows["openrouter-key"]
    assert key["status"] == "failed" and key["http_status"] == 401
    assert "invalid, revoked or expired" in str(key["hint"]) and "OPENROUTER_API_KEY" in str(key["hint"])
    assert rows["openrouter-history"]["detail"] == "not checked: the OpenRouter key check failed"


def test_management_key_that_is_not_one_is_403_exit_4(cli: Cli, world: World) -> None:
    res, rows = run_json(cli, *world.args("--management-key", OR_KEY, otlp=False, tempo=False))
    assert res.exit_code == 4
    history = rows["openrouter-history"]
    assert history["status"] == "failed" and history["http_status"] == 403
    assert "not a management key" in str(history["hint"]) and "management-keys" in str(history["hint"])
    assert "Only management keys" in str(history["detail"])


def test_openrouter_url_without_api_v1_is_404_exit_5(cli: Cli, world: World) -> None:
    args = world.args(otlp=False, tempo=False)
    args[args.index(f"{world.openrouter.url}/api/v1")] = world.openrouter.url
    res, rows = run_json(cli, *args)
    assert res.exit_code == 5
    assert rows["openrouter-key"]["http_status"] == 404
    assert "must end in /api/v1" in str(rows["openrouter-key"]["hint"])


def test_openrouter_outage_is_exit_6(cli: Cli, world: World) -> None:
    world.openrouter.script("/api/v1/key", Reply(503, {"error": {"code": 503, "message": "overloaded"}}))
    res, rows = run_json(cli, *world.args(otlp=False, tempo=False))
    assert res.exit_code == 6
    assert "overloaded" in str(rows["openrouter-key"]["detail"])
    assert "status.openrouter.ai" in str(rows["openrouter-key"]["hint"])


# ----------------------------------------------------------------------------- OTLP failures


def test_otlp_bad_token_is_401_exit_4_naming_the_instance_id(cli: Cli, world: World) -> None:
    args = world.args(openrouter=False, tempo=False)
    args[args.index(TOKEN)] = "glc_wrong_token_value_1234567890"
    res, rows = run_json(cli, *args)
    assert res.exit_code == 4
    row = rows["otlp-write"]
    assert row["status"] == "failed" and row["http_status"] == 401
    assert "bad credentials" in str(row["hint"]) and "instance ID" in str(row["hint"])


def test_otlp_token_without_scope_is_403_naming_traces_write(cli: Cli, world: World) -> None:
    world.otlp.scopes = frozenset({"traces:read"})
    res, rows = run_json(cli, *world.args(openrouter=False, tempo=False))
    assert res.exit_code == 4
    assert rows["otlp-write"]["http_status"] == 403
    assert "traces:write" in str(rows["otlp-write"]["hint"])


def test_otlp_401_that_mentions_the_scope_is_diagnosed_as_scope(cli: Cli, world: World) -> None:
    body = {"status": "error", "error": "authentication error: invalid scope requested"}
    world.otlp.script("/otlp/v1/traces", Reply(401, body))
    res, rows = run_json(cli, *world.args(openrouter=False, tempo=False))
    assert res.exit_code == 4
    assert "traces:write" in str(rows["otlp-write"]["hint"])


def test_otlp_url_without_otlp_path_is_404_exit_5_and_names_the_fix(cli: Cli, world: World) -> None:
    args = world.args(openrouter=False, tempo=False)
    args[args.index(f"{world.otlp.url}/otlp")] = world.otlp.url
    res, rows = run_json(cli, *args)
    assert res.exit_code == 5
    row = rows["otlp-write"]
    assert row["http_status"] == 404 and row["url"] == f"{world.otlp.url}/v1/traces"
    assert row["hint"] == f"the OTLP URL lacks the /otlp path: use {world.otlp.url}/otlp"


def test_otlp_endpoint_with_v1_traces_twice(cli: Cli, world: World) -> None:
    args = world.args(openrouter=False, tempo=False)
    args[args.index(f"{world.otlp.url}/otlp")] = f"{world.otlp.url}/otlp/v1/traces/v1/traces"
    res, rows = run_json(cli, *args)
    assert res.exit_code == 5
    assert "/v1/traces twice" in str(rows["otlp-write"]["hint"])


def test_percent_encoded_authorization_header_flag(cli: Cli, world: World) -> None:
    header = f"Authorization=Basic%20{BASIC_OTLP}"
    args = ["--otlp-endpoint", f"{world.otlp.url}/otlp", "--otlp-header", header]
    res, rows = run_json(cli, *args, "-v")
    assert res.exit_code == 4
    hint = str(rows["otlp-write"]["hint"])
    assert "percent-encoded" in hint and "plain space" in hint
    assert_no_secret(res)


def test_percent_encoded_twice_in_otel_exporter_otlp_headers(
    cli: Cli, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Basic%2520{BASIC_OTLP}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"{world.otlp.url}/otlp")
    res, rows = run_json(cli, "-v")
    assert res.exit_code == 4
    hint = str(rows["otlp-write"]["hint"])
    assert "OTEL_EXPORTER_OTLP_HEADERS" in hint and "encoded twice" in hint
    assert_no_secret(res)


def test_correct_otel_exporter_otlp_headers_pass(
    cli: Cli, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Basic%20{BASIC_OTLP}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"{world.otlp.url}/otlp")
    res, rows = run_json(cli)
    assert res.exit_code == 0 and rows["otlp-write"]["status"] == "passed"


def test_otlp_token_without_user_goes_as_bearer_and_is_named(cli: Cli, world: World) -> None:
    res, rows = run_json(cli, "--otlp-endpoint", f"{world.otlp.url}/otlp", "--otlp-token", TOKEN)
    assert res.exit_code == 4
    assert "--otlp-user" in str(rows["otlp-write"]["hint"]) and "Basic" in str(rows["otlp-write"]["hint"])


def test_otlp_without_any_credentials(cli: Cli, world: World) -> None:
    res, rows = run_json(cli, "--otlp-endpoint", f"{world.otlp.url}/otlp")
    assert res.exit_code == 4
    assert "no credentials were sent" in str(rows["otlp-write"]["hint"])


@pytest.mark.parametrize(
    ("reply", "code", "words"),
    [
        (Reply(415, "415 unsupported media type"), 5, "not an OTLP/HTTP receiver"),
        (Reply(503, "upstream connect error"), 6, "retry later"),
        (Reply(429, "rate limited", headers={"Retry-After": "5"}), 6, "rate limiting"),
        (Reply(301, "", headers={"Location": "https://elsewhere.example/otlp/v1/traces"}), 5, "redirects"),
        (Reply(200, "<!doctype html><html>Grafana</html>", "text/html"), 5, "no OTLP/HTTP receiver"),
    ],
)
def test_otlp_other_answers(cli: Cli, world: World, reply: Reply, code: int, words: str) -> None:
    world.otlp.script("/otlp/v1/traces", reply)
    res, rows = run_json(cli, *world.args(openrouter=False, tempo=False))
    assert res.exit_code == code, res.output
    assert rows["otlp-write"]["status"] == "failed" and rows["otlp-write"]["http_status"] == reply.status
    assert words in str(rows["otlp-write"]["hint"])


# ----------------------------------------------------------------------------- Tempo failures


def test_tempo_user_equal_to_the_otlp_instance_id(cli: Cli, world: World) -> None:
    args = world.args(openrouter=False, otlp=False, tempo=False)
    args += [
        "--tempo-url",
        f"{world.tempo.url}/tempo",
        "--tempo-user",
        OTLP_USER,
        "--tempo-token",
        TEMPO_TOKEN,
    ]
    args += ["--otlp-user", OTLP_USER]
    res, rows = run_json(cli, *args)
    assert res.exit_code == 4
    row = rows["tempo-read"]
    assert row["status"] == "failed" and row["http_status"] == 401
    assert f"the Tempo user equals the OTLP instance ID ({OTLP_USER})" in str(row["hint"])


def test_tempo_token_without_traces_read_is_403(cli: Cli, world: World) -> None:
    world.tempo.scopes = frozenset({"traces:write"})
    res, rows = run_json(cli, *world.args(openrouter=False, otlp=False))
    assert res.exit_code == 4
    assert rows["tempo-read"]["http_status"] == 403
    assert "traces:read" in str(rows["tempo-read"]["hint"])


def test_tempo_token_falling_back_to_the_otlp_token_is_mentioned(cli: Cli, world: World) -> None:
    world.tempo.scopes = frozenset()
    args = [
        "--tempo-url",
        f"{world.tempo.url}/tempo",
        "--tempo-user",
        TEMPO_USER,
        "--otlp-token",
        TEMPO_TOKEN,
    ]
    res, rows = run_json(cli, *args)
    assert res.exit_code == 4
    assert "defaults to the OTLP token" in str(rows["tempo-read"]["hint"])


def test_tempo_bad_password_is_401(cli: Cli, world: World) -> None:
    args = world.args(openrouter=False, otlp=False)
    args[args.index(TEMPO_TOKEN)] = "glc_not_the_right_one_000000000"
    res, rows = run_json(cli, *args)
    assert res.exit_code == 4
    assert "bad credentials" in str(rows["tempo-read"]["hint"]) and "Tempo card" in str(
        rows["tempo-read"]["hint"]
    )


def test_tempo_without_user_sends_bearer_and_is_named(cli: Cli, world: World) -> None:
    res, rows = run_json(cli, "--tempo-url", f"{world.tempo.url}/tempo", "--tempo-token", TEMPO_TOKEN)
    assert res.exit_code == 4
    assert "set --tempo-user" in str(rows["tempo-read"]["hint"])


def test_tempo_url_without_tempo_path_is_404_exit_5(cli: Cli, world: World) -> None:
    args = world.args(openrouter=False, otlp=False)
    args[args.index(f"{world.tempo.url}/tempo")] = world.tempo.url
    res, rows = run_json(cli, *args)
    assert res.exit_code == 5
    row = rows["tempo-read"]
    assert row["http_status"] == 404 and row["url"] == f"{world.tempo.url}/api/echo"
    assert row["hint"] == f"the Tempo URL lacks the /tempo path: use {world.tempo.url}/tempo"


def test_tempo_url_with_a_pasted_api_path(cli: Cli, world: World) -> None:
    args = world.args(openrouter=False, otlp=False)
    args[args.index(f"{world.tempo.url}/tempo")] = f"{world.tempo.url}/tempo/api/search"
    res, rows = run_json(cli, *args)
    assert res.exit_code == 5
    assert rows["tempo-read"]["hint"] == (
        f"--tempo-url is Tempo's base URL, without /api/…: use {world.tempo.url}/tempo"
    )


def test_tempo_url_answering_a_web_page(cli: Cli, world: World) -> None:
    world.tempo.script("/tempo", Reply(200, "<html><body>Grafana</body></html>", "text/html"))
    res, rows = run_json(cli, *world.args(openrouter=False, otlp=False))
    assert res.exit_code == 5
    assert "an HTML page" in str(rows["tempo-read"]["detail"])


def test_tempo_without_buildinfo_still_passes_on_search_tags(cli: Cli, world: World) -> None:
    world.tempo.script("/tempo/api/status/buildinfo", Reply(404, "404 page not found\n"))
    res, rows = run_json(cli, *world.args(openrouter=False, otlp=False))
    assert res.exit_code == 0
    assert "version not reported" in str(rows["tempo-read"]["detail"])


def test_tempo_search_tags_refused_after_echo_is_auth(cli: Cli, world: World) -> None:
    world.tempo.script("/tempo/api/v2/search/tags", Reply(403, "access denied: scope"))
    res, rows = run_json(cli, *world.args(openrouter=False, otlp=False))
    assert res.exit_code == 4
    assert rows["tempo-read"]["url"] == f"{world.tempo.url}/tempo/api/v2/search/tags?scope=resource&limit=1"


# ----------------------------------------------------------------------------- network failures


def test_connection_refused(cli: Cli) -> None:
    port = closed_port()
    res, rows = run_json(cli, "--tempo-url", f"http://127.0.0.1:{port}")
    assert res.exit_code == 6
    row = rows["tempo-read"]
    assert row["status"] == "failed" and row["http_status"] is None
    assert row["detail"] == f"connection refused by 127.0.0.1:{port}"
    assert "nothing listens" in str(row["hint"])


def test_dns_failure_is_named() -> None:
    # Built from the error chain httpx raises for an unresolvable name, so no resolver is ever asked.
    cause = socket.gaierror(-2, "Name or service not known")
    error = httpx.ConnectError("[Errno -2] Name or service not known")
    error.__cause__ = cause
    found = diagnosis.transport(error, "http://orbcast-test.invalid/otlp/v1/traces", 5)
    assert found.detail == "DNS lookup failed for orbcast-test.invalid"
    assert "does not resolve" in str(found.hint)
    assert found.code == ExitCode.UNAVAILABLE


def test_tls_to_a_plain_http_port(cli: Cli, world: World) -> None:
    url = world.tempo.url.replace("http://", "https://") + "/tempo"
    res, rows = run_json(cli, "--tempo-url", url)
    assert res.exit_code == 6
    assert str(rows["tempo-read"]["detail"]).startswith("TLS failure")
    assert "does not speak TLS" in str(rows["tempo-read"]["hint"]) and "http://" in str(
        rows["tempo-read"]["hint"]
    )


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


def test_tls_certificate_not_trusted(cli: Cli, self_signed: tuple[str, str]) -> None:
    tempo = FakeTempo(TEMPO_USER, TEMPO_TOKEN, tls=self_signed)
    try:
        res, rows = run_json(cli, "--tempo-url", f"{tempo.url}/tempo")
    finally:
        tempo.close()
    assert res.exit_code == 6
    assert "certificate" in str(rows["tempo-read"]["detail"]) and "not trusted" in str(
        rows["tempo-read"]["detail"]
    )
    assert "SSL_CERT_FILE" in str(rows["tempo-read"]["hint"])


def test_tls_certificate_trusted_through_ssl_cert_file(
    cli: Cli, self_signed: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", self_signed[0])
    tempo = FakeTempo(TEMPO_USER, TEMPO_TOKEN, tls=self_signed)
    try:
        res, rows = run_json(cli, "--tempo-url", f"{tempo.url}/tempo", "--tempo-user", TEMPO_USER)
        res2, rows2 = run_json(
            cli, "--tempo-url", f"{tempo.url}/tempo", "--tempo-user", TEMPO_USER, "--tempo-token", TEMPO_TOKEN
        )
    finally:
        tempo.close()
    assert rows["tempo-read"]["http_status"] == 401 and res.exit_code == 4
    assert res2.exit_code == 0 and rows2["tempo-read"]["status"] == "passed"


def test_tls_certificate_for_another_name(
    cli: Cli, self_signed: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", self_signed[0])
    tempo = FakeTempo(TEMPO_USER, TEMPO_TOKEN, tls=self_signed)
    try:
        res, rows = run_json(cli, "--tempo-url", tempo.url.replace("127.0.0.1", "localhost") + "/tempo")
    finally:
        tempo.close()
    assert res.exit_code == 6
    assert "is for another host name" in str(rows["tempo-read"]["detail"])


def test_timeout_is_short_and_named(cli: Cli, world: World) -> None:
    world.otlp.script("/otlp/v1/traces", Reply(200, {"partialSuccess": {}}, delay=5))
    res, rows = run_json(cli, *world.args("--timeout", "0.3", openrouter=False, tempo=False))
    assert res.exit_code == 6
    assert str(rows["otlp-write"]["detail"]).startswith("timed out after 0.3 s")
    assert "--timeout" in str(rows["otlp-write"]["hint"])


def test_connection_dropped_without_answer(cli: Cli, world: World) -> None:
    world.otlp.script("/otlp/v1/traces", Reply(drop=True))
    res, rows = run_json(cli, *world.args(openrouter=False, tempo=False))
    assert res.exit_code == 6
    assert "closed without an HTTP answer" in str(rows["otlp-write"]["detail"])


def test_exit_code_is_the_first_failure(cli: Cli, world: World) -> None:
    port = closed_port()
    args = world.args(tempo=False)
    args[args.index(f"{world.openrouter.url}/api/v1")] = world.openrouter.url  # 404 -> 5
    args[args.index(TOKEN)] = "glc_wrong_token_value_1234567890"  # 401 -> 4
    args += ["--tempo-url", f"http://127.0.0.1:{port}"]  # refused -> 6
    res, rows = run_json(cli, *args)
    assert [rows[n]["status"] for n in ("openrouter-key", "otlp-write", "tempo-read")] == ["failed"] * 3
    assert res.exit_code == 5
    res, rows = run_json(cli, *(args + ["--only", "otlp,tempo"]))
    assert res.exit_code == 4


# ----------------------------------------------------------------------------- round trip


def test_round_trip_pushes_a_labelled_span_and_finds_it(cli: Cli, world: World) -> None:
    res, rows = run_json(cli, *world.args("--round-trip", openrouter=False))
    assert res.exit_code == 0, res.output
    row = rows["round-trip"]
    assert row["status"] == "passed" and "visible in Tempo after" in str(row["detail"])
    assert "3 lookups" in str(row["detail"])
    pushed = [m for m in world.otlp.exports if m.resource_spans]
    assert len(pushed) == 1
    resource = pushed[0].resource_spans[0]
    assert attributes(resource.resource)["service.name"] == "orbcast-test-connection"
    span = resource.scope_spans[0].spans[0]
    assert attributes(span)["orbcast.test_connection"] is True
    trace_id = span.trace_id.hex()
    assert trace_id in str(row["detail"])
    lookups = [r for r in world.tempo.requests if r.path.startswith("/tempo/api/v2/traces/")]
    assert len(lookups) == 3 and all(r.query == {} for r in lookups)  # no start/end


def test_round_trip_timeout_fails_with_a_hint(cli: Cli, world: World) -> None:
    world.tempo.visible_after = None
    res, rows = run_json(cli, *world.args("--round-trip", "--round-trip-timeout", "0.4", openrouter=False))
    assert res.exit_code == 6
    row = rows["round-trip"]
    assert row["status"] == "failed" and "not visible in Tempo after 0.4 s" in str(row["detail"])
    assert "same stack" in str(row["hint"]) and "--round-trip-timeout" in str(row["hint"])


def test_round_trip_lookup_refused_is_auth(cli: Cli, world: World) -> None:
    world.tempo.script("/tempo/api/v2/traces/", Reply(403, "scope traces:read missing"))
    res, rows = run_json(cli, *world.args("--round-trip", openrouter=False))
    assert res.exit_code == 4
    assert rows["round-trip"]["http_status"] == 403 and "traces:read" in str(rows["round-trip"]["hint"])


def test_round_trip_is_skipped_when_a_part_is_left_out_or_failed(cli: Cli, world: World) -> None:
    res, rows = run_json(cli, *world.args("--round-trip", "--only", "tempo"))
    assert res.exit_code == 0
    assert rows["round-trip"]["status"] == "skipped" and "--only leaves out otlp" in str(
        rows["round-trip"]["detail"]
    )
    world.otlp.scopes = frozenset()
    res, rows = run_json(cli, *world.args("--round-trip"))
    assert res.exit_code == 4
    assert rows["round-trip"]["detail"] == "not run: the OTLP write check failed"


def test_round_trip_not_requested_has_no_row(cli: Cli, world: World) -> None:
    _, rows = run_json(cli, *world.args())
    assert "round-trip" not in rows


# ----------------------------------------------------------------------------- secrets


@pytest.mark.parametrize("fmt", ["table", "json"])
@pytest.mark.parametrize("broken", [False, True])
def test_no_secret_in_any_output(cli: Cli, world: World, fmt: str, broken: bool) -> None:
    if broken:
        world.otlp.scopes = frozenset()
        world.tempo.script("/tempo/api/v2/search/tags", Reply(401, f"bad auth for {BASIC_TEMPO}"))
        world.openrouter.script(
            "/api/v1/analytics/query", Reply(500, {"error": {"message": f"key {MGMT_KEY}"}})
        )
    args = world.args("--management-key", MGMT_KEY, "--round-trip", "--verbose", "--output", fmt)
    res = cli("test-connection", *args)
    assert res.exit_code == (6 if broken else 0), res.output  # the history 500 comes first
    assert "Basic auth as user 1234567" in res.stderr  # --verbose said something about auth
    assert_no_secret(res)


def test_secrets_in_urls_are_not_shown(cli: Cli, world: World) -> None:
    url = f"http://{OTLP_USER}:{TOKEN}@127.0.0.1:{closed_port()}/otlp"
    res, rows = run_json(cli, "--otlp-endpoint", url, "-v")
    assert res.exit_code == 6
    assert rows["otlp-write"]["url"] is not None and "@" not in str(rows["otlp-write"]["url"])
    assert_no_secret(res)


# ----------------------------------------------------------------------------- a real Tempo (opt-in)

_REAL = {k: os.environ.get(k) for k in ("ORBCAST_TEST_TEMPO_URL", "ORBCAST_TEST_OTLP_ENDPOINT")}
_REAL_AUTH = {
    flag: os.environ.get(env)
    for flag, env in (
        ("--otlp-user", "ORBCAST_TEST_OTLP_USER"),
        ("--otlp-token", "ORBCAST_TEST_OTLP_TOKEN"),
        ("--tempo-user", "ORBCAST_TEST_TEMPO_USER"),
        ("--tempo-token", "ORBCAST_TEST_TEMPO_TOKEN"),
    )
}


@pytest.mark.tempo
@pytest.mark.skipif(
    not all(_REAL.values()), reason="set ORBCAST_TEST_TEMPO_URL and ORBCAST_TEST_OTLP_ENDPOINT to run"
)
def test_round_trip_against_a_real_tempo(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    args = ["--tempo-url", str(_REAL["ORBCAST_TEST_TEMPO_URL"])]
    args += ["--otlp-endpoint", str(_REAL["ORBCAST_TEST_OTLP_ENDPOINT"])]
    args += [item for flag, value in _REAL_AUTH.items() if value for item in (flag, value)]
    res, rows = run_json(cli, *args, "--round-trip", "--round-trip-timeout", "90s")
    assert res.exit_code == 0, res.output
    assert rows["round-trip"]["status"] == "passed"
    assert "visible in Tempo after" in str(rows["round-trip"]["detail"])
    for secret in (v for v in _REAL_AUTH.values() if v and len(v) > 12):
        assert secret not in res.output


# ----------------------------------------------------------------------------- Grafana Cloud host names
# Real grafana.net hosts cannot be reached from tests, so the hints that read the host name are
# checked on the pure functions (the loopback tests above cover the probe-based hints).


def _settings(**flags: object) -> Settings:
    return load_settings(flags)


def test_grafana_otlp_url_without_otlp_is_named_from_the_host() -> None:
    url = "https://otlp-gateway-prod-eu-west-2.grafana.net/v1/traces"
    hint = td.otlp_not_found_hint(url, None, _settings(otlp_endpoint=url))
    assert hint == (
        "the Grafana Cloud OTLP URL lacks /otlp: use https://otlp-gateway-prod-eu-west-2.grafana.net/otlp "
        "(/v1/traces is appended)"
    )


def test_grafana_tempo_url_used_as_otlp_endpoint() -> None:
    url = "https://tempo-prod-10-prod-eu-west-2.grafana.net/tempo/v1/traces"
    hint = td.otlp_not_found_hint(url, None, _settings(otlp_endpoint=url))
    assert "this is a Tempo query URL, not the OTLP gateway" in hint


def test_grafana_tempo_url_problems_from_the_host() -> None:
    assert "lacks /tempo" in td.tempo_not_found_hint("https://tempo-prod-10-prod-eu-west-2.grafana.net", None)
    gateway = td.tempo_not_found_hint("https://otlp-gateway-prod-eu-west-2.grafana.net/otlp", None)
    assert "this is the OTLP push gateway, not Tempo" in gateway


def test_signal_specific_endpoint_without_v1_traces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318")
    settings = load_settings({})
    hint = td.otlp_not_found_hint(settings.otlp_endpoint, None, settings)
    assert "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used exactly as given" in hint


def test_regions_that_differ_are_named() -> None:
    settings = _settings(
        otlp_endpoint="https://otlp-gateway-prod-us-east-0.grafana.net/otlp",
        tempo_url="https://tempo-prod-10-prod-eu-west-2.grafana.net/tempo",
    )
    assert td.region_note(settings) == (
        "the OTLP endpoint is in us-east-0 but the Tempo URL in eu-west-2: "
        "copy both from the same Grafana Cloud stack"
    )
    same = _settings(
        otlp_endpoint="https://otlp-gateway-prod-eu-west-2.grafana.net/otlp",
        tempo_url="https://tempo-prod-10-prod-eu-west-2.grafana.net/tempo",
    )
    assert td.region_note(same) is None


def test_exit_code_rules() -> None:
    skipped = CheckResult("a", Status.skipped, detail="not configured")
    passed = CheckResult("b", Status.passed)
    auth = CheckResult("c", Status.failed, code=ExitCode.AUTH)
    down = CheckResult("d", Status.failed, code=ExitCode.UNAVAILABLE)
    assert exit_code([skipped, skipped]) is ExitCode.CONFIG
    assert exit_code([skipped, passed]) is ExitCode.OK
    assert exit_code([passed, down, auth]) is ExitCode.UNAVAILABLE
    assert exit_code([auth, down]) is ExitCode.AUTH


def test_rich_table_for_terminals_shows_hints_and_no_secret() -> None:
    rows = [
        CheckResult(
            "otlp-write", Status.failed, "http://h/otlp/v1/traces", 401, 12, f"bad {TOKEN}", "fix it"
        ),
        CheckResult("tempo-read", Status.passed, f"http://u:{TEMPO_TOKEN}@h/tempo/api/echo", 200, 3, "ok"),
    ]
    register_secret(TOKEN)
    console = Console(file=io.StringIO(), width=160, force_terminal=True, no_color=True)
    console.print(_rich(rows))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "otlp-write" in text and "hint: fix it" in text and "failed" in text
    assert TOKEN not in text and TEMPO_TOKEN not in text
