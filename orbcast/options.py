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

from orbcast.config import SETTINGS, Settings, load_settings
from orbcast.console import UI
from orbcast.errors import UsageError
from orbcast.spans import SpanOptions

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


# setting -> (metavar, help); the flag and the environment variable come from config.SETTINGS
_CONNECTION_HELP = {
    "openrouter_key": ("KEY", "OpenRouter API key"),
    "management_key": ("KEY", "OpenRouter management key, for history"),
    "openrouter_url": ("URL", "OpenRouter API base URL"),
    "otlp_endpoint": ("URL", "OTLP/HTTP endpoint; /v1/traces is appended"),
    "otlp_user": ("ID", "OTLP user: the Grafana Cloud instance ID"),
    "otlp_token": ("TOKEN", "OTLP token"),
    "otlp_headers": ("K=V", "Extra OTLP header K=V, repeatable"),
    "tempo_url": ("URL", "Tempo query URL"),
    "tempo_user": ("ID", "Tempo user (tenant ID)"),
    "tempo_token": ("TOKEN", "Tempo token; defaults to the OTLP token"),
    "state_dir": ("DIR", "Ledger and checkpoints directory"),
}
# command parameter name -> setting name (the repeatable header flag is singular)
_SETTING_FLAGS = {("otlp_header" if name == "otlp_headers" else name): name for name in _CONNECTION_HELP}


def _setting_option(name: str) -> Any:
    flag, envs, _secret = SETTINGS[name]
    metavar, text = _CONNECTION_HELP[name]
    return _opt(flag, metavar=metavar, help=f"{text} [env {envs[0]}]")


_COMMON: list[tuple[str, Any, Any]] = [
    *(
        (param, list[str] | None if name == "otlp_headers" else str | None, _setting_option(name))
        for param, name in _SETTING_FLAGS.items()
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


def span_options(
    settings: Settings, attr: list[str] | None, with_content: bool = False, privacy: bool = False
) -> SpanOptions:
    """The conversion options of a run: configured attributes overlaid with ``--attr K=V`` flags."""
    return SpanOptions(
        attrs={**settings.attrs, **parse_kv(attr, "--attr")},
        api_key_metadata=settings.api_key_metadata,
        include_content=with_content,
        privacy=privacy,
    )
