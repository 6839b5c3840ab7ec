"""File sources: each yields records (or ids) as a stream, in constant memory.

``--source csv:PATH`` (dashboard per-generation CSV export), ``--source jsonl:PATH`` (orbcast's own),
``--source ids:PATH`` (one generation id per line, ``-`` for stdin). The OpenRouter API source lives in
:mod:`orbcast.openrouter` and :mod:`orbcast.fetching`. A malformed line is reported with its line number:
fatal under ``--strict`` (exit 2), otherwise skipped and counted in :class:`Problems` (the run then ends
with exit 9). :class:`IdSet` remembers ids compactly (dedup, resume) and :func:`read_done_ids` reads the
ids an earlier run already wrote to an output file.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import heapq
import os
import stat
import sys
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson

from orbcast.errors import MalformedInput, UsageError
from orbcast.records import GenerationRecord, MalformedRecord

KINDS = ("api", "csv", "jsonl", "ids")


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # api | csv | jsonl | ids
    path: str | None = None

    @classmethod
    def parse(cls, text: str | None) -> SourceSpec:
        """``api`` (default), ``csv:PATH``, ``jsonl:PATH``, ``ids:PATH`` or ``ids:-``."""
        if not text or text == "api":
            return cls("api")
        kind, sep, path = text.partition(":")
        if not sep or kind not in KINDS or kind == "api" or not path:
            raise UsageError(
                f"--source {text!r}: expected api, csv:PATH, jsonl:PATH or ids:PATH (ids:- for stdin)"
            )
        if path != "-" and not Path(path).exists():
            raise UsageError(f"--source {text!r}: no such file {path}")
        return cls(kind, path)


@dataclass
class Problems:
    """Malformed input seen during a run. ``strict`` turns the first one into an exit-2 error."""

    strict: bool = False
    items: list[tuple[str, int, str]] = field(default_factory=list)
    limit: int = 1000  # remembered in detail; beyond it only counted
    count: int = 0

    def report(self, path: str, line: int, reason: str) -> None:
        if self.strict:
            raise MalformedInput(path, line, reason)
        self.count += 1
        if len(self.items) < self.limit:
            self.items.append((path, line, reason))


@contextmanager
def open_text(path: str) -> Iterator[IO[str]]:
    if path == "-":
        yield sys.stdin
        return
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            yield fh
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not a file") from None


def iter_jsonl(path: str, problems: Problems) -> Iterator[GenerationRecord]:
    with open_text(path) as fh:
        for number, line in enumerate(fh, 1):
            if not line or line.isspace():  # = not line.strip(), without copying the line
                continue
            try:
                yield GenerationRecord.from_jsonl_line(line)
            except MalformedRecord as exc:
                problems.report(path, number, str(exc))


def iter_csv(path: str, problems: Problems) -> Iterator[GenerationRecord]:
    with open_text(path) as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "generation_id" not in reader.fieldnames:
            raise UsageError(
                f"{path}: not a per-generation CSV export (no generation_id column in the header)",
                hint="export it from the OpenRouter dashboard's activity page (per generation)",
            )
        try:
            for row in reader:
                number = reader.line_num
                if None in row:
                    problems.report(path, number, "more fields than the header has")
                    continue
                try:
                    yield GenerationRecord.from_csv_row(row)
                except MalformedRecord as exc:
                    problems.report(path, number, str(exc))
        except csv.Error as exc:
            problems.report(path, reader.line_num, f"unreadable CSV ({exc})")


def iter_ids(path: str, problems: Problems) -> Iterator[str]:
    """Generation ids, one per line; blank lines and ``#`` comments are skipped."""
    with open_text(path) as fh:
        for number, line in enumerate(fh, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            if any(ch.isspace() for ch in text) or len(text) > 256:
                problems.report(path, number, f"not a generation id: {text[:60]!r}")
                continue
            yield text


def sniff_kind(path: str) -> str:
    """Guess a file's kind from its first non-blank line: csv, jsonl, otlp or ids."""
    with open_text(path) as fh:
        chunk = fh.read(8192)
    head = chunk.strip()
    if not head:
        raise UsageError(f"{path} is empty")
    if head.startswith("{"):
        first = head.split("\n", 1)[0]
        if '"resourceSpans"' in first or (first == "{" and '"resourceSpans"' in head):
            return "otlp"
        return "jsonl"
    head = head.split("\n", 1)[0]
    if head.startswith("generation_id,") or ",generation_id," in f",{head},":
        return "csv"
    return "ids"


def count_lines(path: str | None) -> int | None:
    """Lines in a regular file (for a progress total), ``None`` for stdin, pipes and unreadable paths."""
    if not path or path == "-":
        return None
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        total = 0
        buffer = bytearray(1 << 20)  # one buffer reused: no new 1 MiB object per read
        with open(path, "rb", buffering=0) as fh:
            while size := fh.readinto(buffer):
                total += buffer.count(b"\n", 0, size)
        return total
    except OSError:
        return None


class IdSet:
    """A set of generation ids kept as 64-bit hashes: about 8 bytes an id (a million ids in ~8 MB).

    Recent additions sit in a small Python set that is merged into one sorted array when it grows, so
    memory grows by 8 bytes per distinct id, not by the id strings. Two different ids colliding is a
    1-in-10^12 event for a million ids.
    """

    def __init__(self) -> None:
        self._sorted = array("Q")
        self._recent: set[int] = set()

    @staticmethod
    def _hash(gen_id: str) -> int:
        return int.from_bytes(hashlib.blake2b(gen_id.encode(), digest_size=8).digest(), "little")

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)

    def _has(self, value: int) -> bool:
        if value in self._recent:
            return True
        index = bisect.bisect_left(self._sorted, value)
        return index < len(self._sorted) and self._sorted[index] == value

    def __contains__(self, gen_id: object) -> bool:
        return isinstance(gen_id, str) and self._has(self._hash(gen_id))

    def add(self, gen_id: str) -> bool:
        """Add ``gen_id``; ``True`` when it was not there yet."""
        value = int.from_bytes(hashlib.blake2b(gen_id.encode(), digest_size=8).digest(), "little")  # _hash
        if value in self._recent or (self._sorted and self._has(value)):
            return False
        self._recent.add(value)
        if len(self._recent) >= max(65536, len(self._sorted) // 4):
            self._sorted = array("Q", heapq.merge(self._sorted, sorted(self._recent)))
            self._recent = set()
        return True


def read_done_ids(path: str) -> tuple[IdSet, int, int]:
    """Ids already in an orbcast JSONL output file: (ids, lines read, unreadable lines).

    Only complete, parsable lines count: a line torn by a kill is unreadable, so its generation is
    fetched again rather than lost.
    """
    ids = IdSet()
    lines = bad = 0
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return ids, 0, 0
    except OSError as exc:
        raise UsageError(f"cannot read output file {path} to resume: {exc.strerror}") from None
    with fh:
        for line in fh:
            if not line.strip():
                continue
            lines += 1
            try:
                data = orjson.loads(line)
            except orjson.JSONDecodeError:
                bad += 1
                continue
            gen_id = data.get("id") if isinstance(data, dict) else None
            if isinstance(gen_id, str) and gen_id and line.endswith(b"\n"):
                ids.add(gen_id)
            else:
                bad += 1
    return ids, lines, bad
