"""Huey 3, the peer to beat: SqliteHuey (defaults, and synchronous=NORMAL) and MemoryHuey.

Enqueue: N calls of a ``@huey.task`` one after the other (Huey has no bulk enqueue).
Processing: N tasks enqueued first, then one consumer worker (a thread) drains them; the time
runs from starting the consumer to the N-th ``complete`` signal. SqliteHuey's consumer runs in
its own process like ``huey_consumer``; MemoryHuey's can only run in the bench process.
"""

from __future__ import annotations

import os
import threading
import time

from harness import IDLE_GAP, Sample
from huey.signals import SIGNAL_COMPLETE
from huey_app import make_huey
from procs import run_child, start_child


def enqueue(folder: str, kind: str, n: int) -> Sample:
    """Enqueue ``n`` no-op tasks one by one."""
    _huey, noop, _ = make_huey(kind, os.path.join(folder, "huey.db"))
    noop()  # open the connection outside the timing
    began = time.perf_counter()
    for _ in range(n):
        noop()
    took = time.perf_counter() - began
    return Sample(n, took)


def drain(huey: object, n: int, timeout: float) -> float:
    """Run one consumer worker thread in this process until ``n`` tasks completed; seconds."""
    done = threading.Event()
    count = 0

    @huey.signal(SIGNAL_COMPLETE)  # type: ignore[attr-defined]
    def on_complete(signal: str, task: object, *args: object) -> None:
        nonlocal count
        count += 1
        if count >= n:
            done.set()

    consumer = huey.create_consumer(workers=1, periodic=False)  # type: ignore[attr-defined]
    began = time.perf_counter()
    for _, worker in consumer.worker_threads:  # no signal handlers: we are not its main loop
        worker.start()
    finished = done.wait(timeout)
    took = time.perf_counter() - began
    consumer.stop_flag.set()  # not consumer.stop(): its scheduler was never started
    for _, worker in consumer.worker_threads:
        worker.join(30)
    if not finished:
        raise TimeoutError(f"huey completed {count} of {n} tasks in {timeout} s")
    return took


def process_memory(folder: str, n: int) -> Sample:
    """MemoryHuey, consumer thread in this process."""
    huey, noop, _ = make_huey("memory")
    for _ in range(n):
        noop()
    return Sample(n, drain(huey, n, timeout=120))


def process_sqlite(folder: str, kind: str, n: int) -> Sample:
    """SqliteHuey, consumer in a separate process."""
    path = os.path.join(folder, "huey.db")
    huey, noop, _ = make_huey(kind, path)
    for _ in range(n):
        noop()
    huey.storage.close()
    report = run_child(["huey-drain", kind, path, str(n)], timeout=300)
    return Sample(int(report["ops"]), float(report["seconds"]))


def latency_sqlite(folder: str, kind: str, samples: int) -> Sample:
    """Idle pickup and result latency, SqliteHuey consumer (defaults) in another process."""
    path = os.path.join(folder, "huey.db")
    _huey, _, stamp = make_huey(kind, path)
    with start_child(["huey-serve", kind, path]):
        sample = Sample()
        for _ in range(samples):
            time.sleep(IDLE_GAP)
            began = time.time()
            result = stamp()
            started = result.get(blocking=True, timeout=30)
            sample.latencies.append(time.time() - began)
            sample.pickups.append(started - began)
    return sample
