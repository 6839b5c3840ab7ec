"""Terminal habits in one place: data to stdout, diagnostics to stderr, colour and progress bars only on
a terminal, ``NO_COLOR`` honoured, every diagnostic line passed through secret redaction."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from orbcast.config import redact

_interrupt_explained = False


def explain_interrupt() -> None:
    """A command that printed its own Ctrl-C message calls this, so the CLI does not repeat it."""
    global _interrupt_explained
    _interrupt_explained = True


def interrupt_explained() -> bool:
    return _interrupt_explained


def _no_color() -> bool:
    return bool(os.environ.get("NO_COLOR"))


def _color_system() -> Literal["auto"] | None:
    """``NO_COLOR``: no escape codes at all (rich's ``no_color`` alone still sends bold and italics)."""
    return None if _no_color() else "auto"


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """The reader of our output went away (``| head``): a normal end, not rich's exit 1."""
        raise BrokenPipeError  # cli.run() ends the run with exit 0


@dataclass
class UI:
    """Output for one run. ``verbose`` adds detail lines; ``quiet`` keeps only errors and data."""

    verbose: bool = False
    quiet: bool = False
    _err: Console | None = field(default=None, repr=False)
    _out: Console | None = field(default=None, repr=False)

    @property
    def err(self) -> Console:
        # Built lazily so that a test's captured sys.stderr is the one used.
        if self._err is None:
            self._err = Console(
                stderr=True,
                no_color=_no_color(),
                color_system=_color_system(),
                highlight=False,
                soft_wrap=True,
            )
        return self._err

    @property
    def out(self) -> Console:
        if self._out is None:
            # Not a terminal and no COLUMNS: rich would assume 80 columns and cut model names short.
            wide = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200
            self._out = _Console(
                no_color=_no_color(),
                color_system=_color_system(),
                highlight=False,
                soft_wrap=True,
                width=wide,
            )
        return self._out

    @property
    def interactive(self) -> bool:
        """Progress bars and colour only when stderr is a terminal and stdout is not redirected."""
        return self.err.is_terminal and sys.stdout.isatty() and not self.quiet

    # -- diagnostics (stderr)

    def info(self, message: str) -> None:
        if not self.quiet:
            self.err.print(redact(message), markup=False)

    def detail(self, message: str) -> None:
        """A ``--verbose`` line."""
        if self.verbose and not self.quiet:
            self.err.print(redact(message), markup=False, style="dim")

    def warn(self, message: str) -> None:
        self.err.print("warning: " + redact(message), markup=False, style="yellow")

    def error(self, message: str, hint: str | None = None) -> None:
        self.err.print("error: " + redact(message), markup=False, style="bold red")
        if hint:
            self.err.print("hint: " + redact(hint), markup=False)

    def rich(self, renderable: Any) -> None:
        """A rich table or panel on stderr (summaries that are not the command's data)."""
        if not self.quiet:
            self.err.print(renderable)

    # -- data (stdout)

    def data(self, text: str) -> None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()

    def table(self, renderable: Any) -> None:
        """A rich renderable as the command's output on stdout."""
        self.out.print(renderable)

    # -- progress

    @contextmanager
    def progress(self) -> Iterator[Progress | None]:
        """A rich Progress on a terminal, else ``None`` (callers then print plain lines)."""
        if not self.interactive:
            yield None
            return
        progress = Progress(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.err,
            transient=False,
        )
        with progress:
            yield progress
