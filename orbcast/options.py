"""Options shared by every command, added by one decorator (the sqlite-utils ``output_options`` habit).

``@with_settings`` gives a command the connection flags of the configuration contract, ``--profile``,
``--verbose`` and ``--quiet``, resolves the settings once, and passes a :class:`Runtime` as the
command's first argument.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import typer

from orbcast.config import Settings, load_settings
from orbcast.console import UI
from orbcast.errors import UsageError

CONNECTION = "Connection (flag > environment > config file)"
GENERAL = "General"

_state: dict[str, Any] = {"verbose": False, "quiet": False, "profile": None}


def set_global(**values: Any) -> None:
    """Set from the top-level callback (``orbcast -v query ...``)."""
    _state.update({k: v for k, v in values.items() if v})


@dataclass
class Runtime:
    settings: Settings
    ui: UI


def _opt(*decls: str, help: str, panel: str = CONNECTION, **kw: Any) -> Any:
    return typer.Option(*decls, help=help, rich_help_panel=panel, show_default=False, **kw)


_COMMON: list[tuple[str, Any, Any]] = [
    (
        "openrouter_key",
        str | None,
        _opt("--openrouter-key", metavar="KEY", help="OpenRouter API key [env OPENROUTER_API_KEY]"),
    ),
    (
        "management_key",
        str | None,
        _opt(
            "--management-key",
            metavar="KEY",
            help="OpenRouter management key, for history [env OPENROUTER_MANAGEMENT_KEY]",
        ),
    ),
    (
        "openrouter_url",
        str | None,
        _opt("--openrouter-url", metavar="URL", help="OpenRouter API base URL [env OPENROUTER_BASE_URL]"),
    ),
    (
        "otlp_endpoint",
        str | None,
        _opt(
            "--otlp-endpoint",
            metavar="URL",
            help="OTLP/HTTP endpoint; /v1/traces is appended [env ORBCAST_OTLP_ENDPOINT]",
        ),
    ),
    (
        "otlp_user",
        str | None,
        _opt(
            "--otlp-user",
            metavar="ID",
            help="OTLP user: the Grafana Cloud instance ID [env ORBCAST_OTLP_USER]",
        ),
    ),
    (
        "otlp_token",
        str | None,
        _opt("--otlp-token", metavar="TOKEN", help="OTLP token [env ORBCAST_OTLP_TOKEN]"),
    ),
    (
        "otlp_header",
        list[str] | None,
        _opt(
            "--otlp-header",
            metavar="K=V",
            help="Extra OTLP header K=V, repeatable [env OTEL_EXPORTER_OTLP_HEADERS]",
        ),
    ),
    (
        "tempo_url",
        str | None,
        _opt("--tempo-url", metavar="URL", help="Tempo query URL [env ORBCAST_TEMPO_URL]"),
    ),
    (
        "tempo_user",
        str | None,
        _opt("--tempo-user", metavar="ID", help="Tempo user (tenant ID) [env ORBCAST_TEMPO_USER]"),
    ),
    (
        "tempo_token",
        str | None,
        _opt(
            "--tempo-token",
            metavar="TOKEN",
            help="Tempo token; defaults to the OTLP token [env ORBCAST_TEMPO_TOKEN]",
        ),
    ),
    (
        "state_dir",
        str | None,
        _opt("--state-dir", metavar="DIR", help="Ledger and checkpoints directory [env ORBCAST_STATE_DIR]"),
    ),
    (
        "profile",
        str | None,
        _opt("--profile", metavar="NAME", help="Config file profile [env ORBCAST_PROFILE]", panel=GENERAL),
    ),
    (
        "verbose",
        bool,
        _opt("--verbose", "-v", help="More detail on stderr (secrets stay masked)", panel=GENERAL),
    ),
    ("quiet", bool, _opt("--quiet", "-q", help="Only errors and data", panel=GENERAL)),
]
_COMMON_NAMES = [name for name, _, _ in _COMMON]
_SETTING_FLAGS = {
    "openrouter_key": "openrouter_key",
    "management_key": "management_key",
    "openrouter_url": "openrouter_url",
    "otlp_endpoint": "otlp_endpoint",
    "otlp_user": "otlp_user",
    "otlp_token": "otlp_token",
    "otlp_header": "otlp_headers",
    "tempo_url": "tempo_url",
    "tempo_user": "tempo_user",
    "tempo_token": "tempo_token",
    "state_dir": "state_dir",
}


def make_runtime(common: dict[str, Any], extra_flags: dict[str, Any] | None = None) -> Runtime:
    """Resolve settings from the common flags (plus command flags such as ``--privacy``)."""
    ui = UI(
        verbose=bool(common.get("verbose") or _state["verbose"]),
        quiet=bool(common.get("quiet") or _state["quiet"]),
    )
    flags = {setting: common.get(flag) for flag, setting in _SETTING_FLAGS.items()}
    flags.update(extra_flags or {})
    settings = load_settings(flags, profile=common.get("profile") or _state["profile"])
    for warning in settings.warnings:
        ui.warn(warning)
    return Runtime(settings=settings, ui=ui)


def with_settings(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a command whose first parameter is ``rt: Runtime``."""
    sig = inspect.signature(func, eval_str=True)
    own = [p for p in sig.parameters.values() if p.name != "rt"]
    added = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=None if kind is not bool else False,
            annotation=Annotated[kind, info],
        )
        for name, kind, info in _COMMON
    ]

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        common = {name: kwargs.pop(name, None) for name in _COMMON_NAMES}
        extra = {"privacy": True} if kwargs.get("privacy") else {}
        rt = make_runtime(common, extra)
        return func(rt, **kwargs)

    params = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY) if p.kind is p.POSITIONAL_OR_KEYWORD else p
        for p in own
    ]
    wrapper.__signature__ = sig.replace(parameters=params + added)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {}
    return wrapper


# ----------------------------------------------------------------------------- output option


class Output(StrEnum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"
    markdown = "markdown"


def output_option(default: Output = Output.table, choices: tuple[Output, ...] | None = None) -> Any:
    allowed = choices or tuple(Output)
    names = "|".join(c.value for c in allowed)

    def complete(incomplete: str) -> list[str]:
        """Shell completion (and completions/) offers only the formats this command accepts."""
        return [c.value for c in allowed if c.value.startswith(incomplete.lower())]

    return typer.Option(
        "--output",
        "-o",
        metavar="FORMAT",
        help=f"Output format: {names}",
        case_sensitive=False,
        autocompletion=complete,
    )


def check_output(value: Output, allowed: tuple[Output, ...]) -> Output:
    if value not in allowed:
        names = ", ".join(a.value for a in allowed)
        raise UsageError(f"--output {value.value} is not available here; choose one of: {names}")
    return value


def parse_kv(items: list[str] | None, flag: str) -> dict[str, str]:
    """``--attr K=V`` style flags into a dict; a malformed item is a usage error (exit 2)."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag} {item!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out
