"""The CLI contract: help with examples everywhere, --version, clean usage errors, the last-resort error
path (no traceback, no secret), no escape codes under NO_COLOR or off a terminal, README coverage."""

from __future__ import annotations

import base64
import os
import pty
import re
import select
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main

from orbcast import __version__
from orbcast.cli import app
from orbcast.config import mask
from orbcast.options import Runtime, with_settings
from tests.conftest import REPO, Result

Cli = Callable[..., Result]
SECRET = "glc_eyJrIjoiZmFrZS1zZWNyZXQtdG9rZW4tZm9yLXRlc3RzIn0"
ANSI = re.compile(r"\x1b\[")


def _walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, child in sorted((getattr(command, "commands", None) or {}).items()):
        if not getattr(child, "hidden", False):
            yield from _walk(child, (*path, name))


COMMANDS = list(_walk(typer.main.get_command(app)))
SUBCOMMANDS = [path for path, _ in COMMANDS if path]


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) or "orbcast" for p, _ in COMMANDS])
def test_every_command_explains_itself_with_an_example(cli: Cli, path: tuple[str, ...], command: Any) -> None:
    assert (command.help or "").strip(), f"{path} has no help text"
    for param in command.params:
        if param.param_type_name == "option" and not getattr(param, "hidden", False):
            assert (param.help or "").strip(), f"{path} option {param.opts} has no help text"
    result = cli(*path, "--help")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Usage: {' '.join(('orbcast', *path))}")
    assert re.search(r"^\s*Examples?:", result.stdout, re.M), (
        f"`orbcast {' '.join(path)} --help` has no example"
    )
    example = re.search(r"^\s+orbcast \S|Examples?:[^\n]*\borbcast \S", result.stdout, re.M)
    assert example, "the example should be a command line"


def test_every_command_is_mentioned_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8") if (REPO / "README.md").exists() else ""
    missing = [" ".join(p) for p in SUBCOMMANDS if f"orbcast {' '.join(p)}" not in readme]
    assert not missing, f"README.md does not mention: {', '.join('orbcast ' + m for m in missing)}"


def test_version(cli: Cli) -> None:
    result = cli("--version")
    assert (result.exit_code, result.stdout) == (0, f"orbcast {__version__}\n")


@pytest.mark.parametrize(
    "argv",
    [
        [sys.executable, "-m", "orbcast", "--version"],
        [str(Path(sys.executable).with_name("orbcast")), "--version"],
    ],
    ids=["python -m orbcast", "console script"],
)
def test_version_from_a_real_process(argv: list[str]) -> None:
    if not Path(argv[0]).exists():
        pytest.skip("console script not installed next to this interpreter")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"orbcast {__version__}\n", "")


@pytest.mark.parametrize(
    "args",
    [["demo", "--bogus"], ["bogus-command"], ["config", "show", "--output", "xml"], ["demo", "--count", "x"]],
)
def test_usage_errors_are_exit_2_with_one_error_line(cli: Cli, args: list[str]) -> None:
    result = cli(*args)
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) <= 2 and lines[0].startswith("error: ")
    assert all(line.startswith(("error: ", "hint: ")) for line in lines)
    assert "Traceback" not in result.output and result.stdout == ""


def test_no_arguments_prints_help_and_exits_2(cli: Cli) -> None:
    result = cli()
    assert result.exit_code == 2 and "Usage: orbcast" in result.stderr


@pytest.fixture
def failing_command() -> Iterator[None]:
    """A command that hits an unexpected error whose message holds the OTLP token."""

    def boom(rt: Runtime) -> None:
        """Fail (test only).

        Example: orbcast boom
        """
        rt.ui.detail(f"about to fail with token {rt.settings.otlp_token}")
        raise RuntimeError(f"upstream rejected Authorization {rt.settings.otlp_auth_headers()}")

    app.command("boom", hidden=True)(with_settings(boom))
    try:
        yield
    finally:
        app.registered_commands[:] = [c for c in app.registered_commands if c.name != "boom"]


