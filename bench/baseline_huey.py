"""Huey 3, the peer to beat: SqliteHuey (defaults, and synchronous=NORMAL) and MemoryHuey.

Enqueue: N calls of a ``@huey.task`` one after the other (Huey has no bulk enqueue).
Processing: N tasks enqueued first, then one consumer worker (a thread) drains them; the time
runs from starting the consumer to the N-th ``complete`` signal. SqliteHuey's consumer runs in
its own process like ``huey_consumer``; MemoryHuey's can only run in the bench process.
Process pool: ``huey_consumer -k process -w 2`` on ~1 ms CPU tasks, until N results are stored
(timed once the first few are: the pool started and warm).
"""

from __future__ import annotations

import os
import threading
import time

from harness import IDLE_GAP, Clock, Sample
from huey.signals import SIGNAL_COMPLETE
from huey_app import make_huey
from procs import idle_cpu_percent, run_child, start_child


def enqueue(folder: str, kind: str, n: int) -> Sample:
    """Enqueue ``n`` no-op tasks one by one."""
    noop = make_huey(kind, os.path.join(folder, "huey.db")).noop
    noop()  # open the connection outside the timing
    clock = Clock()
    for _ in range(n):
        noop()
    return clock.sample(n)


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
    app = make_huey("memory")
    for _ in range(n):
        app.noop()
    cpu = time.process_time()
    seconds = drain(app.huey, n, timeout=120)
    return Sample(n, seconds, cpu_seconds=time.process_time() - cpu)


def _filled(folder: str, kind: str, n: int, *, cpu: bool = False) -> str:
    """A SqliteHuey file with ``n`` tasks (no-ops, or `cpu` ones) waiting; its path."""
    path = os.path.join(folder, "huey.db")
    app = make_huey(kind, path)
    task = app.cpu if cpu else app.noop
    for _ in range(n):
        task()
    app.huey.storage.close()
    return path


def process_sqlite(folder: str, kind: str, n: int) -> Sample:
    """SqliteHuey, consumer in a separate process."""
    report = run_child(["huey-drain", kind, _filled(folder, kind, n), str(n)], timeout=300)
    return Sample(int(report["ops"]), float(report["seconds"]), cpu_seconds=report["cpu"])


def process_pool(folder: str, kind: str, n: int, workers: int, warm: int) -> Sample:
    """``warm`` + n ~1 ms CPU tasks, SqliteHuey consumer with ``workers`` worker processes;
    the n after the first ``warm`` results are timed."""
    path = _filled(folder, kind, warm + n, cpu=True)
    command = ["huey-pool", kind, path, str(warm + n), str(workers), str(warm)]
    report = run_child(command, timeout=300)
    return Sample(int(report["ops"]), float(report["seconds"]), cpu_seconds=report["cpu"])


def latency_sqlite(folder: str, kind: str, samples: int, idle_seconds: float) -> Sample:
    """Idle pickup and result latency, SqliteHuey consumer (defaults) in another process."""
    path = os.path.join(folder, "huey.db")
    stamp = make_huey(kind, path).stamp
    with start_child(["huey-serve", kind, path]) as proc:
        sample = Sample()
        for _ in range(samples):
            time.sleep(IDLE_GAP)
            began = time.time()
            result = stamp()
            started = result.get(blocking=True, timeout=30)
            sample.latencies.append(time.time() - began)
            sample.pickups.append(started - began)
        sample.idle_cpu_percent = idle_cpu_percent(proc.pid, idle_seconds)
    return sample
