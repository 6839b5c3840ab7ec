"""The configuration contract: precedence, OTLP endpoint and header rules, auth, masking, the config
commands, file permissions and bad files."""

from __future__ import annotations

import base64
import os
import pty
import select
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from orbcast.config import auth_headers, load_settings, mask, parse_otlp_headers
from orbcast.errors import ConfigError
from tests.conftest import REPO, Result

Cli = Callable[..., Result]
TOKEN = "glc_topsecret_token_value_0123456789"
KEY = "sk-or-v1-secret-api-key-0123456789abcdef"


def _write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def _env(config: Path, **extra: str) -> dict[str, str]:
    return {"ORBCAST_CONFIG": str(config), "XDG_STATE_HOME": str(config.parent / "state"), **extra}


def _show(cli: Cli, *args: str) -> dict[str, dict[str, str]]:
    result = cli("config", "show", "--output", "json", *args)
    assert result.exit_code == 0, result.output
    return {row["setting"]: row for row in orjson.loads(result.stdout)["settings"]}


# ----------------------------------------------------------------------------- precedence


def test_flag_beats_env_beats_profile_beats_file_beats_default(tmp_path: Path) -> None:
    config = _write(
        tmp_path / "c.toml",
        'tempo_url = "https://file.example/tempo"\notlp_user = "file-user"\ntempo_user = "file-tempo"\n'
        '[profiles.prod]\ntempo_url = "https://profile.example/tempo"\notlp_user = "profile-user"\n',
    )
    env = _env(config, ORBCAST_OTLP_USER="env-user", ORBCAST_TEMPO_URL="https://env.example/tempo")
    s = load_settings({"otlp_user": "flag-user"}, env=env, profile="prod")
    assert (s.otlp_user, s.source("otlp_user")) == ("flag-user", "flag --otlp-user")
    assert (s.tempo_url, s.source("tempo_url")) == ("https://env.example/tempo", "env ORBCAST_TEMPO_URL")
    assert (s.tempo_user, s.source("tempo_user")) == ("file-tempo", "config file")
    s = load_settings({}, env={k: v for k, v in env.items() if k != "ORBCAST_TEMPO_URL"}, profile="prod")
    assert (s.tempo_url, s.source("tempo_url")) == ("https://profile.example/tempo", "config profile prod")
    assert (s.otlp_user, s.source("otlp_user")) == ("env-user", "env ORBCAST_OTLP_USER")
    s = load_settings({}, env=_env(config))
    assert (s.tempo_url, s.source("tempo_url")) == ("https://file.example/tempo", "config file")
    assert (s.openrouter_url, s.source("openrouter_url")) == ("https://openrouter.ai/api/v1", "default")
    assert s.state_dir == str(tmp_path / "state" / "orbcast") and s.source("state_dir") == "default"


def test_profile_from_environment_and_flag_over_it(tmp_path: Path) -> None:
    config = _write(tmp_path / "c.toml", '[profiles.a]\notlp_user = "A"\n[profiles.b]\notlp_user = "B"\n')
    assert load_settings({}, env=_env(config, ORBCAST_PROFILE="a")).otlp_user == "A"
    assert load_settings({}, env=_env(config, ORBCAST_PROFILE="a"), profile="b").otlp_user == "B"