def test_unexpected_error_is_one_masked_line_without_traceback(cli: Cli, failing_command: None) -> None:
    result = cli("boom", "-v", "--otlp-user", "123456", "--otlp-token", SECRET)
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: unexpected error: RuntimeError")
    assert "about to fail with token" in result.stderr  # the --verbose line is there, masked
    assert "ORBCAST_DEBUG=1" in result.stderr
    assert "Traceback" not in result.output
    assert SECRET not in result.output and mask(SECRET) in result.output


def test_debug_traceback_still_masks_secrets(
    cli: Cli, failing_command: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORBCAST_DEBUG", "1")
    monkeypatch.setenv("ORBCAST_OTLP_TOKEN", SECRET)
    result = cli("boom", "--otlp-user", "123456")
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr and "RuntimeError" in result.stderr
    assert SECRET not in result.output
    basic = base64.b64encode(f"123456:{SECRET}".encode()).decode()
    assert basic not in result.output  # the encoded Basic credentials are masked too


def test_off_a_terminal_there_are_no_escape_codes_even_without_no_color(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    ok = cli("demo", "--count", "40", "--out", str(tmp_path / "d.json"))
    bad = cli("demo", "--count", "0")
    assert ok.exit_code == 0 and bad.exit_code == 2
    assert not ANSI.search(ok.output + bad.output)


def _on_a_terminal(args: list[str], env: dict[str, str], cwd: Path) -> bytes:
    """Run orbcast with stdin, stdout and stderr on a pseudo-terminal; return what it wrote."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "orbcast", *args], stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd
    )
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            proc.kill()
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    proc.wait(timeout=60)
    return out


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_no_color_on_a_terminal_means_no_escape_codes(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env.update(TERM="xterm-256color", COLUMNS="120")
    args = ["demo", "--count", "30", "--out", str(tmp_path / "d.json"), "--otlp-endpoint", "ftp://bad"]
    coloured = _on_a_terminal(args, env, tmp_path)
    assert b"error:" in coloured and ANSI.search(coloured.decode()), "a terminal without NO_COLOR gets colour"
    plain = _on_a_terminal(args, {**env, "NO_COLOR": "1"}, tmp_path)
    assert b"error:" in plain and not ANSI.search(plain.decode())
    args = ["demo", "--count", "30", "--out", str(tmp_path / "d.json")]
    tables = _on_a_terminal(args, {**env, "NO_COLOR": "1"}, tmp_path)
    assert b"Latency by model" in tables and not ANSI.search(tables.decode())


def test_typer_is_used_without_click_imports() -> None:
    """The CLI uses typer's vendored click; importing click itself would be a hidden dependency."""
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "orbcast").rglob("*.py"))
    assert not re.search(r"^\s*(import click|from click)", sources, re.M)


@pytest.mark.parametrize("output", ["table", "json"])
def test_a_reader_that_stops_early_is_a_normal_end(tmp_path: Path, output: str) -> None:
    """`orbcast demo | head -1`: exit 0, and no complaint about the closed pipe."""
    args = ["demo", "--count", "3000", "--out", str(tmp_path / "d.json"), "--output", output]
    proc = subprocess.Popen(
        [sys.executable, "-m", "orbcast", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert "Traceback" not in err and "Exception ignored" not in err and "error" not in err


def test_ctrl_c_during_a_request_is_exit_130_with_one_line(tmp_path: Path) -> None:
    """A command that does not handle Ctrl-C itself still ends with 'interrupted' and exit 130."""
    import signal
    import socket
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections, never answers: the request hangs until Ctrl-C
    port = listener.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORBCAST_", "OTEL_", "OPENROUTER_"))}
    env.update(ORBCAST_CONFIG=str(tmp_path / "none.toml"), ORBCAST_STATE_DIR=str(tmp_path / "state"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "orbcast", "query", "--tempo-url", f"http://127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        conn, _ = listener.accept()  # the request has started
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        listener.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("error:")] == ["error: interrupted"]
    conn.close()
