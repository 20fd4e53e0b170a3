"""sitq itself: enqueue rates, processing rates with one worker, and idle latency.

Backends: ``sqlite`` is `SQLiteBackend` on a file with its defaults (WAL, synchronous=NORMAL);
``memory`` is `MemoryBackend`. Tasks are the no-ops of `workloads`, encoded with the default
serializer (cloudpickle), so each task pays for a real encode and decode.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

import workloads
from harness import IDLE_GAP, Clock, Sample, from_template
from procs import idle_cpu_percent, run_child, start_child

from sitq import SyncTaskQueue, TaskQueue, TaskStatus, Worker
from sitq.backend import Backend

ENQUEUE_BATCH = 1000  # items per enqueue_many call
CONCURRENT = 100  # enqueues in flight at once in the gather subject


def make_backend(kind: str, folder: str) -> Backend:
    """A fresh backend of ``kind`` (``sqlite`` or ``memory``)."""
    if kind == "sqlite":
        from sitq_sqlite import SQLiteBackend

        return SQLiteBackend(db_path(folder))
    if kind == "memory":
        from sitq_memory import MemoryBackend

        return MemoryBackend()
    raise ValueError(f"unknown backend kind {kind!r}")


def db_path(folder: str) -> str:
    """The database file of a subject."""
    return os.path.join(folder, "sitq.db")


def function(name: str) -> Callable[..., Any]:
    """``async`` → `workloads.async_noop`, ``sync`` → `workloads.sync_noop`."""
    return {"async": workloads.async_noop, "sync": workloads.sync_noop}[name]


# -- enqueue -------------------------------------------------------------------------------------


def enqueue_single(folder: str, kind: str, n: int) -> Sample:
    """``await queue.enqueue(f)`` n times, one after the other."""

    async def main() -> Sample:
        async with TaskQueue(make_backend(kind, folder)) as queue:
            await queue.enqueue(workloads.async_noop)
            clock = Clock()
            for _ in range(n):
                await queue.enqueue(workloads.async_noop)
            return clock.sample(n)

    return asyncio.run(main())


def enqueue_concurrent(folder: str, kind: str, n: int) -> Sample:
    """``enqueue`` from ``CONCURRENT`` coroutines at once (what a busy web app does)."""

    async def main() -> Sample:
        async with TaskQueue(make_backend(kind, folder)) as queue:
            await queue.enqueue(workloads.async_noop)
            clock = Clock()
            for _ in range(0, n, CONCURRENT):
                await asyncio.gather(
                    *(queue.enqueue(workloads.async_noop) for _ in range(CONCURRENT))
                )
            return clock.sample(n - n % CONCURRENT or n)

    return asyncio.run(main())


def enqueue_many(folder: str, kind: str, n: int) -> Sample:
    """``await queue.enqueue_many([...])`` in batches of ``ENQUEUE_BATCH``."""

    async def main() -> Sample:
        async with TaskQueue(make_backend(kind, folder)) as queue:
            await queue.enqueue(workloads.async_noop)
            batch = [workloads.async_noop] * ENQUEUE_BATCH
            clock = Clock()
            done = 0
            while done < n:
                done += len(await queue.enqueue_many(batch))
            return clock.sample(done)

    return asyncio.run(main())


def enqueue_sync(folder: str, kind: str, n: int) -> Sample:
    """``SyncTaskQueue.enqueue`` n times from plain code (one hop to its loop thread each)."""
    queue = SyncTaskQueue(make_backend(kind, folder))
    try:
        queue.enqueue(workloads.sync_noop)
        clock = Clock()
        for _ in range(n):
            queue.enqueue(workloads.sync_noop)
        return clock.sample(n)
    finally:
        queue.close()


# -- processing ----------------------------------------------------------------------------------


async def _fill(queue: TaskQueue, fn: Callable[..., Any], n: int) -> None:
    for start in range(0, n, ENQUEUE_BATCH):
        await queue.enqueue_many([fn] * min(ENQUEUE_BATCH, n - start))


async def check_done(queue: TaskQueue, n: int) -> None:
    counts = await queue.counts()
    if counts[TaskStatus.SUCCEEDED] != n:
        raise AssertionError(f"expected {n} succeeded tasks, found {dict(counts)}")


def process_inline(folder: str, kind: str, fn: str, n: int) -> Sample:
    """n tasks enqueued first, then one `Worker` (defaults) in this process runs them all."""

    async def main() -> Sample:
        async with TaskQueue(make_backend(kind, folder)) as queue:
            await _fill(queue, function(fn), n)
            worker = Worker(queue, max_tasks=n)
            clock = Clock()
            await worker.start()
            sample = clock.sample(n)
            await check_done(queue, n)
            return sample

    return asyncio.run(main())


def process_backend(folder: str, kind: str, n: int, batch: int = 100) -> Sample:
    """No worker: the backend's own claim + finish loop, ``batch`` tasks per call (its ceiling)."""
    from sitq.backend import Outcome

    async def main() -> Sample:
        async with TaskQueue(make_backend(kind, folder)) as queue:
            await _fill(queue, workloads.async_noop, n)
            backend = queue.backend
            result = queue.codec.encode_result(None)
            clock = Clock()
            while records := await backend.claim(worker_id="w", limit=batch, lease_seconds=30):
                outcomes = [Outcome.succeeded(r.id, r.lease_token or "", result) for r in records]
                await backend.finish(outcomes)
            sample = clock.sample(n)
            await check_done(queue, n)
            return sample

    return asyncio.run(main())


