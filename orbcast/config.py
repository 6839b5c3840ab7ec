"""Settings: one contract for every command.

Precedence: flag > environment > config file profile > config file top level > default.
Each resolved value remembers where it came from, so ``orbcast config show`` can say so.
"""

from __future__ import annotations

import base64
import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from orbcast.errors import ConfigError

DEFAULT_OPENROUTER_URL = "https://openrouter.ai/api/v1"
TRACES_PATH = "/v1/traces"

# name -> (flag, environment variables in order, is_secret)
SETTINGS: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "openrouter_key": ("--openrouter-key", ("OPENROUTER_API_KEY",), True),
    "management_key": ("--management-key", ("OPENROUTER_MANAGEMENT_KEY",), True),
    "openrouter_url": ("--openrouter-url", ("OPENROUTER_BASE_URL",), False),
    "otlp_endpoint": (
        "--otlp-endpoint",
        ("ORBCAST_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
        False,
    ),
    "otlp_user": ("--otlp-user", ("ORBCAST_OTLP_USER",), False),
    "otlp_token": ("--otlp-token", ("ORBCAST_OTLP_TOKEN",), True),
    "otlp_headers": ("--otlp-header", ("OTEL_EXPORTER_OTLP_HEADERS",), True),
    "tempo_url": ("--tempo-url", ("ORBCAST_TEMPO_URL",), False),
    "tempo_user": ("--tempo-user", ("ORBCAST_TEMPO_USER",), False),
    "tempo_token": ("--tempo-token", ("ORBCAST_TEMPO_TOKEN",), True),
    "state_dir": ("--state-dir", ("ORBCAST_STATE_DIR",), False),
    "privacy": ("--privacy", ("ORBCAST_PRIVACY",), False),
}
SECRET_SETTINGS = frozenset(name for name, (_, _, secret) in SETTINGS.items() if secret)


# ----------------------------------------------------------------------------- secrets and masking

_SECRETS: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret so :func:`redact` can scrub it from any text we print."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def mask(value: str | None) -> str:
    """A secret as it may be shown: never more than a few characters of it."""
    if not value:
        return ""
    if len(value) <= 12:
        return "****"
    return f"{value[:4]}…{value[-2:]}"


def redact(text: str) -> str:
    """Replace every registered secret (and its Basic-auth encodings) in ``text`` with its mask."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, mask(secret))
    return text


# ----------------------------------------------------------------------------- paths


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("ORBCAST_CONFIG"):
        return Path(env["ORBCAST_CONFIG"]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "orbcast" / "config.toml"


def default_state_dir(env: Mapping[str, str]) -> str:
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(base).expanduser() / "orbcast")


# ----------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Value:
    value: Any
    source: str  # "flag --x", "env NAME", "config file", "config profile NAME", "default"


@dataclass
class Settings:
    """The effective settings of one run. Use attribute access: ``settings.otlp_token``."""

    values: dict[str, Value]
    profile: str | None = None
    config_file: Path | None = None
    attrs: dict[str, str] = field(default_factory=dict)  # run-wide trace.metadata.* from config
    api_key_metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name].value
        raise AttributeError(name)

    def source(self, name: str) -> str:
        return self.values[name].source

    # -- derived values

    @property
    def analytics_key(self) -> str | None:
        """The key for /analytics/query: the management key, falling back to the API key."""
        return self.management_key or self.openrouter_key

    @property
    def effective_tempo_token(self) -> str | None:
        return self.tempo_token or self.otlp_token

    def otlp_auth_headers(self) -> dict[str, str]:
        headers = dict(self.otlp_headers or {})
        headers.update(auth_headers(self.otlp_user, self.otlp_token))
        return headers

    def tempo_auth_headers(self) -> dict[str, str]:
        return auth_headers(self.tempo_user, self.effective_tempo_token)

    def require(self, *names: str, why: str) -> None:
        missing = [n for n in names if not self.values[n].value]
        if missing:
            flags = ", ".join(f"{SETTINGS[n][0]} / {SETTINGS[n][1][0]}" for n in missing)
            raise ConfigError(
                f"{why} needs {flags}",
                hint="set it with a flag, an environment variable, or in the config file "
                "(orbcast config path shows where)",
            )


def auth_headers(user: str | None, token: str | None) -> dict[str, str]:
    """user and token -> Basic; token alone -> Bearer; neither -> no auth."""
    if token and user:
        raw = f"{user}:{token}".encode()
        encoded = base64.b64encode(raw).decode("ascii")
        register_secret(encoded)
        return {"Authorization": f"Basic {encoded}"}
    if token:
        return {"Authorization": f"Bearer {token}"}
    return {}


def traces_endpoint(base: str, *, signal_specific: bool = False) -> str:
    """The URL to POST traces to: ``/v1/traces`` appended unless it is already there."""
    base = base.strip()
    if signal_specific or base.rstrip("/").endswith(TRACES_PATH):
        return base
    return base.rstrip("/") + TRACES_PATH


def parse_otlp_headers(text: str) -> dict[str, str]:
    """``OTEL_EXPORTER_OTLP_HEADERS``: ``k=v,k2=v2``, values raw or percent-encoded."""
    headers: dict[str, str] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise ConfigError(f"OTLP header {item!r} is not KEY=VALUE")
        key, _, value = item.partition("=")
        headers[unquote(key.strip())] = unquote(value.strip())
    return headers


def parse_header_flags(items: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--otlp-header {item!r} is not KEY=VALUE")
        headers[key.strip()] = value.strip()
    return headers


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


# ----------------------------------------------------------------------------- loading


def read_config_file(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The parsed TOML (``{}`` when absent) and warnings about it."""
    warnings: list[str] = []
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}, warnings
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    if _holds_secret(data):
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            warnings.append(
                f"config file {path} holds secrets but is readable by group or others "
                f"(mode {stat.S_IMODE(mode):o}); run: chmod 600 {path}"
            )
    return data, warnings


