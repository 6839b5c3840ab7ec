"""The ``query`` and ``trace`` commands: TraceQL against Tempo, answered with cost and latency tables."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console

from orbcast import gates
from orbcast.approx import approximate_report
from orbcast.errors import EndpointNotFound
from orbcast.options import Output, Runtime, check_output, output_option, with_settings
from orbcast.readback import read_generations
from orbcast.report import (
    Report,
    build_report,
    checks_table,
    generation_dict,
    header_line,
    markdown,
    report_json,
    rows_csv,
    tables,
)
from orbcast.tempo import TempoClient
from orbcast.timeparse import iso, resolve_window
from orbcast.trace_view import parse_trace_id, render_tree, trace_json
from orbcast.traceql import TABLE_FIELDS, prepare

DEFAULT_LIMIT = 5000
SLOWEST = 10
APPROX_FORMATS = (Output.table, Output.json, Output.markdown)


def query(
    rt: Runtime,
    text: Annotated[
        str | None,
        typer.Argument(
            metavar="[QUERY]",
            help="TraceQL ('{ ... }'), or a bare expression such as 'duration > 5s' for generation spans. "
            "Omitted: every generation in the window",
            show_default=False,
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="DURATION|TIME", help="Start of the window: 24h, 7d or a time [24h]"),
    ] = None,
    from_: Annotated[str | None, typer.Option("--from", metavar="TIME", help="Start of the window")] = None,
    to: Annotated[str | None, typer.Option("--to", metavar="TIME", help="End of the window [now]")] = None,
    by: Annotated[
        str,
        typer.Option(
            "--by",
            metavar="GROUP",
            help="Group by model, provider, user, session, api-key, status or any span/resource attribute "
            "(e.g. span.trace.metadata.feature)",
        ),
    ] = "model",
    limit: Annotated[
        int,
        typer.Option(
            "--limit",
            min=1,
            help="Most traces per Tempo search; a search that reaches it is reported as truncated",
        ),  # fmt: skip
    ] = DEFAULT_LIMIT,
    raw: Annotated[
        bool, typer.Option("--raw", help="Send the query exactly as typed: no shorthand, no select() added")
    ] = False,
    approx: Annotated[
        bool,
        typer.Option(
            "--approx",
            help="Figures from TraceQL metrics instead of listing generations: for windows too large to "
            "list; approximate, and leaves out backfilled spans on default Tempo settings",
        ),
    ] = False,
    fail_if: Annotated[
        list[str] | None,
        typer.Option(
            "--fail-if",
            metavar="CONDITION",
            help="Exit 8 when the condition holds, repeatable: 'p95 > 5s', 'cost > 10', 'error_rate > 0.02', "
            "'count < 1', 'model=openai/gpt-4o: p95 > 3s'",
        ),
    ] = None,
    output: Annotated[Output, output_option()] = Output.table,
) -> None:
    """Ask Tempo and answer with latency and cost tables computed from the generation spans.

    Percentiles are exact (one generation per trace, every matching trace) and cost is what OpenRouter
    charged. A window that ends in the past is searched up to now so that spans pushed later (backfill)
    are found; results that may be incomplete are marked truncated, never silently.

    Examples:

    \b
      orbcast query                                         # every generation of the last 24h
      orbcast query 'duration > 5s' --since 7d              # shorthand for the generation spans
      orbcast query '{ resource.service.name = "openrouter" && status = error }' --by provider
      orbcast query --by span.trace.metadata.feature --output markdown >> "$GITHUB_STEP_SUMMARY"
      orbcast query --since 1h --fail-if 'p95 > 5s' --fail-if 'error_rate > 2%'
      orbcast query --from 2026-11-01 --to 2026-11-08 --output csv > november.csv
    """
    if approx:
        check_output(output, APPROX_FORMATS)
    now = datetime.now(UTC)
    window = resolve_window(since, from_, to, default_since="24h", now=now)
    conditions = gates.parse_conditions(fail_if)
    per_generation = output in (Output.json, Output.jsonl, Output.csv)
    prepared = prepare(
        text,
        raw=raw,
        group_by=by,
        fields=None if per_generation else TABLE_FIELDS,
        also_group_by=[c.scope_key for c in conditions if c.scope_key],
    )
    rt.ui.detail(f"query sent: {prepared.sent}")
    with TempoClient(rt.settings, ui=rt.ui) as client, _progress(rt, "asking Tempo") as tick:
        if approx:
            report = approximate_report(client, prepared, window, group_by=by, on_piece=tick)
        else:
            found = read_generations(client, prepared, window, limit=limit, now=now, on_page=tick)
            report = build_report(
                found.rows,
                group_by=by,
                query=prepared.sent,
                window={"from": iso(window.start), "to": iso(window.end)},
                truncated=found.truncated,
                warnings=found.warnings,
            )
            if found.searched:
                report.searched = {"from": iso(found.searched[0]), "to": iso(found.searched[1])}
            for note in found.notes:
                (rt.ui.info if output is Output.table else rt.ui.detail)(note)
        rt.ui.detail(f"requests to Tempo: {client.requests}")
    report.label = text.strip() if text and text.strip() else "(all generations)"
    report.checks = gates.evaluate(conditions, report)
    if conditions and report.truncated:
        report.warnings.append("--fail-if was measured on truncated results")
    for warning in report.warnings:
        rt.ui.warn(warning)
    _emit(rt, report, output, typed=text)
    gates.enforce(report.checks)


@contextmanager
def _progress(rt: Runtime, label: str) -> Iterator[Callable[[int, int], None]]:
    with rt.ui.progress() as progress:
        if progress is None:

            def plain(done: int, total: int) -> None:
                if total > 1:
                    rt.ui.detail(f"{label}: {done}/{total}")

            yield plain
            return
        task = progress.add_task(label, total=None, detail="")

        def tick(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield tick


def _console() -> Console:
    """Tables on stdout: the terminal's width, or wide enough for every column when redirected."""
    console = Console(file=sys.stdout, highlight=False)
    if not console.is_terminal:
        console = Console(file=sys.stdout, highlight=False, width=240, no_color=True)
    return console


