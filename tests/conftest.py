"""Shared fixtures: every test runs with config and state in a temp dir and no real credentials."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from orbcast import options
from orbcast.cli import run

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"

_PREFIXES = ("ORBCAST_", "OPENROUTER_", "OTEL_", "XDG_")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point config and state at a temp dir; drop any credential from the developer's environment."""
    for key in list(os.environ):
        if key.startswith(_PREFIXES) or key == "NO_COLOR":
            monkeypatch.delenv(key, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".state"))
    monkeypatch.setenv("ORBCAST_CONFIG", str(home / "orbcast.toml"))
    monkeypatch.setenv("ORBCAST_STATE_DIR", str(home / "state"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("ORBCAST_BACKOFF_SCALE", "0.001")  # retries and pacing cost no wall time in tests
    monkeypatch.setenv("COLUMNS", "200")
    options._state.update({"verbose": False, "quiet": False, "profile": None})
    return home


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run the real entry point in-process: ``cli("query", "--since", "1h", input="...")``."""

    def invoke(*args: str, input: str | None = None) -> Result:
        capsys.readouterr()
        if input is not None:
            monkeypatch.setattr(sys, "stdin", io.StringIO(input))
        options._state.update({"verbose": False, "quiet": False, "profile": None})
        code = run(list(args))
        captured = capsys.readouterr()
        return Result(int(code), captured.out, captured.err)

    return invoke
