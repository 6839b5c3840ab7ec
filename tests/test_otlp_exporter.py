"""The OTLP/HTTP exporter against a loopback receiver that validates every request: every answer the
spec distinguishes, both encodings, gzip, and batching bounds."""

from __future__ import annotations

import gzip
import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from orbcast import protobuf
from orbcast.config import auth_headers
from orbcast.errors import AuthError, EndpointNotFound, ExitCode, ServiceUnavailable
from orbcast.otlp import (
    DEFAULT_BATCH_BYTES,
    Batch,
    Batcher,
    BatchRejected,
    ExporterConfig,
    OtlpExporter,
    encode_body,
    encode_gzip_body,
    gzip_bytes,
)
from orbcast.records import GenerationRecord
from orbcast.retry import Backoff
from orbcast.spanjson import resource_spans_json
from orbcast.spans import resource_spans, trace_id_for
from orbcast.state import Entry
from tests.fake_otlp import DROP, Answer, FakeOtlp, make_record_dicts, start_receiver


@pytest.fixture
def receiver() -> Iterator[FakeOtlp]:
    fake = start_receiver()
    yield fake
    fake.close()
    assert fake.invalid == [], fake.invalid  # every request orbcast sent was a valid OTLP request


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORBCAST_BACKOFF_SCALE", "0.01")


def _batch(n: int = 5, encoding: str = "json", seed: int = 1) -> Batch:
    batch = Batch(seq=1)
    for data in make_record_dicts(n, seed=seed):
        record = GenerationRecord.from_api(data)
        if encoding == "json":
            fragment = resource_spans_json(record)
        else:
            fragment = protobuf.resource_spans_fragment(resource_spans(record))
        entry = Entry(record.id, trace_id_for(record.id), 1 + len(record.provider_responses or ()))
        batch.fragments.append(fragment)
        batch.entries.append(entry)
        batch.spans += entry.spans
    return batch


def _exporter(
    receiver: FakeOtlp, *, encoding: str = "json", gzip: bool = True, retries: list[str] | None = None
) -> OtlpExporter:
    config = ExporterConfig(
        endpoint=receiver.endpoint,
        headers=auth_headers("123456", "glc_test_token_value"),
        encoding=encoding,
        gzip=gzip,
        timeout=5.0,
        policy=Backoff(initial=1.0, max_attempts=5),
    )
    return OtlpExporter(config, on_retry=None if retries is None else retries.append)


@pytest.mark.parametrize(
    ("encoding", "gzip"), [("json", True), ("json", False), ("protobuf", True), ("protobuf", False)]
)
def test_encodings_and_gzip_arrive_valid(receiver: FakeOtlp, encoding: str, gzip: bool) -> None:
    batch = _batch(8, encoding)
    exporter = _exporter(receiver, encoding=encoding, gzip=gzip)
    result = exporter.send(batch)
    exporter.close()
    assert result.status == 200 and result.rejected_spans == 0
    (request,) = receiver.requests
    assert request.path == "/otlp/v1/traces"
    expected_type = "application/json" if encoding == "json" else "application/x-protobuf"
    assert request.headers["Content-Type"] == expected_type
    assert request.headers.get("Content-Encoding") == ("gzip" if gzip else None)
    assert request.headers["Authorization"] == auth_headers("123456", "glc_test_token_value")["Authorization"]
    assert request.headers["User-Agent"].startswith("orbcast/")
    assert result.raw_bytes == len(encode_body(batch.fragments, encoding))
    assert result.wire_bytes == len(request.body)
    assert (result.wire_bytes < result.raw_bytes) is gzip
    assert receiver.generation_ids() == {e.generation_id for e in batch.entries}
    assert len(receiver.spans) == batch.spans


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
def test_gzip_body_from_fragments_is_the_gzip_of_the_joined_body(encoding: str) -> None:
    fragments = _batch(7, encoding).fragments
    body = encode_body(fragments, encoding)
    compressed, size = encode_gzip_body(fragments, encoding)
    assert size == len(body)
    assert gzip.decompress(compressed) == body
    assert compressed == gzip_bytes(body)


def test_429_with_retry_after_seconds_is_retried(receiver: FakeOtlp) -> None:
    receiver.script(Answer(429, retry_after="5"))
    retries: list[str] = []
    result = _exporter(receiver, retries=retries).send(_batch())
    assert result.status == 200
    assert [r.answer for r in receiver.requests] == [429, 200]
    assert len(retries) == 1 and "HTTP 429" in retries[0]
    wait = float(re.search(r"in ([\d.]+) s", retries[0]).group(1))  # type: ignore[union-attr]
    assert wait >= 0.05  # Retry-After 5 s, scaled by ORBCAST_BACKOFF_SCALE=0.01
    assert max(receiver.receipts().values()) == 1


def test_retry_after_http_date_is_honoured(receiver: FakeOtlp) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    receiver.script(Answer(503, retry_after=when))
    retries: list[str] = []
    _exporter(receiver, retries=retries).send(_batch())
    wait = float(re.search(r"in ([\d.]+) s", retries[0]).group(1))  # type: ignore[union-attr]
    assert 0.2 <= wait <= 0.31  # ~30 s from the date, scaled by 0.01; plain back-off would be ~0.01


def test_503_burst_and_dropped_connection_are_retried(receiver: FakeOtlp) -> None:
    receiver.script(Answer(503), Answer(502), DROP, Answer(504))
    retries: list[str] = []
    batch = _batch()
    result = _exporter(receiver, retries=retries).send(batch)
    assert result.status == 200
    assert len(receiver.requests) == 5 and len(retries) == 4
    assert any("connection dropped" in r for r in retries)
    assert receiver.generation_ids() == {e.generation_id for e in batch.entries}