@pytest.mark.parametrize(
    ("env", "expected", "source"),
    [
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://gw.example/otlp"},
            "https://gw.example/otlp/v1/traces",
            "env OTEL_EXPORTER_OTLP_ENDPOINT",
        ),  # noqa: E501
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://gw.example/otlp/"},
            "https://gw.example/otlp/v1/traces",
            "env OTEL_EXPORTER_OTLP_ENDPOINT",
        ),  # noqa: E501
        (
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://gw.example/custom/path"},
            "https://gw.example/custom/path",
            "env OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ),  # noqa: E501
        (
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://a.example/t",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "https://b.example",
            },  # noqa: E501
            "https://a.example/t",
            "env OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ),
        (
            {
                "ORBCAST_OTLP_ENDPOINT": "https://o.example/otlp",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://a.example/t",
            },  # noqa: E501
            "https://o.example/otlp/v1/traces",
            "env ORBCAST_OTLP_ENDPOINT",
        ),
        (
            {"ORBCAST_OTLP_ENDPOINT": "https://o.example/otlp/v1/traces"},
            "https://o.example/otlp/v1/traces",
            "env ORBCAST_OTLP_ENDPOINT",
        ),  # noqa: E501
    ],
)
def test_otlp_endpoint_environment_rules(
    tmp_path: Path, env: dict[str, str], expected: str, source: str
) -> None:
    s = load_settings({}, env=_env(tmp_path / "none.toml", **env))
    assert (s.otlp_endpoint, s.source("otlp_endpoint")) == (expected, source)


def test_otlp_endpoint_flag_appends_the_traces_path_once(tmp_path: Path) -> None:
    env = _env(tmp_path / "none.toml", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="https://env.example/x")
    assert load_settings({"otlp_endpoint": "https://f.example/otlp"}, env=env).otlp_endpoint == (
        "https://f.example/otlp/v1/traces"
    )
    assert load_settings({"otlp_endpoint": "https://f.example/otlp/v1/traces/"}, env=env).otlp_endpoint == (
        "https://f.example/otlp/v1/traces/"
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Authorization=Basic abc123==", {"Authorization": "Basic abc123=="}),
        ("Authorization=Basic%20abc123%3D%3D", {"Authorization": "Basic abc123=="}),
        ("x-a=1, x-b = two%2Cthree ,", {"x-a": "1", "x-b": "two,three"}),
        ("X-Scope-OrgID=tenant%201", {"X-Scope-OrgID": "tenant 1"}),
    ],
)
def test_otlp_headers_raw_and_percent_encoded(raw: str, expected: dict[str, str]) -> None:
    assert parse_otlp_headers(raw) == expected


def test_malformed_otlp_headers_are_a_config_error(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError):
        parse_otlp_headers("Authorization")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "just-a-word")
    result = cli("config", "show")
    assert result.exit_code == 3 and result.stderr.startswith("error: OTLP header")


# ----------------------------------------------------------------------------- auth


def test_auth_rule_basic_bearer_none() -> None:
    basic = base64.b64encode(b"123456:" + TOKEN.encode()).decode()
    assert auth_headers("123456", TOKEN) == {"Authorization": f"Basic {basic}"}
    assert auth_headers(None, TOKEN) == {"Authorization": f"Bearer {TOKEN}"}
    assert auth_headers("123456", None) == {}
    assert auth_headers(None, None) == {}


def test_settings_apply_the_auth_rule_and_the_tempo_token_fallback(tmp_path: Path) -> None:
    env = _env(tmp_path / "none.toml", ORBCAST_OTLP_TOKEN=TOKEN, OTEL_EXPORTER_OTLP_HEADERS="x-extra=1")
    s = load_settings({"otlp_user": "42", "tempo_user": "7"}, env=env)
    assert s.otlp_auth_headers()["Authorization"].startswith("Basic ")
    assert s.otlp_auth_headers()["x-extra"] == "1"
    tempo = base64.b64decode(s.tempo_auth_headers()["Authorization"].split()[1]).decode()
    assert tempo == f"7:{TOKEN}"  # Tempo user with the OTLP token
    assert load_settings({}, env=env).tempo_auth_headers() == {"Authorization": f"Bearer {TOKEN}"}
    assert load_settings({}, env=_env(tmp_path / "none.toml")).tempo_auth_headers() == {}


# ----------------------------------------------------------------------------- config show / path


