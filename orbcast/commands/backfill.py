"""``orbcast backfill`` and ``orbcast replay``: history into Grafana Cloud Traces, none lost or sent twice."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from orbcast.backfill_ui import BackfillProgress, otlp_writer, report, sigterm_as_interrupt
from orbcast.backfilling import Backfill, Plan
from orbcast.console import explain_interrupt
from orbcast.errors import OrbcastError, PartialFailure, UsageError
from orbcast.fetching import DEFAULT_CONCURRENCY as FETCH_CONCURRENCY
from orbcast.fetching import MAX_CONCURRENCY as FETCH_MAX
from orbcast.options import Output, Runtime, check_output, output_option, span_options, with_settings
from orbcast.otlp import DEFAULT_BATCH_SPANS, DEFAULT_CONCURRENCY, JSON, MAX_CONCURRENCY, PROTOBUF
from orbcast.otlpfile import FILE_KINDS, detect_kind
from orbcast.sources import SourceSpec
from orbcast.timeparse import Window, resolve_window

SELECT = "Selection"
SEND = "Sending"
EXIT_CODES = """Exit codes: 0 done; 2 bad flag or (with --strict) malformed input; 3 no OTLP endpoint (or
Tempo URL for --skip-existing/--verify) configured; 4 credentials refused (401/403); 5 wrong endpoint path
(404/415); 6 endpoint unavailable after retries; 9 finished, but spans were rejected (partial success or
400), generations failed, or input lines were malformed; 130 interrupted (Ctrl-C, SIGTERM): everything
acknowledged so far is in the ledger and a re-run sends only the rest."""

BACKFILL_HELP = f"""Push OpenRouter generation history to Grafana Cloud Traces (any OTLP/HTTP endpoint) as
Broadcast-shaped spans.

Every generation acknowledged by the endpoint is recorded in a ledger (state directory), so a re-run of
the same window sends only what is missing, and a killed run resumes where it stopped. Trace and span
IDs derive from the generation id, so even --force re-sends land on the same traces.

Examples:

\b
  orbcast backfill --since 7d
  orbcast backfill --from 2026-11-01 --to 2026-11-08 --skip-existing --verify
  orbcast backfill --source csv:openrouter_activity_2026-11-20.csv --attr environment=production
  orbcast backfill --since 24h --dry-run
  orbcast backfill --since 30d --write-otlp history.otlp.jsonl   # air-gapped: replay it elsewhere

{EXIT_CODES}
"""

REPLAY_HELP = f"""Push files to Grafana Cloud Traces (any OTLP/HTTP endpoint): dashboard CSV exports, orbcast
JSONL, id lists (fetched from OpenRouter) or OTLP/HTTP JSON requests (one per file or one per line, e.g.
from --write-otlp), recognised from their content.

OTLP files are re-sent as they are (batched, and recorded in the ledger per trace); the other kinds are
converted like backfill. The ledger makes re-runs send only what is missing.

Examples:

\b
  orbcast replay history.jsonl
  orbcast replay openrouter_activity_2026-11-*.csv --attr team=search
  orbcast replay history.otlp.jsonl --encoding protobuf
  orbcast replay ids.txt --format ids --with-content