def test_partial_success_is_counted_not_retried(receiver: FakeOtlp) -> None:
    receiver.script(Answer(200, partial=3))
    result = _exporter(receiver).send(_batch())
    assert (result.rejected_spans, result.message) == (3, "some spans were refused")
    assert len(receiver.requests) == 1


@pytest.mark.parametrize(
    "answer",
    [
        Answer(200, body=b"OK", content_type="text/plain"),
        Answer(200, body=b"", content_type=""),
        Answer(202, body=b"{not json", content_type="application/json"),
        Answer(200, body=b'{"partialSuccess":{}}', content_type="application/x-protobuf"),
    ],
    ids=["text-plain", "empty-no-type", "unparsable", "json-labelled-protobuf"],
)
def test_odd_success_answers_are_success(receiver: FakeOtlp, answer: Answer) -> None:
    receiver.script(answer)
    result = _exporter(receiver).send(_batch())
    assert result.rejected_spans == 0 and 200 <= result.status < 300


def test_protobuf_partial_success_answer_to_json_request(receiver: FakeOtlp) -> None:
    body = b"\x0a\x0b\x08\x02\x12\x07too old"  # ExportTraceServiceResponse{partial_success{2, "too old"}}
    assert protobuf.decode_partial_success(body) == (2, "too old")
    receiver.script(Answer(200, body=body, content_type="application/x-protobuf"))
    assert _exporter(receiver).send(_batch()).rejected_spans == 2


def test_400_shows_the_server_reason_and_is_not_retried(receiver: FakeOtlp) -> None:
    receiver.script(Answer(400, body=b'{"code":3,"message":"trace ids must be 128 bit, received 0 bits"}'))
    with pytest.raises(BatchRejected) as caught:
        _exporter(receiver).send(_batch())
    assert "HTTP 400" in caught.value.message and "trace ids must be 128 bit" in caught.value.message
    assert caught.value.exit_code == ExitCode.PARTIAL
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_auth_refusal_has_a_hint(receiver: FakeOtlp, status: int) -> None:
    receiver.script(Answer(status, body=b"invalid authentication credentials", content_type="text/plain"))
    with pytest.raises(AuthError) as caught:
        _exporter(receiver).send(_batch())
    assert caught.value.exit_code == ExitCode.AUTH
    assert f"HTTP {status}" in caught.value.message
    hint = caught.value.hint or ""
    assert "instance ID" in hint and "traces:write" in hint and "token" in hint
    assert len(receiver.requests) == 1


@pytest.mark.parametrize(
    ("status", "body"),
    [(404, b"404 page not found"), (415, b"415 unsupported media type, supported: [application/json]")],
)
def test_wrong_path_has_an_otlp_hint(receiver: FakeOtlp, status: int, body: bytes) -> None:
    receiver.script(Answer(status, body=body, content_type="text/plain"))
    with pytest.raises(EndpointNotFound) as caught:
        _exporter(receiver).send(_batch())
    assert caught.value.exit_code == ExitCode.NOT_FOUND
    assert body.decode()[:20] in caught.value.message
    assert "/otlp" in (caught.value.hint or "")
    assert len(receiver.requests) == 1


def test_other_5xx_is_not_retried(receiver: FakeOtlp) -> None:
    receiver.script(Answer(500))
    with pytest.raises(ServiceUnavailable) as caught:
        _exporter(receiver).send(_batch())
    assert "HTTP 500" in caught.value.message and len(receiver.requests) == 1


def test_retries_run_out(receiver: FakeOtlp) -> None:
    receiver.default = Answer(503)
    with pytest.raises(ServiceUnavailable) as caught:
        _exporter(receiver).send(_batch())
    assert caught.value.exit_code == ExitCode.UNAVAILABLE
    assert "503" in caught.value.message
    assert len(receiver.requests) == 5  # the policy's max_attempts
    assert receiver.spans == {}


def test_unreachable_endpoint() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    config = ExporterConfig(endpoint=f"http://127.0.0.1:{port}/v1/traces", policy=Backoff(max_attempts=2))
    with pytest.raises(ServiceUnavailable) as caught:
        OtlpExporter(config).send(_batch())
    assert "connection refused" in caught.value.message


def test_batcher_bounds_spans_and_bytes() -> None:
    batcher = Batcher(max_spans=10, max_bytes=DEFAULT_BATCH_BYTES)
    full = [b for i in range(12) if (b := batcher.add(Entry(f"g{i}", "t", 3), b"x" * 10)) is not None]
    assert [b.spans for b in full] == [9, 9, 9]  # 4th entry would make 12 > 10
    last = batcher.flush()
    assert last is not None and last.spans == 9 and batcher.flush() is None

    batcher = Batcher(max_spans=1000, max_bytes=100)
    emitted = [b for i in range(5) if (b := batcher.add(Entry(f"g{i}", "t", 1), b"y" * 40)) is not None]
    assert all(b.size <= 100 for b in emitted) and [len(b) for b in emitted] == [1, 1, 1, 1]
    before = batcher.add(Entry("huge", "t", 1), b"z" * 500)  # larger than the bound: goes out alone
    assert before is not None and [e.generation_id for e in before.entries] == ["g4"]
    alone = batcher.flush()
    assert alone is not None and alone.entries[0].generation_id == "huge"
