"""Fetching generations by id with a pool of worker threads, in bounded memory.

One producer thread reads ids (enumeration, id files) into a queue of a few times the concurrency;
``workers`` threads fetch each with ``GET /generation`` (and ``/generation/content`` when asked); the
consuming thread gets records as they complete. Every queue is bounded, so however many ids the source
holds, only a few dozen are in flight. ``stop`` (set on Ctrl-C, a fatal error, or when the consumer
stops early) ends every thread promptly: waits and retries watch it, and the threads are daemons.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from orbcast.openrouter import GenerationUnavailable, OpenRouterClient
from orbcast.pacing import Cancelled
from orbcast.records import GenerationRecord, MalformedRecord

Item = tuple[str, str | None, float | None]  # (generation id, api key name, latest creation time)
_END = object()
_DONE = object()


def fetch_concurrently(
    client: OpenRouterClient,
    items: Iterator[Item],
    *,
    workers: int,
    content: bool,
    admit: Callable[[str], bool],
    stop: threading.Event,
) -> Iterator[GenerationRecord | GenerationUnavailable]:
    """Records, or the per-record failure, for every item ``admit`` lets through, as they complete.

    Run-ending errors (auth, service unavailable, a malformed id under ``--strict``) raised by the
    producer or a worker are re-raised here, in the consuming thread.
    """
    inbox: queue.Queue[Any] = queue.Queue(maxsize=workers * 4)
    outbox: queue.Queue[Any] = queue.Queue(maxsize=workers * 4)

    def put(target: queue.Queue[Any], item: Any) -> bool:
        while not stop.is_set():
            try:
                target.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                if admit(item[0]) and not put(inbox, item):
                    return
        except Cancelled:
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            put(outbox, ("fatal", exc))
            return
        for _ in range(workers):
            put(inbox, _END)

    def work() -> None:
        while True:
            try:
                item = inbox.get(timeout=0.1)
            except queue.Empty:
                if stop.is_set():
                    return
                continue
            if item is _END:
                put(outbox, _DONE)
                return
            gen_id, label, latest = item
            result: GenerationRecord | GenerationUnavailable
            try:
                result = GenerationRecord.from_api(client.generation(gen_id, latest))
                if label and not result.api_key_name:
                    result.api_key_name = label
                if content:
                    result.content = client.content(gen_id)
            except GenerationUnavailable as exc:
                result = exc
            except MalformedRecord as exc:
                result = GenerationUnavailable(gen_id, f"unreadable /generation answer ({exc})")
            except Cancelled:
                return
            except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
                put(outbox, ("fatal", exc))
                return
            if not put(outbox, ("done", result)):
                return

    threads = [threading.Thread(target=produce, name="orbcast-ids", daemon=True)]
    threads += [threading.Thread(target=work, name=f"orbcast-fetch-{i}", daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    finished = 0
    try:
        while finished < workers:
            try:
                message = outbox.get(timeout=0.2)
            except queue.Empty:
                if not any(t.is_alive() for t in threads) and outbox.empty():
                    break
                continue
            if message is _DONE:
                finished += 1
            elif message[0] == "done":
                yield message[1]
            else:
                raise message[1]
    finally:
        stop.set()
        deadline = time.monotonic() + 1.0
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