def _holds_secret(data: dict[str, Any]) -> bool:
    if any(data.get(name) for name in SECRET_SETTINGS):
        return True
    profiles = data.get("profiles") or {}
    return any(isinstance(p, dict) and _holds_secret(p) for p in profiles.values())


def load_settings(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    profile: str | None = None,
) -> Settings:
    """Resolve every setting. ``flags`` holds only the flags the user actually gave."""
    flags = {k: v for k, v in (flags or {}).items() if v not in (None, [], ())}
    env = os.environ if env is None else env
    path = config_path(env)
    data, warnings = read_config_file(path)
    profile = profile or env.get("ORBCAST_PROFILE") or None
    profiles = data.get("profiles") or {}
    prof_data: dict[str, Any] = {}
    if profile:
        if profile not in profiles:
            known = ", ".join(sorted(profiles)) or "none defined"
            raise ConfigError(f"profile {profile!r} is not in {path} (profiles: {known})")
        prof_data = profiles[profile]
    unknown = set(data) - set(SETTINGS) - {"profiles", "metadata", "attrs"}
    for key in sorted(unknown):
        warnings.append(f"config file {path}: unknown setting {key!r} ignored")

    values: dict[str, Value] = {}
    for name, (flag, env_names, _secret) in SETTINGS.items():
        values[name] = _resolve(name, flag, env_names, flags, env, prof_data, data, profile)
    if values["openrouter_url"].value is None:
        values["openrouter_url"] = Value(DEFAULT_OPENROUTER_URL, "default")
    if values["state_dir"].value is None:
        values["state_dir"] = Value(default_state_dir(env), "default")
    values["privacy"] = Value(_truthy(values["privacy"].value or False), values["privacy"].source)
    for url_name in ("openrouter_url", "otlp_endpoint", "tempo_url"):
        url = values[url_name].value
        if url and not str(url).startswith(("http://", "https://")):
            raise ConfigError(
                f"{SETTINGS[url_name][0]} {url!r} ({values[url_name].source}) is not an http(s) URL"
            )
    for name in SECRET_SETTINGS:
        secret = values[name].value
        if isinstance(secret, dict):
            for v in secret.values():
                register_secret(str(v))
        elif secret:
            register_secret(str(secret))

    attrs = {
        str(k): str(v) for k, v in {**(data.get("attrs") or {}), **(prof_data.get("attrs") or {})}.items()
    }
    meta = (data.get("metadata") or {}).get("api_keys") or {}
    api_key_metadata = {str(k): {str(a): str(b) for a, b in v.items()} for k, v in meta.items()}
    return Settings(
        values=values,
        profile=profile,
        config_file=path,
        attrs=attrs,
        api_key_metadata=api_key_metadata,
        warnings=warnings,
    )


def _resolve(
    name: str,
    flag: str,
    env_names: tuple[str, ...],
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    prof_data: Mapping[str, Any],
    data: Mapping[str, Any],
    profile: str | None,
) -> Value:
    if name in flags:
        value = flags[name]
        if name == "otlp_headers":
            value = parse_header_flags(list(value))
        elif name == "otlp_endpoint":
            value = traces_endpoint(value)
        return Value(value, f"flag {flag}")
    for env_name in env_names:
        raw = env.get(env_name)
        if raw:
            if name == "otlp_headers":
                return Value(parse_otlp_headers(raw), f"env {env_name}")
            if name == "otlp_endpoint":
                specific = env_name == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
                return Value(traces_endpoint(raw, signal_specific=specific), f"env {env_name}")
            return Value(raw, f"env {env_name}")
    for source_data, source in ((prof_data, f"config profile {profile}"), (data, "config file")):
        if name in source_data and source_data[name] not in (None, ""):
            value = source_data[name]
            if name == "otlp_headers":
                if not isinstance(value, dict):
                    raise ConfigError("otlp_headers in the config file must be a table of KEY = VALUE")
                value = {str(k): str(v) for k, v in value.items()}
            elif name == "otlp_endpoint":
                value = traces_endpoint(str(value))
            elif name != "privacy":
                value = str(value)
            return Value(value, source)
    return Value(None, "default")


def describe(settings: Settings) -> list[dict[str, str]]:
    """Rows for ``config show``: every setting, masked where secret, with its source."""
    rows = []
    for name in SETTINGS:
        value = settings.values[name].value
        if name == "otlp_headers":
            shown = ", ".join(f"{k}={mask(v)}" for k, v in (value or {}).items())
        elif name in SECRET_SETTINGS:
            shown = mask(value)
        elif isinstance(value, bool):
            shown = "true" if value else "false"
        else:
            shown = "" if value is None else str(value)
        rows.append({"setting": name, "value": shown, "source": settings.values[name].source})
    return rows