{EXIT_CODES}
"""


class Encoding(StrEnum):
    json = JSON
    protobuf = PROTOBUF


class Detail(StrEnum):
    full = "full"
    summary = "summary"


class FileFormat(StrEnum):
    csv = "csv"
    jsonl = "jsonl"
    ids = "ids"
    otlp = "otlp"


SinceOpt = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="WHEN",
        help="Window start: a duration back from now (7d) or a time [default: 24h from the API; files: all]",
        rich_help_panel=SELECT,
    ),
]
FromOpt = Annotated[
    str | None, typer.Option("--from", metavar="TIME", help="Window start as a time", rich_help_panel=SELECT)
]
ToOpt = Annotated[
    str | None, typer.Option("--to", metavar="TIME", help="Window end [default: now]", rich_help_panel=SELECT)
]
AttrOpt = Annotated[
    list[str] | None,
    typer.Option("--attr", metavar="K=V", help="Add trace.metadata.K=V to every generation (repeatable)"),
]
ContentOpt = Annotated[
    bool, typer.Option("--with-content", help="Also send prompt and completion (fetched per generation)")
]
PrivacyOpt = Annotated[
    bool, typer.Option("--privacy", help="Privacy mode: never send content [env ORBCAST_PRIVACY]")
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Do everything but the push; print counts, window and a sample span")
]
WriteOpt = Annotated[
    str | None,
    typer.Option(
        "--write-otlp",
        metavar="PATH",
        help="Write the OTLP/HTTP JSON requests here (one per line) instead of pushing",
    ),
]
SkipOpt = Annotated[
    bool,
    typer.Option(
        "--skip-existing", help="Ask Tempo which traces exist already (e.g. live Broadcast); send the gaps"
    ),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Send again what the ledger says was sent already")]
VerifyOpt = Annotated[
    bool, typer.Option("--verify", help="Afterwards, look up a sample of the pushed traces in Tempo by ID")
]
EncodingOpt = Annotated[
    Encoding,
    typer.Option(
        "--encoding",
        case_sensitive=False,
        help="OTLP body encoding: json (what Broadcast sends) or protobuf (Grafana's choice for bulk)",
        rich_help_panel=SEND,
    ),
]
GzipOpt = Annotated[
    bool, typer.Option("--gzip/--no-gzip", help="Compress request bodies", rich_help_panel=SEND)
]
BatchOpt = Annotated[
    int,
    typer.Option(
        "--batch-spans",
        metavar="N",
        help="Spans per request at most (also capped at 4 MiB)",
        rich_help_panel=SEND,
    ),
]
ConcurrencyOpt = Annotated[
    int,
    typer.Option(
        "--concurrency",
        metavar="N",
        help=f"OTLP requests in flight (1-{MAX_CONCURRENCY})",
        rich_help_panel=SEND,
    ),
]
FetchConcurrencyOpt = Annotated[
    int,
    typer.Option(
        "--fetch-concurrency",
        metavar="N",
        help=f"GET /generation requests in flight when fetching from OpenRouter (1-{FETCH_MAX})",
        rich_help_panel=SEND,
    ),
]
StrictOpt = Annotated[bool, typer.Option("--strict", help="A malformed input line is fatal (exit 2)")]
OutputOpt = Annotated[Output, output_option(choices=(Output.table, Output.json))]


# ----------------------------------------------------------------------------- shared driver


def _check_numbers(batch_spans: int, concurrency: int, fetch_concurrency: int) -> None:
    if batch_spans < 1:
        raise UsageError(f"--batch-spans {batch_spans}: expected at least 1")
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise UsageError(f"--concurrency {concurrency}: expected 1 to {MAX_CONCURRENCY}")
    if not 1 <= fetch_concurrency <= FETCH_MAX:
        raise UsageError(f"--fetch-concurrency {fetch_concurrency}: expected 1 to {FETCH_MAX}")


def _execute(rt: Runtime, plan: Plan, output: Output, write_path: str | None) -> None:
    ui = rt.ui
    check_output(output, (Output.table, Output.json))
    if write_path == "-" and output == Output.json:
        raise UsageError("--write-otlp - writes to stdout: use --output table (the summary goes to stderr)")
    verb = "checked" if plan.dry_run else "written" if write_path else "sent"
    ended: BaseException | None = None
    run: Backfill | None = None
    with otlp_writer(write_path) as writer, sigterm_as_interrupt():
        plan.write_otlp = writer
        try:
            with ui.progress() as bar:
                progress = BackfillProgress(ui, bar, verb)
                run = Backfill(
                    rt.settings, plan, on_event=progress.event, on_retry=progress.retry, tick=progress.tick
                )
                run.run()
                progress.tick(run)
        except (OrbcastError, KeyboardInterrupt) as exc:
            ended = exc
            if run is None or (isinstance(exc, OrbcastError) and run.summary.read == 0):
                raise  # nothing was read: a summary of zeros would only hide the message
        if run is None:  # pragma: no cover - run() raised before the object existed
            return
        summary = run.summary
        report(
            ui,
            summary,
            output,
            to_stderr=write_path == "-",
            problems=run.problems.items,
            shown=progress.shown,
        )
    if ended is not None:
        if isinstance(ended, KeyboardInterrupt):
            # typer turns KeyboardInterrupt into a silent exit 130: say it here
            ui.error(
                f"interrupted: {summary.generations:,} generations acknowledged are in the ledger; "
                "run the same command again to send the rest"
            )
            explain_interrupt()
        elif isinstance(ended, OrbcastError) and summary.generations:
            ui.info(
                f"{summary.generations:,} generations were acknowledged before this and are in the ledger; "
                "a re-run sends only the rest"
            )
        raise ended
    if summary.incomplete:
        parts = []
        if summary.rejected_spans:
            parts.append(f"{summary.rejected_spans:,} spans were rejected by the endpoint")
        if summary.failed:
            parts.append(f"{summary.failed:,} generations could not be fetched")
        if summary.malformed:
            parts.append(f"{summary.malformed:,} input lines were malformed")
        raise PartialFailure(
            "; ".join(parts) + "; everything else was sent",
            hint="rejected and failed generations are not in the ledger: a re-run tries them again",
        )


def _window(since: str | None, from_: str | None, to: str | None, *, default: str | None) -> Window | None:
    if not (since or from_ or to) and default is None:
        return None
    return resolve_window(since, from_, to, default_since=default or "24h")


# ----------------------------------------------------------------------------- commands


@with_settings
def backfill(
    rt: Runtime,
    since: SinceOpt = None,
    from_: FromOpt = None,
    to: ToOpt = None,
    source: Annotated[
        str,
        typer.Option(
            "--source",
            metavar="SOURCE",
            help="api (default), csv:EXPORT.csv, jsonl:FILE, ids:FILE (ids:- = stdin)",
            rich_help_panel=SELECT,
        ),
    ] = "api",
    detail: Annotated[
        Detail,
        typer.Option(
            "--detail",
            case_sensitive=False,
            help="full: GET /generation per id; summary: analytics rows only",
        ),
    ] = Detail.full,
    attr: AttrOpt = None,
    with_content: ContentOpt = False,
    privacy: PrivacyOpt = False,
    dry_run: DryRunOpt = False,
    write_otlp: WriteOpt = None,
    skip_existing: SkipOpt = False,
    force: ForceOpt = False,
    verify: VerifyOpt = False,
    encoding: EncodingOpt = Encoding.json,
    gzip: GzipOpt = True,
    batch_spans: BatchOpt = DEFAULT_BATCH_SPANS,
    concurrency: ConcurrencyOpt = DEFAULT_CONCURRENCY,
    fetch_concurrency: FetchConcurrencyOpt = FETCH_CONCURRENCY,
    strict: StrictOpt = False,
    output: OutputOpt = Output.table,
) -> None:
    spec = SourceSpec.parse(source)
    _check_numbers(batch_spans, concurrency, fetch_concurrency)
    window = _window(since, from_, to, default="24h" if spec.kind == "api" else None)
    plan = Plan(
        command="backfill",
        inputs=[spec],
        window=window,
        span_options=span_options(rt.settings, attr, with_content, privacy or bool(rt.settings.privacy)),
        encoding=encoding.value,
        gzip=gzip,
        batch_spans=batch_spans,
        concurrency=concurrency,
        fetch_concurrency=fetch_concurrency,
        detail=detail.value,
        strict=strict,
        dry_run=dry_run,
        skip_existing=skip_existing,
        force=force,
        verify=verify,
    )
    _execute(rt, plan, output, write_otlp)


@with_settings
def replay(
    rt: Runtime,
    paths: Annotated[
        list[str], typer.Argument(metavar="PATH...", help="Files to send (kind detected from content)")
    ],
    format_: Annotated[
        FileFormat | None,
        typer.Option(
            "--format", case_sensitive=False, help="Read every PATH as this kind: " + "|".join(FILE_KINDS)
        ),
    ] = None,
    since: SinceOpt = None,
    from_: FromOpt = None,
    to: ToOpt = None,
    attr: AttrOpt = None,
    with_content: ContentOpt = False,
    privacy: PrivacyOpt = False,
    dry_run: DryRunOpt = False,
    write_otlp: WriteOpt = None,
    skip_existing: SkipOpt = False,
    force: ForceOpt = False,
    verify: VerifyOpt = False,
    encoding: EncodingOpt = Encoding.json,
    gzip: GzipOpt = True,
    batch_spans: BatchOpt = DEFAULT_BATCH_SPANS,
    concurrency: ConcurrencyOpt = DEFAULT_CONCURRENCY,
    fetch_concurrency: FetchConcurrencyOpt = FETCH_CONCURRENCY,
    strict: StrictOpt = False,
    output: OutputOpt = Output.table,
) -> None:
    _check_numbers(batch_spans, concurrency, fetch_concurrency)
    forced = format_.value if format_ is not None else None
    inputs = [SourceSpec(detect_kind(path, forced), path) for path in paths]
    plan = Plan(
        command="replay",
        inputs=inputs,
        window=_window(since, from_, to, default=None),
        span_options=span_options(rt.settings, attr, with_content, privacy or bool(rt.settings.privacy)),
        encoding=encoding.value,
        gzip=gzip,
        batch_spans=batch_spans,
        concurrency=concurrency,
        fetch_concurrency=fetch_concurrency,
        strict=strict,
        dry_run=dry_run,
        skip_existing=skip_existing,
        force=force,
        verify=verify,
    )
    _execute(rt, plan, output, write_otlp)


backfill.__doc__ = BACKFILL_HELP
replay.__doc__ = REPLAY_HELP


def register(app: typer.Typer) -> None:
    app.command("backfill", help=BACKFILL_HELP)(backfill)
    app.command("replay", help=REPLAY_HELP)(replay)
