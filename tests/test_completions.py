"""Shell completions: generated from the CLI, up to date in completions/, and working in each shell."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orbcast.completions import FILES, command_tree, render_all
from tests.conftest import REPO

COMPLETIONS = REPO / "completions"


def test_completions_directory_is_up_to_date_with_the_commands() -> None:
    stale = []
    for name, content in render_all().items():
        path = COMPLETIONS / name
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            stale.append(name)
    assert not stale, f"completions/{', '.join(stale)} out of date with the commands: run `make completions`"


def test_generation_is_deterministic_and_ignores_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    first = render_all()
    monkeypatch.setenv("COLUMNS", "40")
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert render_all() == first


def test_every_command_and_option_is_in_every_script() -> None:
    scripts = render_all()
    for node in command_tree().walk():
        for content in scripts.values():
            assert node.path[-1] in content, node.path
            for option in node.options:
                for name in option.names:
                    assert name.lstrip("-") in content, (node.path, name)


def _bash(script: Path, line: str) -> list[str]:
    """Completions bash offers for ``line`` (the word under the cursor is the last, maybe empty)."""
    words = line.split(" ")
    program = f"""
source {script}
COMP_WORDS=({" ".join(f"'{w}'" for w in words)})
COMP_CWORD={len(words) - 1}
_orbcast
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30, check=True)
    return [w for w in done.stdout.splitlines() if w]


@pytest.fixture
def generated(tmp_path: Path) -> Path:
    for name, content in render_all().items():
        (tmp_path / name).write_text(content, encoding="utf-8")
    return tmp_path


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_bash_completes_commands_options_choices_and_files(generated: Path) -> None:
    script = generated / FILES["bash"]
    top = [node.path[-1] for node in command_tree().children]
    assert _bash(script, "orbcast ") == top
    assert _bash(script, "orbcast de") == ["demo"]
    assert _bash(script, "orbcast config ") == ["path", "set", "show"]
    assert _bash(script, "orbcast --profile config ") == top  # "config" is the profile's value here
    assert _bash(script, "orbcast demo --output ") == ["table", "json", "markdown"]
    assert _bash(script, "orbcast demo -o j") == ["json"]
    assert _bash(script, "orbcast demo --output = ") == ["table", "json", "markdown"]
    assert _bash(script, "orbcast config show --output ") == ["table", "json"]
    assert "--seed" in _bash(script, "orbcast demo --count 5 --s")
    assert _bash(script, "orbcast config set otlp_t") == ["otlp_token"]
    assert _bash(script, f"orbcast demo --out {generated}/orbcast.b") == [str(generated / "orbcast.bash")]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed")
def test_zsh_script_parses_and_defines_the_completion(generated: Path) -> None:
    script = generated / FILES["zsh"]
    subprocess.run(["zsh", "-n", str(script)], check=True, timeout=30)
    program = (
        f"autoload -U compinit && compinit -u -d {generated}/.zcd && source {script} && echo $_comps[orbcast]"
    )
    done = subprocess.run(["zsh", "-f", "-c", program], capture_output=True, text=True, timeout=30)
    assert done.stdout.strip() == "_orbcast", done.stderr


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish not installed")
def test_fish_completes_commands_options_and_choices(generated: Path) -> None:
    script = generated / FILES["fish"]

    def complete(line: str) -> list[str]:
        program = f"source {script}; complete -C '{line}'"
        done = subprocess.run(["fish", "-c", program], capture_output=True, text=True, timeout=30, check=True)
        return [row.split("\t")[0] for row in done.stdout.splitlines()]

    assert complete("orbcast ") == sorted(node.path[-1] for node in command_tree().children)
    assert complete("orbcast config ") == ["path", "set", "show"]
    assert complete("orbcast demo --output ") == ["json", "markdown", "table"]
    assert "--seed" in complete("orbcast demo --s")


def _module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orbcast.completions", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def test_module_writes_then_checks_and_names_stale_files(tmp_path: Path) -> None:
    target = tmp_path / "out"
    written = _module(str(target))
    assert written.returncode == 0, written.stderr
    assert sorted(p.name for p in target.iterdir()) == sorted(FILES.values())
    assert _module("--check", str(target)).returncode == 0
    bash = target / FILES["bash"]
    bash.write_text(bash.read_text().replace("demo", "dmeo"), encoding="utf-8")
    checked = _module("--check", str(target))
    assert checked.returncode == 1
    assert "orbcast.bash is out of date" in checked.stderr and "make completions" in checked.stderr
    assert _module().returncode == 2
