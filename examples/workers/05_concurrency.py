"""Concurrency settings: a thread worker for I/O-bound tasks, a process worker for CPU-bound
ones.

From the workers guide, section "Worker Configuration / Concurrency Settings". A script that
uses a process worker must keep its work under ``if __name__ == "__main__":``.
"""

import os
import time

import sitq
from sitq import SQLiteBackend, SyncTaskQueue


def fetch(url):
    """I/O-bound: mostly waiting."""
    time.sleep(0.3)
    return f"fetched {url}"


def crunch(n):
    """CPU-bound: pure Python arithmetic."""
    total = 0
    for i in range(n):
        total += i * i
    return os.getpid()


if __name__ == "__main__":
    queue = SyncTaskQueue(SQLiteBackend(":memory:"))

    # Multi-threaded worker
    worker = sitq.Worker(
        queue=queue,
        max_workers=4,  # Use 4 threads
        worker_type="thread",  # Thread-based workers
    )
    urls = [f"https://example.com/{i}" for i in range(4)]
    began = time.monotonic()
    results = worker.process_tasks([queue.enqueue(fetch, url) for url in urls])
    elapsed = time.monotonic() - began
    print(f"Thread worker: {len(results)} fetches in {elapsed:.1f} s (4 x 0.3 s of waiting)")

    # Process-based worker (for CPU-bound tasks)
    worker = sitq.Worker(
        queue=queue,
        max_workers=2,  # Use 2 processes
        worker_type="process",  # Process-based workers
    )
    results = worker.process_tasks([queue.enqueue(crunch, 300_000) for _ in range(4)])
    pids = {r.value for r in results}
    print(f"Process worker: 4 tasks ran in {len(pids)} child processes")
    print(f"Parent process among them: {os.getpid() in pids}")
    queue.close()
