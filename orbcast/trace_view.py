"""One trace, as ``orbcast trace`` shows it: a tree of spans with timings and attributes, or JSON."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from rich.tree import Tree

from orbcast.errors import UsageError
from orbcast.readback import iso_ns
from orbcast.report import fmt_ms
from orbcast.spans import trace_id_for
from orbcast.tempo_json import Span, pad_trace_id, span_tree


def parse_trace_id(text: str) -> str:
    """A trace ID as typed: 32 hex, the trimmed form search prints, or an OpenRouter generation ID."""
    value = (text or "").strip()
    if value.startswith("gen-"):
        return trace_id_for(value)
    try:
        return pad_trace_id(value)
    except ValueError:
        raise UsageError(
            f"{text!r} is not a trace ID: expected up to 32 hex characters (or a generation ID gen-…)"
        ) from None


def _value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 300 else text[:300] + f"… ({len(text)} characters)"


def render_tree(trace_id: str, spans: list[Span], *, show_attributes: bool = True) -> Tree:
    roots = span_tree(spans)
    origin = min(s.start_ns for s in spans)
    end = max(s.end_ns for s in spans)
    title = Text.assemble(
        ("trace ", "bold"),
        (trace_id, "bold"),
        f"  {len(spans)} spans · {iso_ns(origin)} · {fmt_ms((end - origin) / 1e6)}",
    )
    tree = Tree(title)
    resources: set[tuple[tuple[str, str], ...]] = set()

    def add(parent: Tree, span: Span) -> None:
        status = span.status + (f": {span.status_message}" if span.status_message else "")
        style = "red" if span.status == "error" else None
        label = Text.assemble(
            (span.name or "(unnamed)", "bold"),
            f"  {fmt_ms(span.duration_ms)}",
            f"  at +{fmt_ms((span.start_ns - origin) / 1e6)}",
            f"  [{status}]",
            f"  {span.kind}",
            f"  span {span.span_id}",
            style=style or "",
        )
        node = parent.add(label)
        resource = tuple(sorted((k, str(v)) for k, v in span.resource.items()))
        if show_attributes and resource and resource not in resources:
            resources.add(resource)
            res = node.add(Text("resource", style="dim"))
            for key, value in resource:
                res.add(Text(f"{key} = {_value(value)}", style="dim"))
        if show_attributes:
            for key, value in sorted(span.attributes.items()):
                node.add(Text(f"{key} = {_value(value)}", style="dim"))
        for child in span.children:
            add(node, child)

    for root in roots:
        add(tree, root)
    return tree


def trace_json(trace_id: str, spans: list[Span]) -> dict[str, Any]:
    """The trace with hex IDs, plain attribute values and ISO times (stable keys)."""
    return {
        "trace_id": trace_id,
        "spans": [
            {
                "span_id": s.span_id,
                "parent_span_id": s.parent_id,
                "name": s.name,
                "kind": s.kind,
                "start": iso_ns(s.start_ns),
                "end": iso_ns(s.end_ns),
                "start_unix_nano": s.start_ns,
                "duration_ms": s.duration_ms,
                "status": s.status,
                "status_message": s.status_message,
                "attributes": s.attributes,
                "resource": s.resource,
                "scope": s.scope,
            }
            for s in sorted(spans, key=lambda s: (s.start_ns, s.name))
        ],
    }
