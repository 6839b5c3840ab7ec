"""A small TraceQL subset for the fake Tempo: spanset filters with && / || / parentheses, pipeline
filters, select(), a with(...) hint, and the metrics functions orbcast's --approx sends.

Anything outside the subset is a parse error, answered the way Tempo answers one (400, text/plain).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TOKEN = re.compile(
    r"""(?P<ws>\s+)
    |(?P<str>"(?:[^"\\]|\\.)*")
    |(?P<op>&&|\|\||!=|>=|<=|=~|!~|[=<>{}()|,!])
    |(?P<dur>\d+(?:\.\d+)?(?:ns|us|ms|s|m|h)(?![A-Za-z0-9_]))
    |(?P<num>\d+(?:\.\d+)?|\.\d+)
    |(?P<ident>[A-Za-z_.][A-Za-z0-9_.:]*)
    """,
    re.X,
)
_DUR = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
METRICS = {"count_over_time", "sum_over_time", "max_over_time", "min_over_time", "quantile_over_time", "rate"}
INTRINSICS = {"duration", "name", "status", "kind", "span:duration", "span:name", "span:status", "span:kind"}


class ParseError(ValueError):
    def __init__(self, col: int, found: str) -> None:
        super().__init__(
            f"invalid TraceQL query: parse error at line 1, col {col}: syntax error: unexpected {found}"
        )


@dataclass
class Tok:
    kind: str
    text: str
    col: int


def tokenize(text: str) -> list[Tok]:
    out, pos = [], 0
    while pos < len(text):
        match = TOKEN.match(text, pos)
        if not match:
            raise ParseError(pos + 1, text[pos])
        kind = match.lastgroup or ""
        if kind != "ws":
            out.append(Tok(kind, match.group(), pos + 1))
        pos = match.end()
    return out


SpanView = dict[str, Any]  # name, duration (ns), status, kind, attrs, resource
Pred = Callable[[SpanView], bool]


@dataclass
class Parsed:
    filters: list[Pred] = field(default_factory=list)
    referenced: list[str] = field(default_factory=list)  # fields named in filters and select()
    metric: str | None = None
    metric_args: list[str] = field(default_factory=list)
    by: list[str] = field(default_factory=list)


def field_value(name: str, span: SpanView) -> Any:
    bare = name.split(":", 1)[1] if name.startswith("span:") else name
    if bare in ("duration", "name", "status", "kind"):
        return span[bare]
    if name.startswith("resource."):
        return span["resource"].get(name[9:])
    if name.startswith("span."):
        return span["attrs"].get(name[5:])
    if name.startswith("."):
        return span["attrs"].get(name[1:], span["resource"].get(name[1:]))
    raise KeyError(name)


def result_key(name: str) -> str:
    """How Tempo names the attribute in search results: scope removed."""
    for prefix in ("resource.", "span.", "."):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name.split(":", 1)[-1]


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = tokenize(text)
        self.i = 0
        self.end = len(text) + 1
        self.out = Parsed()

    def peek(self) -> Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, text: str | None = None, kind: str | None = None) -> Tok:
        tok = self.peek()
        if tok is None:
            raise ParseError(self.end, "$end")
        if (text is not None and tok.text != text) or (kind is not None and tok.kind != kind):
            raise ParseError(tok.col, tok.text)
        self.i += 1
        return tok

    def query(self) -> Parsed:
        self.stage()
        while self.peek() is not None and self.peek().text == "|":  # type: ignore[union-attr]
            self.take("|")
            self.stage()
        tok = self.peek()
        if tok is not None and tok.text == "with":
            self.take("with")
            self.take("(")
            while self.peek() is not None and self.peek().text != ")":  # type: ignore[union-attr]
                self.i += 1
            self.take(")")
        tok = self.peek()
        if tok is not None:
            raise ParseError(tok.col, tok.text)
        return self.out

    def stage(self) -> None:
        tok = self.peek()
        if tok is None:
            raise ParseError(self.end, "$end")
        if tok.text == "{":
            self.out.filters.append(self.spanset())
        elif tok.text == "select":
            self.take("select")
            self.take("(")
            self.out.referenced.extend(self.fields())
            self.take(")")
        elif tok.text in METRICS:
            self.metrics()
        else:
            raise ParseError(tok.col, tok.text)

    def fields(self) -> list[str]:
        names = [self.take(kind="ident").text]
        while self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
            self.take(",")
            names.append(self.take(kind="ident").text)
        return names

    def metrics(self) -> None:
        self.out.metric = self.take().text
        self.take("(")
        while self.peek() is not None and self.peek().text != ")":  # type: ignore[union-attr]
            tok = self.take()
            if tok.text != ",":
                self.out.metric_args.append(tok.text)
        self.take(")")
        if self.peek() is not None and self.peek().text == "by":  # type: ignore[union-attr]
            self.take("by")
            self.take("(")
            self.out.by = self.fields()
            self.take(")")

    def spanset(self) -> Pred:
        self.take("{")
        if self.peek() is not None and self.peek().text == "}":  # type: ignore[union-attr]
            self.take("}")
            return lambda span: True
        pred = self.expr()
        self.take("}")
        return pred

    def expr(self) -> Pred:
        left = self.conj()
        while self.peek() is not None and self.peek().text == "||":  # type: ignore[union-attr]
            self.take("||")
            right = self.conj()
            left = (lambda a, b: lambda s: a(s) or b(s))(left, right)
        return left

    def conj(self) -> Pred:
        left = self.unary()
        while self.peek() is not None and self.peek().text == "&&":  # type: ignore[union-attr]
            self.take("&&")
            right = self.unary()
            left = (lambda a, b: lambda s: a(s) and b(s))(left, right)
        return left

    def unary(self) -> Pred:
        tok = self.peek()
        if tok is not None and tok.text == "(":
            self.take("(")
            pred = self.expr()
            self.take(")")
            return pred
        return self.condition()

    def condition(self) -> Pred:
        name_tok = self.take(kind="ident")
        name = name_tok.text
        if not (name in INTRINSICS or name.startswith(("resource.", "span.", "."))):
            raise ParseError(name_tok.col, name)
        op = self.take(kind="op").text
        if op not in ("=", "!=", ">", ">=", "<", "<=", "=~", "!~"):
            raise ParseError(name_tok.col + len(name), op)
        value_tok = self.take()
        value = literal(value_tok)
        self.out.referenced.append(name)

        def pred(span: SpanView) -> bool:
            have = field_value(name, span)
            if have is None:
                return False
            return compare(have, op, value)

        return pred


def literal(tok: Tok) -> Any:
    if tok.kind == "str":
        return tok.text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if tok.kind == "dur":
        unit = re.sub(r"^[\d.]+", "", tok.text)
        return float(tok.text[: -len(unit)]) * _DUR[unit]
    if tok.kind == "num":
        return float(tok.text)
    if tok.kind == "ident" and tok.text in ("ok", "error", "unset", "true", "false", "client", "server"):
        return {"true": True, "false": False}.get(tok.text, tok.text)
    raise ParseError(tok.col, tok.text)


def compare(have: Any, op: str, want: Any) -> bool:
    if op in ("=~", "!~"):
        hit = re.fullmatch(str(want), str(have)) is not None
        return hit if op == "=~" else not hit
    if isinstance(want, float) and not isinstance(have, bool):
        try:
            have = float(have)
        except (TypeError, ValueError):
            return False
    elif isinstance(want, str):
        have = str(have)
    try:
        return {
            "=": have == want,
            "!=": have != want,
            ">": have > want,
            ">=": have >= want,
            "<": have < want,
            "<=": have <= want,
        }[op]
    except TypeError:
        return False


def parse(text: str) -> Parsed:
    return _Parser(text).query()
