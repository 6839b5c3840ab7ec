"""The query text: shorthand for generation spans, angle brackets, and the ``select()`` orbcast adds.

- No query: every generation, ``{ resource.service.name = "openrouter" && span:name = "LLM Generation" }``.
- A bare expression (``duration > 5s``) is shorthand for ``{ <generation filter> && (EXPR) }``.
- Outer angle brackets (``< duration > 5s >``) are read as braces: ``{ duration > 5s }``.
- Full TraceQL (starts with ``{`` or ``(``) is sent as given.
- In every case but ``--raw`` a ``select()`` of the attributes the report needs is added as the last
  pipeline stage (merged into a ``select()`` already there, and placed before a ``with (...)`` hint), so
  Tempo returns them with each span. A query whose top level combines parenthesised pipelines cannot
  take a stage; it is sent as given and the generations are read by trace ID instead.

TraceQL itself is never parsed here beyond strings, brackets and top-level ``|``: Tempo is the judge.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from orbcast.errors import UsageError

GENERATION_FILTER = 'resource.service.name = "openrouter" && span:name = "LLM Generation"'
ALL_GENERATIONS = "{ " + GENERATION_FILTER + " }"
ROOT_SPAN_NAME = "LLM Generation"

# What the report reads from each generation span: row field -> attribute (scoped, as TraceQL wants it).
FIELD_ATTRIBUTES = {
    "model": "span.gen_ai.request.model",
    "generation_id": "span.gen_ai.response.id",
    "provider": "span.trace.metadata.openrouter.provider_name",
    "input_tokens": "span.gen_ai.usage.input_tokens",
    "output_tokens": "span.gen_ai.usage.output_tokens",
    "reasoning_tokens": "span.gen_ai.usage.output_tokens.reasoning",
    "cached_tokens": "span.gen_ai.usage.input_tokens.cached",
    "cost_usd": "span.gen_ai.usage.total_cost",
    "ttft_ms": "span.trace.metadata.openrouter.first_token_ms",
    "user": "span.user.id",
    "session": "span.session.id",
    "api_key": "span.trace.metadata.openrouter.api_key_name",
    "status": "status",
}
# search answers carry a span's name only when the query names it; it tells the generation span apart
SELECT = (*FIELD_ATTRIBUTES.values(), "name")
# what the tables show (the per-generation formats take every field)
TABLE_FIELDS = frozenset(
    {"model", "provider", "input_tokens", "output_tokens", "reasoning_tokens", "cached_tokens", "cost_usd",
     "ttft_ms", "status"}
)  # fmt: skip
GROUP_FIELDS = {"model": "model", "provider": "provider", "user": "user", "session": "session",
                "api-key": "api_key", "status": "status"}  # fmt: skip
GROUP_ATTRIBUTES = {
    "model": "span.gen_ai.request.model",
    "provider": "span.trace.metadata.openrouter.provider_name",
    "user": "span.user.id",
    "session": "span.session.id",
    "api-key": "span.trace.metadata.openrouter.api_key_name",
    "status": "status",
}
METRICS_FUNCTIONS = frozenset(
    {
        "rate",
        "count_over_time",
        "min_over_time",
        "max_over_time",
        "sum_over_time",
        "avg_over_time",
        "quantile_over_time",
        "histogram_over_time",
        "compare",
        "topk",
        "bottomk",
    }
)
_SCOPES = ("span.", "resource.", ".", "event.", "link.", "instrumentation.", "parent.")
_STAGE_HEAD = re.compile(r"^\s*([A-Za-z_]+)\s*\(")
_HINTS = re.compile(r"\bwith\s*\($")


@dataclass(frozen=True)
class Query:
    """A query ready for Tempo. ``sent`` goes to ``/api/search``; ``metrics()`` builds metrics queries."""

    typed: str | None
    form: str  # all | shorthand | angle | traceql | raw
    body: str  # the TraceQL without orbcast's select() and without hints
    hints: str  # a trailing "with (...)" or ""
    sent: str
    appended: bool  # whether orbcast's select() is in ``sent``
    note: str | None = None

    def metrics(self, stage: str, *, errors_only: bool = False) -> str:
        """``body | [{ status = error } |] stage [hints]`` for ``/api/metrics/query``."""
        middle = " | { status = error }" if errors_only else ""
        tail = f" {self.hints}" if self.hints else ""
        return f"{self.body}{middle} | {stage}{tail}"


def group_attribute(group_by: str) -> tuple[str, str]:
    """(TraceQL attribute to select, key it comes back under in search results) for ``--by``."""
    name = group_by.strip()
    if not name:
        raise UsageError("--by needs a grouping: model, provider, user, session, api-key or an attribute")
    if name in GROUP_ATTRIBUTES:
        scoped = GROUP_ATTRIBUTES[name]
    elif ":" in name or name.startswith(_SCOPES):
        scoped = name
    else:
        scoped = "." + name
    if re.search(r"[\s{}|]", scoped.replace('"', "")) and '"' not in scoped:
        raise UsageError(f'--by {group_by!r}: not an attribute name (quote odd names: span."my attr")')
    key = scoped.split(":", 1)[-1] if ":" in scoped else scoped
    for prefix in _SCOPES:
        if key.startswith(prefix):
            key = key[len(prefix) :]
            break
    return scoped, key.replace('"', "")


def selection(group_bys: Iterable[str], fields: Iterable[str] | None = None) -> list[str]:
    """The attributes to select: the row ``fields`` (default: all) plus what each grouping needs."""
    keep = set(FIELD_ATTRIBUTES if fields is None else fields)
    extra: list[str] = []
    for by in group_bys:
        if by in GROUP_FIELDS:
            keep.add(GROUP_FIELDS[by])
        else:
            scoped = group_attribute(by)[0]
            if scoped not in extra:
                extra.append(scoped)
    wanted = [attr for field, attr in FIELD_ATTRIBUTES.items() if field in keep]
    return [*wanted, "name", *(a for a in extra if a not in wanted)]


def prepare(
    text: str | None,
    *,
    raw: bool = False,
    group_by: str = "model",
    fields: Iterable[str] | None = None,
    also_group_by: Iterable[str] = (),
) -> Query:
    """Turn what the user typed into the query orbcast sends.

    ``fields``: the row fields the chosen output needs (default: all); ``also_group_by``: groupings
    that ``--fail-if`` scopes use besides ``group_by``.
    """
    typed = text if text is not None and text.strip() else None
    if raw:
        if typed is None:
            raise UsageError("--raw needs a query: the TraceQL to send exactly as given")
        return Query(typed, "raw", typed.strip(), "", typed.strip(), appended=False)
    if typed is None:
        form, expr = "all", ALL_GENERATIONS
    else:
        stripped = typed.strip()
        if stripped.startswith("<") and stripped.endswith(">") and len(stripped) > 2:
            form, expr = "angle", "{ " + stripped[1:-1].strip() + " }"
        elif stripped.startswith(("{", "(")):
            form, expr = "traceql", stripped
        else:
            form, expr = "shorthand", "{ " + GENERATION_FILTER + " && (" + stripped + ") }"
    return add_select(typed, form, expr, selection([group_by, *also_group_by], fields))


def add_select(typed: str | None, form: str, expr: str, wanted: list[str]) -> Query:
    try:
        body, hints = split_hints(expr)
        stages = split_stages(body)
    except ValueError:  # unbalanced: let Tempo say what is wrong with it
        return Query(typed, form, expr, "", expr, appended=False)
    for stage in stages[1:]:
        head = _STAGE_HEAD.match(stage)
        if head and head.group(1).lower() in METRICS_FUNCTIONS:
            raise UsageError(
                f"'| {stage.strip()}' makes this a TraceQL metrics query; orbcast query lists generations",
                hint="drop the metrics stage (orbcast computes the figures), or use --approx for "
                "figures from TraceQL metrics",
            )
    if len(stages) == 1 and combines_pipelines(body):
        note = (
            "the query combines parenthesised pipelines, so orbcast could not add select(); "
            "generation details are read by trace ID"
        )
        return Query(typed, form, body, hints, expr, appended=False, note=note)
    last = stages[-1]
    head = _STAGE_HEAD.match(last)
    if len(stages) > 1 and head and head.group(1).lower() == "select":
        inner = last[last.index("(") + 1 : last.rindex(")")]
        present = {a.strip() for a in split_top(inner, ",")}
        merged = inner.strip() + "".join(f", {a}" for a in wanted if a not in present)
        sent = " | ".join(s.strip() for s in stages[:-1]) + f" | select({merged})"
    else:
        sent = body.strip() + " | select(" + ", ".join(wanted) + ")"
    if hints:
        sent += " " + hints
    return Query(typed, form, body.strip(), hints, sent, appended=True)


# ----------------------------------------------------------------------------- a tiny scanner


def _scan(text: str) -> list[tuple[int, str, int]]:
    """(position, character, depth before it) for every character outside string literals."""
    out: list[tuple[int, str, int]] = []
    depth = 0
    quote: str | None = None
    escaped = False
    for i, ch in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\" and quote == '"':
                escaped = True
            elif ch == quote:
                quote = None
            continue
        if ch in '"`':
            quote = ch
            continue
        if ch in ")}":
            depth -= 1
            if depth < 0:
                raise ValueError("unbalanced brackets")
        out.append((i, ch, depth))
        if ch in "({":
            depth += 1
    if quote or depth:
        raise ValueError("unbalanced quotes or brackets")
    return out


def split_top(text: str, sep: str) -> list[str]:
    """``text`` cut at every ``sep`` outside strings and brackets."""
    parts, last = [], 0
    for i, ch, depth in _scan(text):
        if ch == sep and depth == 0:
            parts.append(text[last:i])
            last = i + 1
    parts.append(text[last:])
    return parts


def split_stages(text: str) -> list[str]:
    """Pipeline stages at the top level. ``||`` is an operator, not two pipes."""
    marks = _scan(text)
    cuts: list[int] = []
    for n, (i, ch, depth) in enumerate(marks):
        if ch != "|" or depth:
            continue
        before = marks[n - 1] if n else None
        after = marks[n + 1] if n + 1 < len(marks) else None
        if (before and before[1] == "|" and before[0] == i - 1) or (
            after and after[1] == "|" and after[0] == i + 1
        ):
            continue
        cuts.append(i)
    bounds = [-1, *cuts, len(text)]
    return [text[a + 1 : b] for a, b in zip(bounds, bounds[1:], strict=False)]


def split_hints(text: str) -> tuple[str, str]:
    """(query, "with (...)") when the query ends with a top-level hints clause."""
    text = text.strip()
    marks = _scan(text)
    if not marks or marks[-1][1] != ")" or marks[-1][2] != 0:
        return text, ""
    depth_open = None
    for i, ch, depth in reversed(marks):
        if ch == "(" and depth == 0:
            depth_open = i
            break
    if depth_open is None:
        return text, ""
    if _HINTS.search(text[: depth_open + 1]):
        start = text[:depth_open].rstrip()
        start = start[: -len("with")]
        return start.rstrip(), text[len(start) :].strip()
    return text, ""


def combines_pipelines(text: str) -> bool:
    """True when a top-level bracket group holds a pipeline: ``({ a } | count() > 1) && { b }``."""
    marks = _scan(text)
    inside = False
    for n, (i, ch, depth) in enumerate(marks):
        if ch == "(" and depth == 0:
            inside = True
        elif ch == ")" and depth == 0:
            inside = False
        elif ch == "|" and depth == 1 and inside:
            neighbours = {marks[k][0] for k in (n - 1, n + 1) if 0 <= k < len(marks) and marks[k][1] == "|"}
            if not neighbours & {i - 1, i + 1}:
                return True
    return False