def process_child(folder: str, fn: str, n: int) -> Sample:
    """n tasks enqueued first, then one worker process (defaults) on the same file runs them."""
    path = db_path(folder)

    async def fill() -> None:
        async with TaskQueue(make_backend("sqlite", folder)) as queue:
            await _fill(queue, function(fn), n)

    async def check() -> None:
        async with TaskQueue(make_backend("sqlite", folder)) as queue:
            await check_done(queue, n)

    asyncio.run(fill())
    report = run_child(["sitq-drain", path, str(n)], timeout=300)
    asyncio.run(check())
    return Sample(int(report["ops"]), float(report["seconds"]), cpu_seconds=report["cpu"])


def process_pool(folder: str, n: int, workers: int, warm: int) -> Sample:
    """``warm`` + n ~1 ms CPU tasks (`workloads.cpu_1ms`) enqueued first, then a worker process
    with ``worker_type="process"`` and ``max_workers=workers`` runs them; the n after the pool
    is warm are timed, with the CPU of its whole process tree."""
    path = db_path(folder)

    async def fill() -> None:
        async with TaskQueue(make_backend("sqlite", folder)) as queue:
            await _fill(queue, workloads.cpu_1ms, warm + n)

    asyncio.run(fill())
    command = ["sitq-drain", path, str(warm + n), "process", str(workers), str(warm)]
    report = run_child(command, timeout=300)
    return Sample(int(report["ops"]), float(report["seconds"]), cpu_seconds=report["cpu"])


def process_backlog(folder: str, depth: int, n: int) -> Sample:
    """``depth`` no-op tasks pending, then one `Worker` (defaults) in this process runs ``n``
    of them: how the claim holds up as the backlog deepens (compare ``depth == n``). The
    database is filled once per run and copied for each round."""

    async def fill(where: str) -> None:
        async with TaskQueue(make_backend("sqlite", where)) as queue:
            await _fill(queue, workloads.async_noop, depth)

    from_template(f"sitq-backlog-{depth}", folder, lambda where: asyncio.run(fill(where)))

    async def main() -> Sample:
        async with TaskQueue(make_backend("sqlite", folder)) as queue:
            worker = Worker(queue, max_tasks=n)
            clock = Clock()
            await worker.start()
            sample = clock.sample(n)
            await check_done(queue, n)
            return sample

    return asyncio.run(main())


# -- latency -------------------------------------------------------------------------------------


async def _latency_samples(queue: TaskQueue, samples: int) -> Sample:
    sample = Sample()
    for _ in range(samples):
        await asyncio.sleep(IDLE_GAP)  # let the worker go idle
        began = time.time()
        task_id = await queue.enqueue(workloads.stamp)
        result = await queue.get_result(task_id, timeout=30)
        sample.latencies.append(time.time() - began)
        sample.pickups.append(result.value - began)
    return sample


def latency_inline(folder: str, kind: str, samples: int) -> Sample:
    """Idle worker in this process; enqueue one task, wait for its result; repeat."""

    async def main() -> Sample:
        async with TaskQueue(make_backend(kind, folder)) as queue:
            worker = Worker(queue)
            serving = asyncio.ensure_future(worker.start())
            try:
                await asyncio.sleep(0.05)
                return await _latency_samples(queue, samples)
            finally:
                await worker.stop()
                await serving

    return asyncio.run(main())


def latency_child(folder: str, samples: int, idle_seconds: float, url: str = "") -> Sample:
    """Idle worker (defaults) in another process, on the same SQLite file (or on ``url``);
    then the CPU % the idle worker uses over ``idle_seconds``."""

    async def main() -> Sample:
        async with TaskQueue(url or make_backend("sqlite", folder)) as queue:
            with start_child(["sitq-serve", url or db_path(folder)]) as proc:
                await queue.get_result(await queue.enqueue(workloads.stamp), timeout=60)  # warm
                sample = await _latency_samples(queue, samples)
                sample.idle_cpu_percent = await asyncio.to_thread(
                    idle_cpu_percent, proc.pid, idle_seconds
                )
                return sample

    return asyncio.run(main())
