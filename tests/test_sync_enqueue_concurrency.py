"""Many processes, each with several threads, enqueueing one task at a time at once through
`SyncTaskQueue` (the blocking path, `Capability.BLOCKING_ENQUEUE`): every task is stored
exactly once, nothing is lost, and a dedupe key shared by all of them names one task."""

from __future__ import annotations

import asyncio
import multiprocessing
import queue as queues
from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres_support import PG_URL, drop_prefix, new_prefix, require_postgres
from sync_enqueuer import DEDUPE_EVERY, DEDUPE_KEYS, enqueue_from_threads, work

from sitq import SyncTaskQueue, TaskQueue
from sitq.backend import Capability
from sitq.task import TaskStatus

pytestmark = [pytest.mark.needs_sqlite]

PROCESSES = 8
THREADS = 4
PER_THREAD = 30


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.needs_postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store: a SQLite file, or tables under a fresh PostgreSQL prefix."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tasks.db'}"
        return
    asyncio.run(require_postgres())
    prefix = new_prefix("enq")
    yield f"{PG_URL}?table_prefix={prefix}"
    asyncio.run(drop_prefix(prefix))


async def _prepare_and_read(url: str) -> tuple[bool, list[tuple[str, str | None]]]:
    async with TaskQueue(url) as queue:
        supported = queue.backend.supports(Capability.BLOCKING_ENQUEUE)
        records = await queue.backend.list_tasks(limit=None)
        return supported, [(r.id, r.dedupe_key) for r in records]


def test_processes_and_threads_enqueue_at_once(url: str) -> None:
    supported, none = asyncio.run(_prepare_and_read(url))  # the schema exists before the race
    assert supported and none == []
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=enqueue_from_threads, args=(url, p, THREADS, PER_THREAD, start, results))
        for p in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    reports = []
    try:
        for _ in procs:
            reports.append(results.get(timeout=120))
    except queues.Empty:
        pytest.fail(f"only {len(reports)} of {PROCESSES} processes reported within 120 s")
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
    assert all(proc.exitcode == 0 for proc in procs)
    assert [errors for _, _, errors in reports if errors] == []

    returned = [pair for _, pairs, _ in reports for pair in pairs]
    assert len(returned) == PROCESSES * THREADS * PER_THREAD
    plain = [task_id for task_id, key in returned if key is None]
    assert len(set(plain)) == len(plain), "one id returned for two enqueues"
    holders = {key: {task_id for task_id, k in returned if k == key} for key in
               {f"key-{i}" for i in range(DEDUPE_KEYS)}}  # fmt: skip
    assert all(len(ids) == 1 for ids in holders.values()), holders

    _, stored = asyncio.run(_prepare_and_read(url))
    stored_ids = [task_id for task_id, _ in stored]
    assert len(stored_ids) == len(set(stored_ids))
    assert set(stored_ids) == set(plain) | {i for ids in holders.values() for i in ids}
    assert {task_id: key for task_id, key in stored if key} == {
        next(iter(ids)): key for key, ids in holders.items()
    }
    keyed = PROCESSES * THREADS * len(range(0, PER_THREAD, DEDUPE_EVERY))
    assert len(stored) == len(returned) - keyed + DEDUPE_KEYS


def test_stored_tasks_are_pending(url: str) -> None:
    """What the blocking path stores a worker can take: pending, with its arguments."""
    with SyncTaskQueue(url) as queue:
        task_id = queue.enqueue(work, 7, priority=3, queue="q")
        task = queue.get_task(task_id)
    assert task is not None and task.status is TaskStatus.PENDING
    assert (task.function, task.args, task.priority, task.queue) == (work, (7,), 3, "q")
