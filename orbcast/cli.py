"""The command line: a thin layer over the library modules, with one error boundary (:func:`main`).

Each command lives in ``orbcast/commands/<name>.py`` and registers itself on :data:`app`.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Annotated

import typer

from orbcast import __version__
from orbcast.config import redact
from orbcast.console import UI, interrupt_explained
from orbcast.errors import ExitCode, OrbcastError
from orbcast.options import set_global

HELP = """\
OpenRouter generation history into Grafana Cloud Traces (Tempo), and back out as cost and latency answers.

Spans are shaped like OpenRouter Broadcast's own, so dashboards and TraceQL written for live Broadcast
work on history too.

Examples:

\b
  orbcast demo                               # no account needed: the whole path on built-in data
  orbcast test-connection                    # check the OpenRouter, OTLP and Tempo credentials
  orbcast backfill --since 7d                # history of the last week -> Grafana Cloud Traces
  orbcast query 'duration > 5s' --since 24h  # latency and cost tables from Tempo
  orbcast query --fail-if 'p95 > 5s'         # a CI gate: exit 8 when breached
"""

app = typer.Typer(
    name="orbcast",
    help=HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
    rich_markup_mode=None,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"orbcast {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="More detail on stderr")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and data")] = False,
    profile: Annotated[
        str | None, typer.Option("--profile", metavar="NAME", help="Config file profile")
    ] = None,
) -> None:
    set_global(verbose=verbose, quiet=quiet, profile=profile)


def _register() -> None:
    from orbcast.commands import backfill, config_cmd, connection, demo, fetch, query

    for module in (demo, fetch, backfill, connection, query, config_cmd):
        module.register(app)


_register()


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app and map every outcome to one documented exit code."""
    code = run(argv)
    sys.exit(int(code))


def run(argv: list[str] | None = None) -> int:
    ui = UI()
    try:
        result = app(args=argv, prog_name="orbcast", standalone_mode=False)
        code = int(result) if isinstance(result, int) else ExitCode.OK
        if code == ExitCode.INTERRUPTED and not interrupt_explained():  # Ctrl-C, translated by typer
            ui.error("interrupted")
        return code
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        ui.error("interrupted")
        return ExitCode.INTERRUPTED
    except typer.TyperException as exc:  # usage errors from the argument parser
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            typer.echo(ctx.get_help(), err=True)
            return ExitCode.USAGE
        ui.error(exc.format_message())
        if ctx is not None:
            ui.err.print(f"hint: see '{ctx.command_path} --help'", markup=False)
        return ExitCode.USAGE
    except OrbcastError as exc:
        ui.error(exc.message, exc.hint)
        return exc.exit_code
    except BrokenPipeError:  # `orbcast ... | head`: stop quietly; nothing more can reach the reader
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the exit-time flush doesn't complain either
        return ExitCode.OK
    except Exception as exc:  # the last line of defence: never a raw traceback, never a secret
        if os.environ.get("ORBCAST_DEBUG") == "1":
            sys.stderr.write(redact(traceback.format_exc()))
        ui.error(
            f"unexpected error: {type(exc).__name__}: {exc}",
            "this is a bug in orbcast; run again with ORBCAST_DEBUG=1 for the traceback and report it",
        )
        return ExitCode.ERROR
