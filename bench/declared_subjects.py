"""Declared tasks beside ``enqueue(func)``: the same no-op, the same backend, the same loop.

Each subject here is the twin of one in `sitq_subjects` with the call made through a declared
task (`workloads.async_task`, `workloads.sync_task`): ``await task.enqueue()`` for
``await queue.enqueue(f)``, ``task.enqueue()`` for ``SyncTaskQueue.enqueue(f)``, and a worker
draining tasks stored by a declared task (the worker finds the function in its queue's
registry) for one draining ``enqueue_many([f] * n)``. `run.py` runs each twin right after its
``enqueue(func)`` subject in every round and prints the ratio between them.
"""

from __future__ import annotations

import asyncio

import workloads
from harness import Clock, Sample
from sitq_subjects import ENQUEUE_BATCH, check_done, make_backend

from sitq import SyncTaskQueue, TaskQueue, Worker


def enqueue_single(folder: str, kind: str, n: int) -> Sample:
    """``await workloads.async_task.enqueue()`` n times, one after the other."""

    async def main() -> Sample:
        async with TaskQueue(make_backend(kind, folder)) as queue:
            queue.register(workloads.declared)
            task = workloads.async_task
            await task.enqueue()
            clock = Clock()
            for _ in range(n):
                await task.enqueue()
            return clock.sample(n)

    return asyncio.run(main())


def enqueue_sync(folder: str, kind: str, n: int) -> Sample:
    """``workloads.sync_task.enqueue()`` n times from plain code."""
    queue = SyncTaskQueue(make_backend(kind, folder))
    try:
        queue.register(workloads.sync_declared)
        task = workloads.sync_task
        task.enqueue()
        clock = Clock()
        for _ in range(n):
            task.enqueue()
        return clock.sample(n)
    finally:
        queue.close()


def process_inline(folder: str, kind: str, n: int) -> Sample:
    """n calls of the declared async no-op stored first (in batches, as `sitq_subjects`
    fills), then one `Worker` (defaults) in this process runs them all."""

    async def main() -> Sample:
        async with TaskQueue(make_backend(kind, folder)) as queue:
            queue.register(workloads.declared)
            for start in range(0, n, ENQUEUE_BATCH):
                await queue.enqueue_many([workloads.async_task] * min(ENQUEUE_BATCH, n - start))
            worker = Worker(queue, max_tasks=n)
            clock = Clock()
            await worker.start()
            sample = clock.sample(n)
            await check_done(queue, n)
            return sample

    return asyncio.run(main())