def test_config_show_masks_every_secret_and_names_sources(
    cli: Cli, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(
        Path(os.environ["ORBCAST_CONFIG"]),
        f'tempo_token = "{TOKEN}-file"\n[profiles.prod]\nmanagement_key = "{KEY}-mgmt"\n',
    )
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer%20{TOKEN}-hdr")
    rows = _show(cli, "--profile", "prod", "--otlp-token", TOKEN)
    table = cli("config", "show", "--profile", "prod", "--otlp-token", TOKEN, "-v")
    for output in (orjson.dumps(rows).decode(), table.output):
        for secret in (KEY, TOKEN, f"{TOKEN}-file", f"{KEY}-mgmt", f"Bearer {TOKEN}-hdr", TOKEN[4:-2]):
            assert secret not in output
    assert rows["openrouter_key"] == {
        "setting": "openrouter_key",
        "value": mask(KEY),
        "source": "env OPENROUTER_API_KEY",
    }  # noqa: E501
    assert rows["otlp_token"]["source"] == "flag --otlp-token"
    assert rows["tempo_token"]["source"] == "config file"
    assert rows["management_key"]["source"] == "config profile prod"
    assert rows["otlp_headers"]["value"].startswith("Authorization=")
    assert rows["tempo_url"] == {"setting": "tempo_url", "value": "", "source": "default"}
    assert table.exit_code == 0 and "env OPENROUTER_API_KEY" in table.stdout


def test_short_secrets_are_fully_masked() -> None:
    assert mask("abcd1234") == "****"
    assert mask(TOKEN) == TOKEN[:4] + "…" + TOKEN[-2:]
    assert mask(None) == mask("") == ""


def test_config_path_follows_orbcast_config_then_xdg(
    cli: Cli, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("config", "path").stdout == os.environ["ORBCAST_CONFIG"] + "\n"
    monkeypatch.delenv("ORBCAST_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(isolated / "xdg"))
    assert cli("config", "path").stdout == str(isolated / "xdg" / "orbcast" / "config.toml") + "\n"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert cli("config", "path").stdout == str(isolated / ".config" / "orbcast" / "config.toml") + "\n"


# ----------------------------------------------------------------------------- config set


def test_config_set_writes_mode_0600_and_keeps_the_rest(cli: Cli, isolated: Path) -> None:
    path = Path(os.environ["ORBCAST_CONFIG"])
    _write(path, '# mine\ntempo_url = "https://t.example/tempo"\n\n[profiles.prod]\notlp_user = "1"\n', 0o644)
    assert cli("config", "set", "otlp_user", "99").exit_code == 0
    assert cli("config", "set", "otlp_user", "2", "--profile", "prod").exit_code == 0
    assert cli("config", "set", "tempo_user", "5", "--profile", "new").exit_code == 0
    result = cli("config", "set", "otlp_token", TOKEN)
    assert result.exit_code == 0 and TOKEN not in result.output and mask(TOKEN) in result.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# mine\n") and "https://t.example/tempo" in text
    env = {"ORBCAST_CONFIG": str(path)}
    assert load_settings({}, env=env).otlp_user == "99"
    assert load_settings({}, env=env).otlp_token == TOKEN
    assert load_settings({}, env=env, profile="prod").otlp_user == "2"
    assert load_settings({}, env=env, profile="new").tempo_user == "5"


def test_config_set_creates_a_private_file(cli: Cli, isolated: Path) -> None:
    path = Path(os.environ["ORBCAST_CONFIG"])
    result = cli("config", "set", "openrouter_key", input=KEY + "\n")  # piped: read from stdin
    assert result.exit_code == 0, result.output
    assert KEY not in result.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_settings({}, env={"ORBCAST_CONFIG": str(path)}).openrouter_key == KEY


@pytest.mark.parametrize("args", [["nonsense", "x"], ["otlp_headers", "a=b"]])
def test_config_set_rejects_unknown_settings(cli: Cli, args: list[str]) -> None:
    result = cli("config", "set", *args)
    assert result.exit_code == 2 and "unknown setting" in result.stderr


def _prompt_on_a_terminal(args: list[str], answer: str, env: dict[str, str]) -> tuple[int, bytes]:
    """Run orbcast on a pseudo-terminal, type ``answer`` at its prompt, return what the terminal showed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "orbcast", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=REPO,
        start_new_session=True,  # no controlling terminal: getpass must use this one
    )
    os.close(slave)
    shown, sent, deadline = b"", False, time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
        if not sent and b": " in shown:  # the space comes from getpass, once echo is off
            os.write(master, answer.encode() + b"\n")
            sent = True
    os.close(master)
    return proc.wait(timeout=30), shown


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_secrets_are_prompted_without_echo_and_other_values_with_it(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    env = {**os.environ, "ORBCAST_CONFIG": str(config), "NO_COLOR": "1"}
    code, shown = _prompt_on_a_terminal(["config", "set", "otlp_token"], TOKEN, env)
    assert code == 0, shown
    assert TOKEN.encode() not in shown and b"otlp_token" in shown
    code, shown = _prompt_on_a_terminal(["config", "set", "otlp_user"], "424242", env)
    assert code == 0 and shown.count(b"424242") >= 2  # echoed as typed, then confirmed
    assert load_settings({}, env={"ORBCAST_CONFIG": str(config)}).otlp_token == TOKEN


# ----------------------------------------------------------------------------- bad or unsafe files


def test_group_readable_file_with_a_secret_warns(cli: Cli, isolated: Path) -> None:
    path = _write(Path(os.environ["ORBCAST_CONFIG"]), f'otlp_token = "{TOKEN}"\n', 0o640)
    result = cli("config", "show")
    assert result.exit_code == 0
    assert "readable by group or others" in result.stderr and f"chmod 600 {path}" in result.stderr
    assert TOKEN not in result.output
    path.chmod(0o600)
    assert "readable by group" not in cli("config", "show").stderr


def test_world_readable_file_without_secrets_is_fine(cli: Cli) -> None:
    _write(Path(os.environ["ORBCAST_CONFIG"]), 'tempo_url = "https://t.example/tempo"\n', 0o644)
    assert "warning" not in cli("config", "show").stderr


def test_secret_in_a_profile_also_counts(tmp_path: Path) -> None:
    config = _write(tmp_path / "c.toml", f'[profiles.p]\nopenrouter_key = "{KEY}"\n', 0o604)
    assert any("readable by group or others" in w for w in load_settings({}, env=_env(config)).warnings)


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ('otlp_user = "unterminated\n', [], "is not valid TOML"),
        ("[profiles.a]\n", ["--profile", "missing"], "profile 'missing' is not in"),
        ('tempo_url = "tempo.example"\n', [], "is not an http(s) URL"),
        ("otlp_headers = 5\n", [], "must be a table"),
    ],
)
def test_bad_configuration_is_exit_3_with_one_line(
    cli: Cli, content: str, args: list[str], message: str
) -> None:
    _write(Path(os.environ["ORBCAST_CONFIG"]), content)
    result = cli("config", "show", *args)
    assert result.exit_code == 3, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.output


def test_unknown_profile_lists_the_known_ones(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(Path(os.environ["ORBCAST_CONFIG"]), "[profiles.prod]\n[profiles.staging]\n")
    monkeypatch.setenv("ORBCAST_PROFILE", "dev")
    result = cli("config", "show")
    assert result.exit_code == 3 and "prod, staging" in result.stderr


def test_file_extras_privacy_attrs_and_api_key_metadata(tmp_path: Path) -> None:
    config = _write(
        tmp_path / "c.toml",
        'privacy = true\nunknown_thing = 1\n[attrs]\nteam = "search"\n'
        '[metadata.api_keys."prod key"]\nenvironment = "production"\n',
    )
    s: Any = load_settings({}, env=_env(config))
    assert s.privacy is True
    assert s.attrs == {"team": "search"}
    assert s.api_key_metadata == {"prod key": {"environment": "production"}}
    assert any("unknown setting 'unknown_thing'" in w for w in s.warnings)
