"""The recorded dataset (tests/data/tempo/dataset.json, the ground truth of the fixture runs), moved in
time so that its push happened a chosen while ago, plus the exact push batch that goes with it."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tests.fake_tempo import FakeTempo

DATA = Path(__file__).resolve().parent / "data" / "tempo"
NS = 1_000_000_000
HOUR = 3600 * NS


@dataclass(frozen=True)
class Generation:
    """One generation of the ground truth, times already shifted."""

    trace_id: str
    gen_id: str
    start_ns: int
    end_ns: int
    model: str
    provider: str
    cost: float
    input_tokens: int
    output_tokens: int
    first_token_ms: int | None
    status: str
    environment: str
    feature: str
    user: str
    session: str
    age_class: str

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


@dataclass
class Dataset:
    generations: list[Generation]
    batch: list[dict[str, Any]]  # resourceSpans, times shifted
    push_ns: int
    windows: dict[str, tuple[int, int]]  # unix seconds, shifted

    def where(self, **match: Any) -> list[Generation]:
        return [g for g in self.generations if all(getattr(g, k) == v for k, v in match.items())]


def load(push_ns: int, *, run: str = "default", old_shift_h: float = 0.0) -> Dataset:
    """The run's 60 generations as if pushed at ``push_ns``; old ones moved ``old_shift_h`` further back."""
    data = orjson.loads((DATA / "dataset.json").read_bytes())["runs"][run]
    batch = orjson.loads((DATA / data["push_batch_file"]).read_bytes())["resourceSpans"]
    delta = push_ns - int(data["push_sent_at_unix"] * NS)
    extra = int(old_shift_h * HOUR)
    by_trace: dict[str, int] = {}
    generations = []
    for g in data["generations"]:
        shift = delta - (extra if g["age_class"] == "old" else 0)
        by_trace[g["trace_id"]] = shift
        generations.append(
            Generation(
                trace_id=g["trace_id"],
                gen_id=g["gen_id"],
                start_ns=g["start_unix_nano"] + shift,
                end_ns=g["end_unix_nano"] + shift,
                model=g["model"],
                provider=g["provider"],
                cost=g["cost"],
                input_tokens=g["input_tokens"],
                output_tokens=g["output_tokens"],
                first_token_ms=g["first_token_ms"],
                status=g["status"],
                environment=g["environment"],
                feature=g["feature"],
                user=g["user_id"],
                session=g["session_id"],
                age_class=g["age_class"],
            )
        )
    batch = copy.deepcopy(batch)
    for rs in batch:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                shift = by_trace[span["traceId"]]
                span["startTimeUnixNano"] = str(int(span["startTimeUnixNano"]) + shift)
                span["endTimeUnixNano"] = str(int(span["endTimeUnixNano"]) + shift)
    windows = {
        name: (int(bounds[0] + delta / NS), int(bounds[1] + delta / NS))
        for name, bounds in data["windows_unix_seconds"].items()
        if isinstance(bounds, list)
    }
    return Dataset(generations, batch, push_ns, windows)


@contextmanager
def loaded_tempo(**options: Any) -> Iterator[tuple[FakeTempo, Dataset]]:
    """A running FakeTempo (``options`` go to it) holding the default run, pushed 20 minutes ago."""
    with FakeTempo(**options) as server:
        dataset = load(time.time_ns() - 20 * 60 * NS)
        server.push(dataset.batch, ingested_ns=dataset.push_ns)
        yield server, dataset


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), written out independently."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
