"""``--fail-if`` conditions: parse, measure against a report, and fail the run (exit 8) on a breach.

A condition is ``[SCOPE:] METRIC OP VALUE``: ``p95 > 5s``, ``cost > $10``, ``error_rate > 2%``,
``count < 1``, ``model=openai/gpt-4o: p95 > 3s``. Durations need a unit (``ms``, ``s``, ``m``, ``h``);
money may carry a ``$``; rates are fractions or percentages; counts and tokens may use ``k``/``M``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orbcast.errors import ThresholdBreached, UsageError
from orbcast.report import GroupStats, Report, fmt_cost, fmt_ms, summarize

# metric -> (kind, how to read it from GroupStats)
METRICS: dict[str, tuple[str, Callable[[GroupStats], float | None]]] = {
    "count": ("count", lambda g: g.count),
    "errors": ("count", lambda g: g.errors),
    "error_rate": ("ratio", lambda g: g.error_rate if g.count else None),
    "cost": ("money", lambda g: g.cost_usd),
    "tokens": ("count", lambda g: g.input_tokens + g.output_tokens),
    "input_tokens": ("count", lambda g: g.input_tokens),
    "output_tokens": ("count", lambda g: g.output_tokens),
    "p50": ("duration", lambda g: g.p50_ms),
    "p95": ("duration", lambda g: g.p95_ms),
    "p99": ("duration", lambda g: g.p99_ms),
    "max": ("duration", lambda g: g.max_ms),
    "ttft_p50": ("duration", lambda g: g.ttft_p50_ms),
    "ttft_p95": ("duration", lambda g: g.ttft_p95_ms),
}
OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "=": operator.eq,
    "!=": operator.ne,
}
_CONDITION = re.compile(
    r"^\s*(?:(?P<scope>.+?)\s*:\s*)?(?P<metric>[A-Za-z_0-9]+)\s*(?P<op>>=|<=|==|!=|>|<|=)\s*(?P<value>\S.*?)\s*$"
)
_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_DURATION = re.compile(rf"^{_NUMBER}\s*(ms|s|m|h)$")
_UNITS_MS = {"ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_COUNT = re.compile(rf"^{_NUMBER}\s*([kKmM]?)$")
FORMS = (
    "[SCOPE:] METRIC OP VALUE, e.g. 'p95 > 5s', 'cost > $10', 'error_rate > 2%', "
    "'model=openai/gpt-4o: p95 > 3s'"
)


@dataclass(frozen=True)
class Condition:
    text: str
    metric: str
    op: str
    threshold: float
    scope_key: str | None = None
    scope_value: str | None = None

    @property
    def kind(self) -> str:
        return METRICS[self.metric][0]


def _bad(text: str, why: str) -> UsageError:
    return UsageError(f"--fail-if {text!r}: {why}", hint=f"form: {FORMS}")


def parse_value(kind: str, raw: str, text: str) -> float:
    value = raw.strip()
    if kind == "duration":
        match = _DURATION.match(value)
        if not match:
            raise _bad(text, f"{value!r} is not a duration with a unit (ms, s, m or h), e.g. 5s or 800ms")
        return float(value[: -len(match.group(2))].strip()) * _UNITS_MS[match.group(2)]
    if kind == "money":
        money = value.removeprefix("$").strip()
        if not re.fullmatch(_NUMBER, money):
            raise _bad(text, f"{value!r} is not an amount in USD, e.g. 10 or $0.50")
        return float(money)
    if kind == "ratio":
        if value.endswith("%"):
            number = value[:-1].strip()
            if not re.fullmatch(_NUMBER, number):
                raise _bad(text, f"{value!r} is not a rate, e.g. 0.02 or 2%")
            return float(number) / 100
        if not re.fullmatch(_NUMBER, value):
            raise _bad(text, f"{value!r} is not a rate, e.g. 0.02 or 2%")
        return float(value)
    match = _COUNT.match(value)
    if not match:
        raise _bad(text, f"{value!r} is not a number, e.g. 100, 50k or 1.5M")
    factor = {"": 1, "k": 1e3, "K": 1e3, "m": 1e6, "M": 1e6}[match.group(2)]
    return float(value[: len(value) - len(match.group(2))].strip()) * factor


def parse_condition(text: str) -> Condition:
    match = _CONDITION.match(text or "")
    if not match:
        raise _bad(text, "cannot read it")
    metric = match.group("metric").lower()
    if metric not in METRICS:
        raise _bad(text, f"unknown metric {match.group('metric')!r}; metrics: {', '.join(METRICS)}")
    threshold = parse_value(METRICS[metric][0], match.group("value"), text)
    scope = match.group("scope")
    key = value = None
    if scope is not None:
        key, sep, value = scope.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise _bad(text, f"scope {scope!r} should be GROUPING=VALUE, e.g. model=openai/gpt-4o")
    return Condition(text.strip(), metric, match.group("op"), threshold, key, value)


def parse_conditions(texts: list[str] | None) -> list[Condition]:
    return [parse_condition(t) for t in texts or []]


def show(kind: str, value: float | None) -> str:
    if value is None:
        return "no data"
    if kind == "duration":
        return fmt_ms(value)
    if kind == "money":
        return fmt_cost(value)
    if kind == "ratio":
        return f"{value:.4g} ({value * 100:.2f}%)"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def scope_stats(report: Report, condition: Condition) -> GroupStats:
    """The figures a condition is measured against: the totals, or one group's."""
    if condition.scope_key is None or condition.scope_value is None:
        return report.totals
    key, value = condition.scope_key, condition.scope_value
    if key == report.group_by:
        for group in report.groups:
            if group.key == value:
                return group
        return GroupStats(key=value)
    if report.approximate:
        raise UsageError(
            f"--fail-if {condition.text!r}: with --approx a scope can only use the --by grouping "
            f"({report.group_by})"
        )
    return summarize(value, (r for r in report.generations if r.group_value(key) == value))


def evaluate(conditions: list[Condition], report: Report) -> list[dict[str, Any]]:
    """Measure every condition; the result goes into the report (JSON ``checks``)."""
    out: list[dict[str, Any]] = []
    for condition in conditions:
        kind, read = METRICS[condition.metric]
        measured = read(scope_stats(report, condition))
        breached = measured is not None and OPS[condition.op](float(measured), condition.threshold)
        out.append(
            {
                "condition": condition.text,
                "scope": f"{condition.scope_key}={condition.scope_value}" if condition.scope_key else None,
                "metric": condition.metric,
                "op": condition.op,
                "threshold": condition.threshold,
                "measured": measured,
                "measured_text": show(kind, measured),
                "breached": breached,
            }
        )
    return out


def enforce(checks: list[dict[str, Any]]) -> None:
    """Raise :class:`ThresholdBreached` (exit 8) listing every breached condition with its value."""
    failed = [c for c in checks if c["breached"]]
    if not failed:
        return
    listed = "; ".join(f"{c['condition']} (measured {c['measured_text']})" for c in failed)
    raise ThresholdBreached(f"{len(failed)} of {len(checks)} --fail-if conditions breached: {listed}")
