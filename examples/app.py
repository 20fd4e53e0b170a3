"""A small sitq application: a queue and three tasks.

Run a worker on it, from the repository root::

    sitq worker examples.app:queue

and enqueue work from another terminal (another process)::

    python -m examples.app 10

Both sides use the same SQLite file, ``sitq.db`` in the current folder (or whatever
``SITQ_BACKEND_URL`` names).
"""

from __future__ import annotations

import asyncio
import hashlib
import sys

from sitq import SyncTaskQueue

#: The application's queue: SQLite in ./sitq.db unless SITQ_BACKEND_URL says otherwise.
queue = SyncTaskQueue()


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


async def fingerprint(text: str) -> str:
    """The SHA-256 of ``text`` (a coroutine: it runs on the worker's event loop)."""
    await asyncio.sleep(0)
    return hashlib.sha256(text.encode()).hexdigest()


def slow(seconds: float) -> str:
    """Sleep, then say so: a task long enough to watch a graceful shutdown."""
    import time

    time.sleep(seconds)
    return f"slept {seconds} s"


def main(count: int) -> None:
    """Enqueue ``count`` additions and one fingerprint, then wait for and print the results."""
    from examples.app import add, fingerprint  # by import path, not as __main__.add

    ids = [queue.enqueue(add, i, i) for i in range(count)]
    ids.append(queue.enqueue(fingerprint, "sitq"))
    print(f"enqueued {len(ids)} tasks; waiting for a worker (sitq worker examples.app:queue)")
    for task_id in ids:
        result = queue.get_result(task_id, timeout=60)
        print(task_id, result.status.value, result.value)
    queue.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
