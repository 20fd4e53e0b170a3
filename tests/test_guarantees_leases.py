"""Promises 3 and 4: a task runs again only after its worker lost its lease; leases are kept
alive by a heartbeat that a blocked event loop cannot starve; tasks see who they are.

Tasks lasting three leases run exactly once while their worker is alive, whether they await,
block the worker's event loop, or run in a thread; a second worker recovers lapsed leases
every 0.1 s the whole time, so any lapse would show as a second execution.
"""

from __future__ import annotations

import asyncio
import collections
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sitq import (
    MemoryBackend,
    SQLiteBackend,
    SyncTaskQueue,
    Task,
    TaskContext,
    TaskStatus,
    Worker,
    current_task,
)
from sitq.errors import NoCurrentTask

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_memory]

LEASE = 0.6
LONG = 3 * LEASE  # each task outlives three leases

_runs: collections.Counter[str] = collections.Counter()
_seen: dict[str, list[TaskContext]] = collections.defaultdict(list)
_lock = threading.Lock()


def _started() -> TaskContext:
    task = current_task()
    with _lock:
        _runs[task.task_id] += 1
        _seen[task.task_id].append(task)
    return task


async def awaits(seconds: float) -> int:
    """Awaits, as a well-behaved coroutine does."""
    task = _started()
    await asyncio.sleep(seconds)
    return task.attempt


async def blocks_the_loop(seconds: float) -> int:
    """Blocks the worker's event loop the whole time (the heartbeat must not depend on it)."""
    task = _started()
    time.sleep(seconds)  # noqa: ASYNC251 (blocking the loop is the point)
    return task.attempt


def in_a_thread(seconds: float) -> int:
    """A plain function, run in a thread."""
    task = _started()
    time.sleep(seconds)
    return task.attempt


def who_am_i() -> dict[str, object]:
    task = _started()
    return {"task_id": task.task_id, "attempt": task.attempt, "worker_id": task.worker_id}


async def who_am_i_async() -> dict[str, object]:
    await asyncio.sleep(0)
    return who_am_i()


def flaky_who_am_i() -> int:
    task = _started()
    if task.attempt < 3:
        raise OSError(f"attempt {task.attempt} fails")
    return task.attempt


def open_backend(kind: str, path: Path) -> MemoryBackend | SQLiteBackend:
    if kind == "memory":
        return MemoryBackend(f"leases-{path.name}-{os.getpid()}")
    return SQLiteBackend(path / "tasks.db")


@pytest.fixture(params=["sqlite", "memory"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for w in started:
        w.stop()


def start(workers: list[Worker], worker: Worker) -> Worker:
    worker.start()
    workers.append(worker)
    return worker


def test_long_tasks_run_once_while_the_heartbeat_holds_their_lease(
    kind: str, tmp_path: Path, workers: list[Worker]
) -> None:
    keep = open_backend(kind, tmp_path)  # keeps a named memory store alive
    queue = SyncTaskQueue(open_backend(kind, tmp_path))
    variants = {"awaits": awaits, "blocks": blocks_the_loop, "thread": in_a_thread}
    ids: dict[str, list[str]] = {}
    for name, fn in variants.items():
        ids[name] = [queue.enqueue(Task(fn, args=(LONG,), queue=name)) for _ in range(2)]
    # one worker per variant (a blocked loop blocks only its own worker), each on its own
    # thread and event loop
    for name in variants:
        start(
            workers,
            Worker(
                SyncTaskQueue(open_backend(kind, tmp_path)),
                queues=[name],
                worker_type="thread" if name == "thread" else "async",
                lease_seconds=LEASE,
                recovery_interval=60,
                poll_interval=0.05,
            ),
        )
    # a worker that takes no task and recovers lapsed leases every 0.1 s
    start(
        workers,
        Worker(
            SyncTaskQueue(open_backend(kind, tmp_path)),
            queues=["none"],
            lease_seconds=LEASE,
            recovery_interval=0.1,
            poll_interval=0.05,
        ),
    )
    for name, task_ids in ids.items():
        for task_id in task_ids:
            result = queue.get_result(task_id, timeout=30)
            assert result.status is TaskStatus.SUCCEEDED, (name, result.error)
            assert result.value == 1 and result.attempts == 1, (
                f"{name}: a task outliving its lease was recovered while its worker lived "
                f"(attempt {result.value})"
            )
            assert _runs[task_id] == 1, f"{name}: ran {_runs[task_id]} times"
    queue.close()
    del keep


@pytest.mark.parametrize("worker_type", ["async", "thread"])
def test_current_task_in_async_and_thread_executors(tmp_path: Path, worker_type: str) -> None:
    queue = SyncTaskQueue(MemoryBackend())
    worker = Worker(queue, worker_type=worker_type, worker_id="me", max_retries=3, retry_delay=0)
    plain = queue.enqueue(who_am_i)
    coro = queue.enqueue(who_am_i_async)
    flaky = queue.enqueue(flaky_who_am_i)
    results = worker.process_tasks([plain, coro, flaky])
    assert results[0].value == {"task_id": plain, "attempt": 1, "worker_id": "me"}
    assert results[1].value == {"task_id": coro, "attempt": 1, "worker_id": "me"}
    assert results[2].value == 3
    assert [t.attempt for t in _seen[flaky]] == [1, 2, 3], "attempts counted from 1"
    assert {t.task_id for t in _seen[flaky]} == {flaky}, "the id is the idempotency key"


def test_current_task_in_a_process_executor(tmp_path: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "tasks.db"))
    worker = Worker(queue, worker_type="process", max_workers=1, worker_id="proc")
    task_id = queue.enqueue(who_am_i)
    (result,) = worker.process_tasks([task_id])
    assert result.value == {"task_id": task_id, "attempt": 1, "worker_id": "proc"}, result.error
    queue.close()


def test_current_task_outside_a_task() -> None:
    with pytest.raises(NoCurrentTask, match="only available while a sitq worker runs a task"):
        current_task()
    assert current_task(None) is None
