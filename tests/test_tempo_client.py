"""The Tempo client on recorded answers: encodings, the streaming splitter, lookups, errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from orbcast.config import load_settings
from orbcast.errors import EndpointNotFound, QueryRejected
from orbcast.tempo import RangeTooLong, TempoClient, go_duration_seconds
from orbcast.tempo_json import TraceSplitter, pad_trace_id, trace_spans
from tests import tempo_data
from tests.fake_tempo import FakeTempo

DATA = tempo_data.DATA


def recorded(name: str) -> dict[str, Any]:
    return orjson.loads((DATA / f"{name}.json").read_bytes())


def client_for(url: str) -> TempoClient:
    return TempoClient(load_settings({"tempo_url": url}, env={}))


def truth(run: str = "default") -> dict[str, Any]:
    return orjson.loads((DATA / "dataset.json").read_bytes())["runs"][run]


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORBCAST_BACKOFF_SCALE", "0.001")


@pytest.fixture
def fake() -> Iterator[tuple[FakeTempo, tempo_data.Dataset]]:
    with tempo_data.loaded_tempo() as (server, dataset):
        yield server, dataset


def test_trace_by_id_decodes_base64_ids_and_enum_names() -> None:
    run = truth()
    pick = next(g for g in run["generations"] if g["gen_id"] == run["picks"]["recent"])
    for name in ("trace-v2-recent.default", "trace-v1-recent.default"):
        spans = trace_spans(recorded(name)["response"]["body"])
        assert {s.trace_id for s in spans} == {pick["trace_id"]}
        root = next(s for s in spans if s.parent_id is None)
        assert root.span_id == pick["root_span_id"] and root.name == "LLM Generation"
        assert root.kind == "client" and root.status == "ok"
        assert root.attributes["gen_ai.usage.input_tokens"] == pick["input_tokens"]  # int, not "5814"
        assert root.attributes["gen_ai.usage.total_cost"] == pick["cost"]
        assert root.duration_ms == pick["duration_ms"]
        attempts = sorted((s for s in spans if s.parent_id), key=lambda s: s.start_ns)
        assert [(s.span_id, s.name) for s in attempts] == [
            (a["span_id"], a["name"]) for a in pick["attempts"]
        ]
        assert all(s.parent_id == root.span_id for s in attempts)


def test_trimmed_trace_ids_are_padded() -> None:
    run = truth()
    zero = next(g for g in run["generations"] if g["gen_id"] == run["picks"]["leading_zero"])
    assert len(zero["trace_id_as_returned_by_search"]) < 32
    assert pad_trace_id(zero["trace_id_as_returned_by_search"]) == zero["trace_id"]
    spans = trace_spans(recorded("trace-v2-leading-zero-trimmed.default")["response"]["body"])
    assert {s.trace_id for s in spans} == {zero["trace_id"]}
    with pytest.raises(ValueError):
        pad_trace_id("not-a-trace-id")


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
def test_splitter_cuts_a_streamed_search_body_into_traces(chunk: int) -> None:
    body = recorded("search-select-last1h-limit5.default")["response"]["body"]
    raw = orjson.dumps(body)  # compact, traceID first: what Tempo writes
    splitter = TraceSplitter()
    traces = [orjson.loads(p) for i in range(0, len(raw), chunk) for p in splitter.feed(raw[i : i + chunk])]
    traces += splitter.finish()

    def without_copy(items: list[dict[str, Any]]) -> list[dict[str, Any]]:  # the deprecated duplicate
        return [{k: v for k, v in t.items() if k != "spanSet"} for t in items]

    assert without_copy(traces) == without_copy(body["traces"]) and splitter.rest == {
        "metrics": body["metrics"]
    }
    assert all("spanSet" not in t for t in traces[:-1])  # cut out unparsed while streaming


def test_splitter_cuts_the_spanset_copy_only_within_its_own_trace() -> None:
    body = recorded("search-select-last1h-limit5.default")["response"]["body"]
    traces = body["traces"]
    odd = [{**traces[0], "traceID": "ab12"}, {**traces[1], "traceID": "cd34"}]
    del odd[0]["spanSets"], odd[1]["spanSet"]  # the copy alone, then spanSets alone
    whole = [*traces[:2], *odd, *traces[:2]]
    raw = orjson.dumps({"traces": whole, "metrics": body["metrics"]})
    splitter = TraceSplitter()
    parsed = [orjson.loads(p) for i in range(0, len(raw), 100) for p in splitter.feed(raw[i : i + 100])]
    parsed += splitter.finish()
    assert [t["traceID"] for t in parsed] == [t["traceID"] for t in whole]
    assert parsed[2] == odd[0] and parsed[3] == odd[1]  # nothing cut across two traces
    assert [t["spanSets"] for t in parsed if "spanSets" in t] == [
        t["spanSets"] for t in whole if "spanSets" in t
    ]
    assert not any("spanSet" in t and "spanSets" in t for t in parsed[:-1])


@pytest.mark.parametrize(
    "raw",
    [b'{"traces":[],"metrics":{}}', b'{"metrics":{"completedJobs":3,"totalJobs":3}}', b""],
)
def test_splitter_on_empty_answers(raw: bytes) -> None:
    splitter = TraceSplitter()
    assert splitter.feed(raw) == [] and splitter.finish() == []


def test_splitter_falls_back_to_a_whole_parse_for_other_layouts() -> None:
    body = recorded("search-error-last1h-spss100.default")["response"]["body"]
    raw = orjson.dumps({"metrics": body["metrics"], "traces": body["traces"]}, option=orjson.OPT_INDENT_2)
    splitter = TraceSplitter()
    pieces = [p for i in range(0, len(raw), 100) for p in splitter.feed(raw[i : i + 100])]
    assert pieces == [] and splitter.finish() == body["traces"]


def test_trace_exists(fake: tuple[FakeTempo, tempo_data.Dataset]) -> None:
    server, dataset = fake
    zero = next(g for g in dataset.generations if g.trace_id.startswith("00"))
    with client_for(server.url) as client:
        assert client.trace_exists(dataset.generations[0].trace_id)
        assert client.trace_exists(zero.trace_id.lstrip("0"))
        assert not client.trace_exists("0ae53bf4d0609458c14e326c86e69340")  # v2: 200 with an empty trace
        old = dataset.where(age_class="old")[0]
        assert client.trace_exists(old.trace_id)  # no start/end: backfilled traces are found at once
    assert all("start" not in params for path, params in server.requests if "/traces/" in path)


def test_search_trace_ids(fake: tuple[FakeTempo, tempo_data.Dataset]) -> None:
    server, dataset = fake
    now = datetime.now(UTC)
    with client_for(server.url) as client:
        ids = client.search_trace_ids(
            '{ resource.service.name = "openrouter" }', now - timedelta(days=4), now, limit=1000
        )
        assert ids == {g.trace_id for g in dataset.generations} and not client.last_truncated
        few = client.search_trace_ids("{}", now - timedelta(days=4), now, limit=7)
        assert len(few) == 7 and few <= ids and client.last_truncated


def test_v1_fallback_when_v2_is_missing(httpserver: HTTPServer) -> None:
    v1 = recorded("trace-v1-recent.default")
    trace_id = v1["request"]["path"].rsplit("/", 1)[1]
    httpserver.expect_request(f"/api/v2/traces/{trace_id}").respond_with_data("404 page not found", 404)
    httpserver.expect_request(f"/api/traces/{trace_id}").respond_with_json(v1["response"]["body"])
    httpserver.expect_request("/api/v2/traces/" + "1" * 32).respond_with_data("404 page not found", 404)
    httpserver.expect_request("/api/traces/" + "1" * 32).respond_with_data("", 404)
    httpserver.expect_request("/api/echo").respond_with_data("echo")
    with client_for(httpserver.url_for("/")) as client:
        spans = client.trace(trace_id)
        assert spans is not None and {s.trace_id for s in spans} == {trace_id}
        assert client.trace("1" * 32) is None


def test_404_everywhere_is_a_wrong_url(httpserver: HTTPServer) -> None:
    httpserver.expect_request(re.compile("^/wrong/.*")).respond_with_data("404 page not found", 404)
    with client_for(httpserver.url_for("/wrong")) as client, pytest.raises(EndpointNotFound) as err:
        client.trace_exists("1" * 32)
    assert "/tempo" in (err.value.hint or "")


def test_recorded_400s(httpserver: HTTPServer) -> None:
    bad = recorded("search-bad-traceql.default")["response"]
    too_long = recorded("search-range-over-168h.default")["response"]

    def answer(request: Request) -> Response:
        which = bad if request.args["q"] == "bad" else too_long
        return Response(which["body"], 400, content_type=which["content_type"])

    httpserver.expect_request("/api/search").respond_with_handler(answer)
    now = datetime.now(UTC)
    with client_for(httpserver.url_for("/")) as client:
        with pytest.raises(QueryRejected) as rejected:
            client.search("bad", now - timedelta(hours=1), now, limit=5, convert=lambda t: t)
        assert bad["body"] in rejected.value.message and rejected.value.hint == "query sent: bad"
        assert rejected.value.exit_code == 7
        with pytest.raises(RangeTooLong) as long:
            client.search("{}", now - timedelta(days=9), now, limit=5, convert=lambda t: t)
        assert long.value.max_seconds == 168 * 3600


def test_go_durations() -> None:
    assert go_duration_seconds("168h0m0s") == 604800
    assert go_duration_seconds("24h0m0s") == 86400
    assert go_duration_seconds("1h30m") == 5400
    assert go_duration_seconds("soon") is None
