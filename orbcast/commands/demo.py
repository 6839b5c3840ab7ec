"""``orbcast demo``: the whole path on built-in data, with no account and no network.

Records -> Broadcast-shaped spans -> an OTLP/HTTP JSON file -> rows read back from those spans (the
attributes ``query`` reads from Tempo) -> the report tables ``query`` prints.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from orbcast.demo import DAYS, DEFAULT_COUNT, DEFAULT_SEED, generate
from orbcast.errors import UsageError
from orbcast.options import Output, Runtime, check_output, output_option, span_options, with_settings
from orbcast.readback import build_row, split_values
from orbcast.records import GenerationRecord
from orbcast.report import (
    GROUPINGS,
    GenerationRow,
    Report,
    build_report,
    lookup_attr,
    markdown,
    report_json,
    tables,
)
from orbcast.report import header_line as report_header
from orbcast.spans import ROOT_SPAN_NAME, STATUS_ERROR, SpanOptions, resource_spans, span_count
from orbcast.timeparse import iso, parse_time

DEFAULT_OUT = "orbcast-demo.otlp.json"
SLOWEST = 5
FORMATS = (Output.table, Output.json, Output.markdown)


@dataclass
class Written:
    path: Path
    generations: int
    spans: int
    bytes: int
    rows: list[GenerationRow]


# ----------------------------------------------------------------------------- spans -> rows


def attribute_values(attributes: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """OTLP JSON ``attributes`` as plain values (intValue strings become ints)."""
    out: dict[str, Any] = {}
    for kv in attributes:
        value = kv.get("value") or {}
        if "stringValue" in value:
            out[kv["key"]] = value["stringValue"]
        elif "intValue" in value:
            out[kv["key"]] = int(value["intValue"])
        elif "doubleValue" in value:
            out[kv["key"]] = float(value["doubleValue"])
        elif "boolValue" in value:
            out[kv["key"]] = bool(value["boolValue"])
        elif "arrayValue" in value:
            out[kv["key"]] = [next(iter(v.values()), None) for v in value["arrayValue"].get("values", [])]
    return out


def row_from_resource_spans(rs: Mapping[str, Any], group_by: str = "model") -> GenerationRow:
    """One generation's row, read from its spans by the code ``query`` reads Tempo's answers with."""
    resource = attribute_values(rs.get("resource", {}).get("attributes", []))
    spans = [span for scope in rs.get("scopeSpans", []) for span in scope.get("spans", [])]
    root = next(s for s in spans if s["name"] == ROOT_SPAN_NAME and not s.get("parentSpanId"))
    start, end = int(root["startTimeUnixNano"]), int(root["endTimeUnixNano"])
    status = "error" if (root.get("status") or {}).get("code") == STATUS_ERROR else "ok"
    known, extra = split_values({**resource, **attribute_values(root.get("attributes", []))}.items())
    row = build_row(root["traceId"], start, max(0, end - start), known, extra, status)
    grouped = None if group_by in GROUPINGS else lookup_attr(extra, group_by)
    row.attrs = {} if grouped is None else {group_by: grouped}  # keep only what the grouping needs
    return row


# ----------------------------------------------------------------------------- the OTLP file


def write_otlp(
    records: Iterable[GenerationRecord], path: Path, options: SpanOptions, group_by: str = "model"
) -> Written:
    """Stream one ExportTraceServiceRequest to ``path`` (atomically) and read each generation back."""
    tmp = path.with_name(path.name + ".tmp")
    rows: list[GenerationRow] = []
    spans = size = 0
    try:
        with open(tmp, "wb") as fh:
            size += fh.write(b'{"resourceSpans":[')
            for index, record in enumerate(records):
                blob = orjson.dumps(resource_spans(record, options))
                size += fh.write(b"," + blob if index else blob)
                written = orjson.loads(blob)
                spans += span_count(written)
                rows.append(row_from_resource_spans(written, group_by))
            size += fh.write(b"]}\n")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    return Written(path, len(rows), spans, size, rows)


# ----------------------------------------------------------------------------- what to do next


def next_steps(rt: Runtime, path: Path, example_trace: str | None) -> list[str]:
    """The commands that send the same file to Grafana Cloud and read it back."""
    s = rt.settings
    file = shlex.quote(str(path))
    push = [f"orbcast replay {file}"]
    if not s.otlp_endpoint:
        push.append("--otlp-endpoint https://otlp-gateway-<zone>.grafana.net/otlp")
    if not (s.otlp_user and s.otlp_token):
        push.append("--otlp-user <instance id> --otlp-token <token with traces:write>")
    read = ["orbcast query 'span.orbcast.source = \"demo\"' --since 8d"]
    if not s.tempo_url:
        read.append("--tempo-url https://tempo-<zone>.grafana.net/tempo")
    if not (s.tempo_user and s.effective_tempo_token):
        read.append("--tempo-user <tempo user> --tempo-token <token with traces:read>")
    lines = [
        "",
        "Send the same data to Grafana Cloud Traces (URL and instance ID: your stack's OpenTelemetry card):",
        "  " + " \\\n      ".join(push),
        "",
        "Read it back (URL and user: your stack's Tempo card). Spans with old timestamps are found by search",
        "about 15 minutes after the push, and only by windows that reach now:",
        "  " + " \\\n      ".join(read),
    ]
    if example_trace:
        lines.append(f"  orbcast trace {example_trace}   # one generation by trace ID, found at once")
    return lines


# ----------------------------------------------------------------------------- the command


def demo(
    rt: Runtime,
    seed: Annotated[
        int, typer.Option("--seed", metavar="N", help="Random seed: the same seed gives the same history")
    ] = DEFAULT_SEED,
    count: Annotated[
        int,
        typer.Option(
            "--count",
            "-n",
            metavar="N",
            min=1,
            max=100_000,
            help="Number of generations to make (1 to 100,000)",
        ),
    ] = DEFAULT_COUNT,
    out: Annotated[
        Path, typer.Option("--out", metavar="PATH", help="Where to write the OTLP/HTTP JSON request")
    ] = Path(DEFAULT_OUT),
    by: Annotated[
        str,
        typer.Option(
            "--by", metavar="GROUP", help="Group by model, provider, user, session, api-key or ATTR"
        ),
    ] = "model",
    output: Annotated[Output, output_option(choices=FORMATS)] = Output.table,
    attr: Annotated[
        list[str] | None,
        typer.Option("--attr", metavar="K=V", help="Add trace.metadata.K=V to every generation, repeatable"),
    ] = None,
    now: Annotated[
        str | None,
        typer.Option("--now", metavar="TIME", help="Pin 'now' (history covers the 7 days before it)"),
    ] = None,
) -> None:
    """Run the whole path on a built-in history: no account, no network.

    Makes a realistic, seeded history (models, providers, fallbacks, failures, cancellations, cache and
    reasoning tokens, users and sessions over the last 7 days), converts it to Broadcast-shaped spans
    exactly as backfill does, writes them to an OTLP/HTTP JSON file, reads the spans back and prints the
    latency and cost tables that query prints. Then shows how to send the same file to Grafana Cloud.

    Examples:

    \b
      orbcast demo
      orbcast demo --by provider --count 2000 --seed 7
      orbcast demo --output json --out /tmp/demo.otlp.json | jq '.totals'
    """
    check_output(output, FORMATS)
    if not by.strip():
        raise UsageError("--by needs a grouping: model, provider, user, session, api-key or an attribute")
    moment = parse_time(now, option="--now") if now else datetime.now(UTC).replace(microsecond=0)
    options = span_options(rt.settings, attr)
    records = generate(count=count, seed=seed, now=moment)
    written = write_otlp(records, out, options, group_by=by)
    window = {"from": iso(moment - timedelta(days=DAYS)), "to": iso(moment)}
    report = build_report(written.rows, group_by=by, window=window)
    size = f"{written.bytes / 1_000_000:.1f} MB" if written.bytes >= 100_000 else f"{written.bytes:,} bytes"
    rt.ui.info(
        f"wrote {written.generations:,} generations ({written.spans:,} spans, {size}) to {written.path}"
    )
    example = max(report.generations, key=lambda r: r.duration_ms).trace_id if report.generations else None
    steps = next_steps(rt, written.path, example)
    _print(rt, report, output, written, seed)
    for line in steps:
        rt.ui.info(line)


def _print(rt: Runtime, report: Report, output: Output, written: Written, seed: int) -> None:
    if output is Output.json:
        payload = report_json(report)
        payload["demo"] = {
            "file": str(written.path),
            "seed": seed,
            "generations": written.generations,
            "spans": written.spans,
            "bytes": written.bytes,
        }
        rt.ui.data(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
    elif output is Output.markdown:
        rt.ui.data(markdown(report, slow=SLOWEST))
    else:
        rt.ui.data(report_header(report))
        for table in tables(report, slow=SLOWEST):
            rt.ui.table(table)


def register(app: typer.Typer) -> None:
    app.command("demo")(with_settings(demo))
