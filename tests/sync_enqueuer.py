"""Run in child processes by test_sync_enqueue_concurrency: enqueue one task at a time from
several threads through one `SyncTaskQueue`, and report what each enqueue returned."""

from __future__ import annotations

import threading
from typing import Any

from sitq import SyncTaskQueue

#: Every so many enqueues a thread uses one of the dedupe keys every process shares.
DEDUPE_EVERY = 10
DEDUPE_KEYS = 3


def work(n: int) -> int:
    """The task stored (never run here)."""
    return n


def enqueue_from_threads(
    url: str, process: int, threads: int, per_thread: int, start: Any, results: Any
) -> None:
    """Wait at ``start`` (a barrier) with the other processes, enqueue ``per_thread`` tasks
    from each of ``threads`` threads, put ``(process, [(id, dedupe_key), ...], errors)`` on
    ``results``."""
    queue = SyncTaskQueue(url)
    returned: list[tuple[str, str | None]] = []
    errors: list[str] = []

    def one_by_one(thread: int) -> None:
        try:
            for i in range(per_thread):
                key = f"key-{i % DEDUPE_KEYS}" if i % DEDUPE_EVERY == 0 else None
                task_id = queue.enqueue(work, process * 1_000_000 + thread * 1000 + i,
                                        dedupe_key=key)  # fmt: skip
                returned.append((task_id, key))
        except BaseException as exc:  # reported to the test
            errors.append(repr(exc))

    try:
        start.wait(60)
        workers = [threading.Thread(target=one_by_one, args=(t,)) for t in range(threads)]
        for t in workers:
            t.start()
        for t in workers:
            t.join(90)
    finally:
        queue.close()
    results.put((process, returned, errors))
