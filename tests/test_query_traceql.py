"""What orbcast sends for what was typed: shorthand, angle brackets, and where select() goes."""

from __future__ import annotations

import pytest

from orbcast.errors import UsageError
from orbcast.traceql import ALL_GENERATIONS, GENERATION_FILTER, SELECT, group_attribute, prepare

SEL = "select(" + ", ".join(SELECT) + ")"


@pytest.mark.parametrize(
    ("typed", "sent"),
    [
        (None, f"{ALL_GENERATIONS} | {SEL}"),
        ("", f"{ALL_GENERATIONS} | {SEL}"),
        ("duration > 5s", f"{{ {GENERATION_FILTER} && (duration > 5s) }} | {SEL}"),
        ('span.trace.metadata.feature = "summarization"',
         f'{{ {GENERATION_FILTER} && (span.trace.metadata.feature = "summarization") }} | {SEL}'),
        ("< duration > 5s >", f"{{ duration > 5s }} | {SEL}"),
        ('{ resource.service.name = "openrouter" && duration > 5s }',
         f'{{ resource.service.name = "openrouter" && duration > 5s }} | {SEL}'),
        ("{ a = 1 } | count() > 2", f"{{ a = 1 }} | count() > 2 | {SEL}"),
        ("{ a = 1 } | by(span.x)", f"{{ a = 1 }} | by(span.x) | {SEL}"),
        ("{ a } >> { b }", f"{{ a }} >> {{ b }} | {SEL}"),
        ("({ a } || { b })", f"({{ a }} || {{ b }}) | {SEL}"),
        ('{ a = "x | y" || b = 2 }', f'{{ a = "x | y" || b = 2 }} | {SEL}'),
        ("{ a } with (most_recent=true)", f"{{ a }} | {SEL} with (most_recent=true)"),
        ("{ a } | select(status, span.x)", "{ a } | select(status, span.x, "
         + ", ".join(s for s in SELECT if s != "status") + ")"),
    ],
)  # fmt: skip
def test_sent(typed: str | None, sent: str) -> None:
    assert prepare(typed).sent == sent


def test_group_attribute_is_selected_once() -> None:
    q = prepare("duration > 1s", group_by="span.trace.metadata.feature")
    assert q.sent.endswith(", span.trace.metadata.feature)")
    assert prepare(None, group_by="model").sent.count("span.gen_ai.request.model") == 1
    assert group_attribute("trace.metadata.environment") == (
        ".trace.metadata.environment",
        "trace.metadata.environment",
    )
    assert group_attribute("resource.service.name") == ("resource.service.name", "service.name")
    assert group_attribute("provider") == ("span.trace.metadata.openrouter.provider_name",
                                           "trace.metadata.openrouter.provider_name")  # fmt: skip


def test_combined_pipelines_are_sent_as_given() -> None:
    typed = "({ a } | count() > 1) && ({ b })"
    q = prepare(typed)
    assert q.sent == typed and not q.appended and q.note and "trace ID" in q.note


def test_unbalanced_text_is_left_for_tempo_to_judge() -> None:
    assert prepare('{ a = "open }').sent == '{ a = "open }'


def test_raw_and_metrics() -> None:
    assert prepare("{ a } | rate()", raw=True).sent == "{ a } | rate()"
    with pytest.raises(UsageError):
        prepare("{ a } | rate() by (span.x)")
    with pytest.raises(UsageError):
        prepare(None, raw=True)
    q = prepare("duration > 1s")
    assert (
        q.metrics("count_over_time()") == f"{{ {GENERATION_FILTER} && (duration > 1s) }} | count_over_time()"
    )
    assert "| { status = error } |" in q.metrics("count_over_time()", errors_only=True)
    hinted = prepare("{ a } with (sample=true)")
    assert hinted.metrics("count_over_time()") == "{ a } | count_over_time() with (sample=true)"
