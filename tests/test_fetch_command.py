"""``orbcast fetch`` end to end (in-process) against the loopback fake: output, resume, error exit codes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import Result
from tests.fake_openrouter import API_KEY, MGMT_KEY, FakeOpenRouter, make_generations

START = (datetime.now(UTC) - timedelta(days=3)).replace(second=0, microsecond=0)
GENS = make_generations(60, START, timedelta(minutes=5))
WINDOW = ["--from", START.isoformat(), "--to", (START + timedelta(minutes=5 * 60)).isoformat()]
Cli = Callable[..., Result]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter(GENS) as server:
        monkeypatch.setenv("OPENROUTER_MANAGEMENT_KEY", MGMT_KEY)
        monkeypatch.setenv("OPENROUTER_BASE_URL", server.url)
        yield server


def lines(text: str | bytes) -> list[dict[str, Any]]:
    raw = text.encode() if isinstance(text, str) else text
    return [orjson.loads(line) for line in raw.splitlines() if line.strip()]


def assert_no_secret(res: Result) -> None:
    for secret in (MGMT_KEY, API_KEY):
        assert secret not in res.stdout and secret not in res.stderr


def test_fetch_to_stdout_writes_every_generation_once(cli: Cli, fake: FakeOpenRouter) -> None:
    res = cli("fetch", *WINDOW, "--verbose")
    assert res.exit_code == 0, res.stderr
    records = lines(res.stdout)
    assert sorted(r["id"] for r in records) == sorted(g["id"] for g in GENS)
    assert all(r["orbcast"]["api_key_name"] in {"backend-prod", "batch-jobs"} for r in records)
    assert all(r["orbcast"]["source"] == "api" for r in records)
    assert "fetched 60 generations" in res.stderr and "total cost $" in res.stderr
    assert_no_secret(res)


def test_rerun_with_the_same_output_resumes_without_refetching(
    cli: Cli, fake: FakeOpenRouter, tmp_path: Path
) -> None:
    out = tmp_path / "history.jsonl"
    first = [g for g in GENS if g["id"] in {x["id"] for x in GENS[::3]}]
    out.write_bytes(b"".join(orjson.dumps(g) + b"\n" for g in first) + b'{"id": "gen-torn-li')
    res = cli("fetch", *WINDOW, "-o", str(out))
    assert res.exit_code == 0, res.stderr
    assert f"{len(first)} generations already in" in res.stderr and "1 unreadable line(s)" in res.stderr
    fetched = {s.query["id"] for s in fake.requests("generation")}
    assert fetched == {g["id"] for g in GENS} - {g["id"] for g in first}
    text = out.read_bytes()
    good = []
    for line in text.splitlines():
        try:
            good.append(orjson.loads(line)["id"])
        except orjson.JSONDecodeError:
            assert line == b'{"id": "gen-torn-li'  # the torn line stays on its own line
    assert sorted(good) == sorted(g["id"] for g in GENS)  # nothing lost, nothing twice
    again = cli("fetch", *WINDOW, "-o", str(out))
    assert again.exit_code == 0 and "60 generations already in" in again.stderr
    assert out.read_bytes() == text


def test_dedup_across_slices_and_id_files(cli: Cli, fake: FakeOpenRouter, tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join([GENS[0]["id"], GENS[1]["id"], GENS[0]["id"], "# comment", "", GENS[1]["id"]]))
    res = cli("fetch", "--source", f"ids:{ids}")
    assert res.exit_code == 0, res.stderr
    assert sorted(r["id"] for r in lines(res.stdout)) == sorted([GENS[0]["id"], GENS[1]["id"]])
    assert len(fake.requests("generation")) == 2 and "2 duplicates" in res.stderr


def test_ids_from_stdin_with_content(cli: Cli, fake: FakeOpenRouter) -> None:
    res = cli("fetch", "--source", "ids:-", "--with-content", input=f"{GENS[4]['id']}\n{GENS[5]['id']}\n")
    assert res.exit_code == 0, res.stderr
    records = lines(res.stdout)
    assert {r["orbcast"]["content"]["output"]["completion"] for r in records} == {
        f"answer {GENS[4]['id']}",
        f"answer {GENS[5]['id']}",
    }


def test_privacy_never_fetches_content(cli: Cli, fake: FakeOpenRouter) -> None:
    res = cli("fetch", "--source", "ids:-", "--with-content", "--privacy", input=f"{GENS[4]['id']}\n")
    assert res.exit_code == 0 and fake.requests("content") == []
    assert "content" not in lines(res.stdout)[0]["orbcast"] and "privacy" in res.stderr


def test_faults_are_retried_and_the_run_completes(cli: Cli, fake: FakeOpenRouter) -> None:
    fake.fail("generation", 503, times=2)
    fake.fail("generation", 429, retry_after="1")
    fake.fail("generation", "drop")
    fake.fail("generation", 524)
    fake.fail("analytics", 529)
    res = cli("fetch", *WINDOW, "--concurrency", "2")
    assert res.exit_code == 0, res.stderr
    assert len(lines(res.stdout)) == 60 and "6 retries" in res.stderr


def test_old_404_is_counted_and_exits_9(cli: Cli, fake: FakeOpenRouter, tmp_path: Path) -> None:
    missing = f"gen-{int(START.timestamp())}-thisonewasneverthere"
    ids = tmp_path / "ids.txt"
    ids.write_text(f"{GENS[0]['id']}\n{missing}\n")
    res = cli("fetch", "--source", f"ids:{ids}", "-o", str(tmp_path / "out.jsonl"))
    assert res.exit_code == 9, res.stderr
    assert f"could not fetch {missing}: not found (404)" in res.stderr
    assert "1 generation(s) could not be fetched" in res.stderr
    assert [r["id"] for r in lines((tmp_path / "out.jsonl").read_bytes())] == [GENS[0]["id"]]


def test_late_404_for_a_recent_generation_is_retried(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    recent = make_generations(3, datetime.now(UTC) - timedelta(minutes=2), timedelta(seconds=10), first=500)
    with FakeOpenRouter(recent) as server:
        monkeypatch.setenv("OPENROUTER_MANAGEMENT_KEY", MGMT_KEY)
        monkeypatch.setenv("OPENROUTER_BASE_URL", server.url)
        server.late[recent[1]["id"]] = 4
        res = cli("fetch", "--since", "10m")
        assert len(server.requests("generation", recent[1]["id"])) == 5
    assert res.exit_code == 0, res.stderr
    assert len(lines(res.stdout)) == 3


def test_persistent_5xx_exits_6_keeping_what_was_fetched(
    cli: Cli, fake: FakeOpenRouter, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    fake.fail("generation", "ok", times=5)
    fake.fail("generation", 502, times=100)
    res = cli("fetch", *WINDOW, "-o", str(out), "--concurrency", "1")
    assert res.exit_code == 6, res.stderr
    assert "HTTP 502" in res.stderr and "re-run" in res.stderr
    assert len(lines(out.read_bytes())) == 5  # everything fetched before the failure is on disk
    assert "fetched 5 generations" in res.stderr


def test_analytics_unreachable_exits_6(cli: Cli, fake: FakeOpenRouter) -> None:
    fake.fail("analytics", "drop", times=100)
    res = cli("fetch", *WINDOW)
    assert res.exit_code == 6 and "connection dropped" in res.stderr


def test_no_key_exits_3(cli: Cli, fake: FakeOpenRouter, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENROUTER_MANAGEMENT_KEY")
    res = cli("fetch", *WINDOW)
    assert res.exit_code == 3 and "--management-key" in res.stderr and "csv:" in res.stderr
    by_id = cli("fetch", "--source", "ids:-", input=f"{GENS[0]['id']}\n")
    assert by_id.exit_code == 3 and "--openrouter-key" in by_id.stderr
    assert fake.requests("analytics") == [] and fake.requests("generation") == []


def test_api_key_instead_of_management_key_exits_4(
    cli: Cli, fake: FakeOpenRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENROUTER_MANAGEMENT_KEY")
    monkeypatch.setenv("OPENROUTER_API_KEY", API_KEY)
    res = cli("fetch", *WINDOW, "--verbose")
    assert res.exit_code == 4
    assert "Only management keys can perform this operation" in res.stderr
    assert "--source csv:" in res.stderr and "--source ids:" in res.stderr
    assert_no_secret(res)


def test_refused_key_exits_4_and_is_never_printed(cli: Cli, fake: FakeOpenRouter) -> None:
    bad = "sk-or-v1-wrongwrongwrongwrongwrong0123456789"
    res = cli("fetch", *WINDOW, "--management-key", bad, "--verbose")
    assert res.exit_code == 4 and "401" in res.stderr and "management key" in res.stderr
    assert bad not in res.stdout + res.stderr  # the fake echoes the key in its error message


def test_insufficient_credits_exits_4(cli: Cli, fake: FakeOpenRouter) -> None:
    fake.credits_exhausted = True
    res = cli("fetch", *WINDOW)
    assert (
        res.exit_code == 4 and "insufficient credits" in res.stderr and "openrouter.ai/credits" in res.stderr
    )


def test_wrong_url_exits_5(cli: Cli, fake: FakeOpenRouter) -> None:
    res = cli("fetch", *WINDOW, "--openrouter-url", fake.url + "/wrong")
    assert res.exit_code == 5 and "--openrouter-url" in res.stderr


def test_csv_source_window_filter_and_malformed_rows(cli: Cli, tmp_path: Path) -> None:
    csv_path = tmp_path / "export.csv"
    csv_path.write_text(
        "generation_id,created_at,cost_total,tokens_prompt,tokens_completion,model_permaslug,api_key_name\n"
        "gen-a,2026-11-20 10:00:00.000,0.001,10,5,openai/gpt-5,prod\n"
        "gen-b,2026-11-21 10:00:00.000,0.002,10,5,openai/gpt-5,prod\n"
        ",2026-11-20 11:00:00.000,0.003,10,5,openai/gpt-5,prod\n"
        "gen-a,2026-11-20 10:00:00.000,0.001,10,5,openai/gpt-5,prod\n"
    )
    res = cli("fetch", "--source", f"csv:{csv_path}", "--from", "2026-11-20", "--to", "2026-11-21")
    assert res.exit_code == 9
    assert [r["id"] for r in lines(res.stdout)] == ["gen-a"]
    assert f"{csv_path}:4:" in res.stderr and "1 outside the window" in res.stderr
    before = cli("fetch", "--source", f"csv:{csv_path}", "--to", "2026-11-21")
    assert [r["id"] for r in lines(before.stdout)] == ["gen-a"] and before.exit_code == 9
    strict = cli("fetch", "--source", f"csv:{csv_path}", "--strict")
    assert strict.exit_code == 2 and f"{csv_path}:4:" in strict.stderr


def test_jsonl_round_trip(cli: Cli, fake: FakeOpenRouter, tmp_path: Path) -> None:
    out = tmp_path / "history.jsonl"
    assert cli("fetch", *WINDOW, "-o", str(out)).exit_code == 0
    res = cli("fetch", "--source", f"jsonl:{out}")
    assert res.exit_code == 0
    assert sorted(lines(res.stdout), key=lambda r: r["id"]) == sorted(
        lines(out.read_bytes()), key=lambda r: r["id"]
    )
    same = cli("fetch", "--source", f"jsonl:{out}", "-o", str(out))
    assert same.exit_code == 2 and "also the source" in same.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--concurrency", "0"], "--concurrency 0"),
        (["--detail", "summary", "--source", "ids:-"], "--detail summary"),
        (["--detail", "summary", "--with-content"], "--with-content"),
        (["--since", "1h", "--from", "2026-11-01"], "--since and --from"),
        (["--source", "bogus:x"], "--source"),
    ],
)
def test_usage_errors_exit_2(cli: Cli, fake: FakeOpenRouter, args: list[str], message: str) -> None:
    res = cli("fetch", *args)
    assert res.exit_code == 2 and message in res.stderr
