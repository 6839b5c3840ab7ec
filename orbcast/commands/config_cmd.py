"""``orbcast config``: where the config file is, what the effective settings are, and setting a value."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.table import Table

from orbcast.config import SECRET_SETTINGS, SETTINGS, config_path, describe, mask
from orbcast.errors import UsageError
from orbcast.options import Output, Runtime, check_output, output_option, with_settings

config_app = typer.Typer(
    help="""Show the effective settings, the config file's path, or set a value in it.

    Examples:

    \b
      orbcast config show                # every setting, where it came from, secrets masked
      orbcast config path                # where the config file is
      orbcast config set otlp_token      # prompts without echo, writes the file with mode 0600
    """,
    no_args_is_help=True,
)


@config_app.command("show")
@with_settings
def show(
    rt: Runtime,
    output: Annotated[Output, output_option(choices=(Output.table, Output.json))] = Output.table,
) -> None:
    """Print every setting, where it came from, secrets masked.

    Example: orbcast config show --profile prod
    """
    check_output(output, (Output.table, Output.json))
    rows = describe(rt.settings)
    if output is Output.json:
        payload = {
            "config_file": str(rt.settings.config_file),
            "profile": rt.settings.profile,
            "settings": rows,
            "attrs": rt.settings.attrs,
            "api_key_metadata": rt.settings.api_key_metadata,
        }
        rt.ui.data(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(title=f"config file: {rt.settings.config_file}  profile: {rt.settings.profile or '-'}")
    for col in ("setting", "value", "source"):
        table.add_column(col)
    for row in rows:
        table.add_row(row["setting"], row["value"], row["source"])
    rt.ui.table(table)


@config_app.command("path")
def path() -> None:
    """Print the config file's location ($ORBCAST_CONFIG, else $XDG_CONFIG_HOME/orbcast/config.toml).

    Example: $EDITOR "$(orbcast config path)"
    """
    typer.echo(str(config_path()))


def _setting_names(incomplete: str) -> list[str]:
    return [k for k in SETTINGS if k != "otlp_headers" and k.startswith(incomplete)]


@config_app.command("set")
def set_value(
    key: Annotated[
        str,
        typer.Argument(
            help="Setting name, e.g. otlp_token (see 'orbcast config show')",
            autocompletion=_setting_names,
        ),
    ],
    value: Annotated[
        str | None, typer.Argument(help="The value; omit it to be prompted without echo (for secrets)")
    ] = None,
    profile: Annotated[str | None, typer.Option("--profile", help="Write into [profiles.NAME]")] = None,
) -> None:
    """Write one setting into the config file (created with mode 0600; secrets are never echoed).

    Example: orbcast config set otlp_token   # prompts for the token
    """
    if key not in SETTINGS or key == "otlp_headers":
        known = ", ".join(k for k in SETTINGS if k != "otlp_headers")
        raise UsageError(f"unknown setting {key!r}; settings: {known}")
    if value is None and not sys.stdin.isatty():  # piped (echo "$TOKEN" | orbcast config set ...)
        value = sys.stdin.readline().rstrip("\r\n")
        if not value:
            raise UsageError(f"no value for {key} on standard input")
    if value is None:
        value = typer.prompt(key, hide_input=key in SECRET_SETTINGS)
    target = config_path()
    write_setting(target, key, value, profile)
    shown = mask(value) if key in SECRET_SETTINGS else value
    typer.echo(
        f"{key} = {shown} written to {target}" + (f" [profiles.{profile}]" if profile else ""), err=True
    )


def write_setting(path: Path, key: str, value: str, profile: str | None) -> None:
    """Set ``key`` in the top level or a profile table, keeping the rest of the file, mode 0600."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    section = f"[profiles.{profile}]" if profile else None
    encoded = orjson.dumps(value).decode()  # a JSON string is a valid TOML basic string
    entry = f"{key} = {encoded}"
    current: str | None = None
    insert_at: int | None = 0 if section is None else None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("["):
            current = stripped
            if section is None and insert_at == 0:
                insert_at = i
            if stripped == section:
                insert_at = i + 1
            continue
        if current == section and stripped.split("=", 1)[0].strip() == key:
            lines[i] = entry
            break
    else:
        if insert_at is None:
            lines += ["", section or "", entry] if lines else [section or "", entry]
        else:
            if section is None and not any(ln.strip().startswith("[") for ln in lines):
                insert_at = len(lines)
            lines.insert(insert_at, entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    os.chmod(path, 0o600)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