def _emit(rt: Runtime, report: Report, output: Output, *, typed: str | None) -> None:
    if output is Output.json:
        payload = report_json(report)
        payload["query_input"] = typed
        rt.ui.data(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
    elif output is Output.jsonl:
        _write_lines(orjson.dumps(generation_dict(r, report.group_by)).decode() for r in report.generations)
    elif output is Output.csv:
        _write_lines(line.rstrip("\n") for line in rows_csv(report) if line)
    elif output is Output.markdown:
        rt.ui.data(markdown(report, slow=SLOWEST))
    else:
        console = _console()
        console.print(header_line(report), markup=False, soft_wrap=True)
        for table in tables(report, slow=SLOWEST):
            console.print(table)
        if report.checks:
            console.print(checks_table(report))


def _write_lines(lines: Iterator[str] | Any) -> None:
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= 2000:
            sys.stdout.write("\n".join(batch) + "\n")
            batch.clear()
    if batch:
        sys.stdout.write("\n".join(batch) + "\n")
    sys.stdout.flush()


def trace(
    rt: Runtime,
    trace_id: Annotated[
        str,
        typer.Argument(
            metavar="TRACE_ID",
            help="32 hex characters, the shorter form search prints (leading zeros trimmed), or a generation "
            "ID (gen-...)",
            show_default=False,
        ),
    ],
    attributes: Annotated[
        bool, typer.Option("--attributes/--no-attributes", help="Show span and resource attributes")
    ] = True,
    output: Annotated[Output, output_option(choices=(Output.table, Output.json))] = Output.table,
) -> None:
    """Show one trace as a tree of spans with their timings and attributes.

    Looks the trace up by ID without a time window, which also finds backfilled traces at once.

    Examples:

    \b
      orbcast trace 1ac6f54f198c9b3372e30927e0ca73c4
      orbcast trace 25e12e6a96fad0ac7718a6f5b21c35        # as search printed it: zeros restored
      orbcast trace gen-1795727801-UdOSXap8CJ0Kn6q4MlgE   # by OpenRouter generation ID
      orbcast trace 1ac6f54f198c9b3372e30927e0ca73c4 --output json | jq '.spans[0].attributes'
    """
    check_output(output, (Output.table, Output.json))
    full = parse_trace_id(trace_id)
    with TempoClient(rt.settings, ui=rt.ui) as client:
        spans = client.trace(full)
    if not spans:
        raise EndpointNotFound(
            f"trace {full} is not in Tempo",
            hint="check the ID; spans pushed seconds ago may still be on their way, and Tempo keeps traces "
            "only for its retention period",
        )
    if output is Output.json:
        rt.ui.data(orjson.dumps(trace_json(full, spans), option=orjson.OPT_INDENT_2).decode())
        return
    _console().print(render_tree(full, spans, show_attributes=attributes))


def register(app: typer.Typer) -> None:
    app.command("query")(with_settings(query))
    app.command("trace")(with_settings(trace))
