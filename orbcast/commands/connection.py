"""``orbcast test-connection``: prove every configured credential works, and say what to fix if not."""

from __future__ import annotations

from typing import Annotated

import orjson
import typer
from rich.table import Table
from rich.text import Text

from orbcast.config import redact
from orbcast.connection import (
    CONFIGURE_HINT,
    GROUPS,
    NOTHING_CONFIGURED,
    CheckOptions,
    CheckResult,
    Status,
    exit_code,
    nothing_ran,
    run_checks,
)
from orbcast.errors import ConfigError, ExitCode, UsageError
from orbcast.options import Output, Runtime, check_output, output_option, with_settings
from orbcast.timeparse import parse_duration

_STYLE = {Status.passed: "green", Status.failed: "bold red", Status.skipped: "yellow"}


def parse_only(values: list[str] | None) -> frozenset[str]:
    """``--only otlp --only tempo`` or ``--only otlp,tempo``; every check when absent."""
    if not values:
        return frozenset(GROUPS)
    chosen = {v.strip().lower() for value in values for v in value.split(",") if v.strip()}
    unknown = sorted(chosen - set(GROUPS))
    if unknown or not chosen:
        raise UsageError(f"--only {', '.join(unknown) or '(empty)'}: choose from {', '.join(GROUPS)}")
    return frozenset(chosen)


def parse_seconds(text: str, flag: str) -> float:
    """``10``, ``2.5``, ``10s``, ``2m`` -> seconds (> 0)."""
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = parse_duration(text).total_seconds()
        except UsageError:
            raise UsageError(f"{flag} {text!r}: expected seconds (10) or a duration (10s, 2m)") from None
    if seconds <= 0:
        raise UsageError(f"{flag} {text!r}: must be more than 0")
    return seconds


def _plain(results: list[CheckResult]) -> str:
    """A table for logs and pipes: one line per check, detail and hint indented below."""
    rows = [r.to_dict() for r in results]
    width = max(len(r["name"]) for r in rows)
    lines = []
    for r in rows:
        http = str(r["http_status"]) if r["http_status"] is not None else "-"
        ms = f"{r['ms']} ms" if r["ms"] is not None else "-"
        lines.append(f"{r['name']:<{width}}  {r['status']:<7}  {http:>3}  {ms:>8}  {r['url'] or '-'}")
        if r["detail"]:
            lines.append(f"{'':<{width}}  {r['detail']}")
        if r["hint"]:
            lines.append(f"{'':<{width}}  hint: {r['hint']}")
    return "\n".join(lines)


def _rich(results: list[CheckResult]) -> Table:
    """The terminal table: the URL, detail and hint share the wide last column so nothing is cut."""
    table = Table(title="orbcast test-connection", title_justify="left")
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("http", justify="right")
    table.add_column("ms", justify="right")
    table.add_column("url / detail", overflow="fold", ratio=1)
    for result in results:
        r = result.to_dict()
        cell = Text(r["url"] or "", style="dim")
        if r["detail"]:
            cell.append(("\n" if r["url"] else "") + r["detail"], style="")
        if r["hint"]:
            cell.append("\nhint: " + r["hint"], style="cyan")
        table.add_row(
            r["name"],
            Text(r["status"], style=_STYLE[result.status]),
            str(r["http_status"] or "-"),
            str(r["ms"]) if r["ms"] is not None else "-",
            cell,
        )
    return table


def test_connection_cmd(
    rt: Runtime,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            metavar="openrouter|otlp|tempo",
            help="Run only these checks; repeatable or a comma list (default: all)",
        ),
    ] = None,
    round_trip: Annotated[
        bool,
        typer.Option(
            "--round-trip",
            help="Also push one labelled test span (service.name orbcast-test-connection) "
            "and wait until Tempo returns it",
        ),
    ] = False,
    round_trip_timeout: Annotated[
        str,
        typer.Option(
            "--round-trip-timeout", metavar="SECONDS", help="Give up on the round trip after this long"
        ),
    ] = "60s",
    timeout: Annotated[
        str, typer.Option("--timeout", metavar="SECONDS", help="Timeout of each request (no retries)")
    ] = "10s",
    output: Annotated[Output, output_option(choices=(Output.table, Output.json))] = Output.table,
) -> None:
    """Check the OpenRouter key, history access, the OTLP endpoint, Tempo and (optionally) a round trip.

    Each check is one row: passed, failed (with the URL, HTTP status, time and a one-line hint naming
    the cause: 401 vs 403, a missing /otlp or /tempo path, DNS, TLS, a Tempo user equal to the OTLP
    instance ID, a percent-encoded Authorization header, ...) or skipped (with the reason).
    Exit 0 when every configured check passed, 3 when nothing is configured, else the first failure's
    code: 4 credentials refused, 5 wrong URL, 6 unreachable or timed out.

    Examples:

    \b
      orbcast test-connection
      orbcast test-connection --only otlp,tempo --round-trip
      orbcast test-connection --output json --timeout 5s   # for CI
    """
    check_output(output, (Output.table, Output.json))
    options = CheckOptions(
        only=parse_only(only),
        round_trip=round_trip,
        round_trip_timeout=parse_seconds(round_trip_timeout, "--round-trip-timeout"),
        timeout=parse_seconds(timeout, "--timeout"),
    )
    results = run_checks(rt.settings, options, log=rt.ui.detail)
    if output is Output.json:
        payload = [r.to_dict() for r in results]
        rt.ui.data(redact(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode()))
    elif rt.ui.out.is_terminal:
        rt.ui.table(_rich(results))
    else:
        rt.ui.data(_plain(results))
    code = exit_code(results)
    if nothing_ran(results):
        raise ConfigError(NOTHING_CONFIGURED, hint=CONFIGURE_HINT)
    counts = {s: sum(r.status is s for r in results) for s in Status}
    rt.ui.info(", ".join(f"{n} {s.value}" for s, n in counts.items()))
    if code is not ExitCode.OK:
        raise typer.Exit(int(code))


def register(app: typer.Typer) -> None:
    app.command("test-connection")(with_settings(test_connection_cmd))
