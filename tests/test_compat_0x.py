"""The sitq 0.x API keeps working beside today's: each 0.x call in a test of its own, on real
SQLite files, without a warning (see docs/guides/from-0x.md)."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_worker_helpers import wait_until

from sitq import SQLiteBackend, SyncTaskQueue, TaskQueue, TaskStatus, Worker
from sitq.errors import ConfigurationError, QueueClosed
from sitq.rules import STATUS_BY_TEXT, check_statuses, fold_counts
from sitq.task import FINAL_STATUSES, Result
from sitq.worker import WorkerConfig

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_memory]

PythonRun = Callable[..., subprocess.CompletedProcess[str]]
WAIT = 30


def add(a: int, b: int) -> int:
    return a + b


def explode() -> None:
    raise KeyError("missing")


def close(backend: SQLiteBackend) -> None:
    """Close a backend from plain code, as its owner does."""
    asyncio.run(backend.close())


@pytest.fixture(autouse=True)
def _no_warnings_and_no_threads_left() -> Iterator[None]:
    """Every 0.x call runs without a warning, and leaves no thread behind (aiosqlite's
    connection threads, the queues' and workers' loops)."""
    gc.collect()  # what earlier tests left to the collector warns now, outside this filter
    before = set(threading.enumerate())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield
    wait_until(lambda: not set(threading.enumerate()) - before, what="the test's threads to end")


def run_sync(queue: SyncTaskQueue, task_id: str) -> None:
    """Run tasks with a background worker until ``task_id`` is done."""
    worker = Worker(queue, poll_interval=0.05, log_errors=False)
    worker.start()
    try:
        queue.get_result(task_id, timeout=WAIT)
    finally:
        worker.stop()


# -- TaskQueue(backend=...) and SyncTaskQueue(backend) ------------------------------------------


def test_task_queue_takes_a_backend_keyword(tmp_path: Path) -> None:
    async def main() -> None:
        backend = SQLiteBackend(str(tmp_path / "tasks.db"))
        async with TaskQueue(backend=backend) as queue:
            task_id = await queue.enqueue(add, 1, 2)
            assert (await Worker(queue).process_task_async(task_id)).value == 3
            assert queue.backend is backend and not queue.owns_backend
        await backend.close()

    asyncio.run(main())


def test_sync_task_queue_takes_a_backend(tmp_path: Path) -> None:
    backend = SQLiteBackend(str(tmp_path / "tasks.db"))
    with SyncTaskQueue(backend) as queue:
        assert queue.backend is backend and not queue.owns_backend
        task_id = queue.enqueue(add, 2, 3)
        run_sync(queue, task_id)
        assert queue.get_result(task_id, timeout=0).value == 5
    close(backend)


def test_sqlite_backend_takes_a_plain_path_or_memory(tmp_path: Path) -> None:
    for path in (tmp_path / "as_path.db", str(tmp_path / "as_text.db"), ":memory:"):
        backend = SQLiteBackend(path)
        with SyncTaskQueue(backend) as queue:
            task_id = queue.enqueue(add, 1, 1)
            assert queue.get_task(task_id) is not None
        close(backend)
    assert (tmp_path / "as_path.db").is_file() and (tmp_path / "as_text.db").is_file()


def test_a_backend_handed_in_serves_a_later_sync_queue(tmp_path: Path) -> None:
    backend = SQLiteBackend(str(tmp_path / "tasks.db"))
    with SyncTaskQueue(backend) as first:
        task_id = first.enqueue(add, 4, 4)
    with SyncTaskQueue(backend) as second:  # 0.x code does this; it raised QueueClosed
        run_sync(second, task_id)
    with SyncTaskQueue(backend) as third:
        assert third.get_result(task_id, timeout=0).value == 8
    close(backend)


def test_a_memory_backend_handed_in_keeps_its_tasks_between_queues() -> None:
    backend = SQLiteBackend(":memory:")
    with SyncTaskQueue(backend) as first:
        task_id = first.enqueue(add, 1, 2)
    with SyncTaskQueue(backend) as second:
        task = second.get_task(task_id)
        assert task is not None and task.args == (1, 2)
    close(backend)


def test_a_backend_handed_in_serves_a_later_async_queue(tmp_path: Path) -> None:
    async def main() -> None:
        backend = SQLiteBackend(str(tmp_path / "tasks.db"))
        async with TaskQueue(backend) as first:
            task_id = await first.enqueue(add, 5, 5)
        async with TaskQueue(backend) as second:
            assert (await Worker(second).process_task_async(task_id)).value == 10
        await backend.close()
        with pytest.raises(QueueClosed):  # closed by its owner: for good
            async with TaskQueue(backend):
                pass

    asyncio.run(main())


def test_a_queue_closes_the_backend_it_opened(tmp_path: Path) -> None:
    async def main() -> None:
        queue = TaskQueue(f"sqlite:///{tmp_path / 'tasks.db'}")
        await queue.enqueue(add, 1, 1)
        assert queue.owns_backend
        await queue.close()
        with pytest.raises(QueueClosed):
            await queue.backend.connect()

    asyncio.run(main())
    sync_queue = SyncTaskQueue(f"sqlite:///{tmp_path / 'sync.db'}")
    sync_queue.enqueue(add, 1, 1)
    assert sync_queue.owns_backend
    sync_queue.close()
    with pytest.raises(QueueClosed):
        asyncio.run(sync_queue.backend.connect())


def test_a_backend_left_open_does_not_hold_up_exit(python_run: PythonRun) -> None:
    done = python_run(
        """
        from sitq import SQLiteBackend, SyncTaskQueue

        with SyncTaskQueue(SQLiteBackend("tasks.db")) as queue:  # the backend is never closed
            queue.enqueue(print, "hello")
        print("done")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "done" and not done.stderr


# -- Worker(backend, max_concurrency=N) ---------------------------------------------------------


def test_worker_takes_max_concurrency(tmp_path: Path) -> None:
    backend = SQLiteBackend(str(tmp_path / "tasks.db"))
    worker = Worker(backend, max_concurrency=3)
    assert worker.max_workers == 3 and worker.config.max_workers == 3
    with SyncTaskQueue(backend) as queue:
        task_id = queue.enqueue(add, 1, 2)
        worker.start()
        try:
            assert queue.get_result(task_id, timeout=WAIT).value == 3
        finally:
            worker.stop()
    close(backend)


def test_max_concurrency_and_max_workers_together_are_refused(tmp_path: Path) -> None:
    backend = SQLiteBackend(str(tmp_path / "tasks.db"))
    with pytest.raises(ConfigurationError, match="give only max_workers"):
        Worker(backend, max_workers=2, max_concurrency=3)
    with pytest.raises(ConfigurationError, match="max_concurrency must be an int >= 1"):
        Worker(backend, max_concurrency=0)
    assert WorkerConfig(max_concurrency=4).max_workers == 4


# -- result.status == "success" / "failed" ------------------------------------------------------


def test_a_succeeded_result_status_equals_success(tmp_path: Path) -> None:
    backend = SQLiteBackend(str(tmp_path / "tasks.db"))
    with SyncTaskQueue(backend) as queue:
        task_id = queue.enqueue(add, 1, 2)
        run_sync(queue, task_id)
        result = queue.get_result(task_id, timeout=0)
    close(backend)
    assert result.status == "success"
    assert "success" == result.status  # noqa: SIM300 (the reflected comparison, on purpose)
    assert result.status == "succeeded" and result.status is TaskStatus.SUCCEEDED
    assert result.status != "failed"  # type: ignore[comparison-overlap]
    assert not result.status != "success"  # type: ignore[comparison-overlap]  # noqa: SIM202 (__ne__ itself)


def test_a_failed_result_status_equals_failed(tmp_path: Path) -> None:
    backend = SQLiteBackend(str(tmp_path / "tasks.db"))
    with SyncTaskQueue(backend) as queue:
        task_id = queue.enqueue(explode)
        run_sync(queue, task_id)
        result = queue.get_result(task_id, timeout=0)
    close(backend)
    assert result.status == "failed" and result.status is TaskStatus.FAILED
    assert result.status != "success"  # type: ignore[comparison-overlap]


def test_task_status_keeps_its_values_equality_and_hashing() -> None:
    assert TaskStatus.SUCCEEDED == "succeeded" and hash(TaskStatus.SUCCEEDED) == hash("succeeded")
    assert TaskStatus("success") is TaskStatus.SUCCEEDED  # the 0.x name, read
    assert Result(status="success").is_success  # type: ignore[arg-type]
    assert [s for s in TaskStatus if s == "success"] == [TaskStatus.SUCCEEDED]
    assert len(set(TaskStatus)) == len(TaskStatus) == 7  # the 0.x alias adds no member
    # stores keep today's texts only; dicts keyed by status are found by them
    assert set(STATUS_BY_TEXT) == {s.value for s in TaskStatus}
    counts = fold_counts([("succeeded", 2), (TaskStatus.FAILED, 1)])
    assert counts["succeeded"] == counts[TaskStatus.SUCCEEDED] == 2  # type: ignore[index]
    assert counts["failed"] == 1  # type: ignore[index]
    assert TaskStatus.SUCCEEDED in FINAL_STATUSES and "succeeded" in FINAL_STATUSES
    assert check_statuses("success") == frozenset({TaskStatus.SUCCEEDED})


# -- queue.deserialize_result(result) -----------------------------------------------------------


def test_task_queue_deserialize_result(tmp_path: Path) -> None:
    async def main() -> None:
        backend = SQLiteBackend(str(tmp_path / "tasks.db"))
        async with TaskQueue(backend) as queue:
            task_id = await queue.enqueue(add, 20, 22)
            await Worker(queue).process_task_async(task_id)
            result = await queue.get_result(task_id, timeout=0)
            assert queue.deserialize_result(result) == 42
            failed_id = await queue.enqueue(explode)
            await Worker(queue, log_errors=False).process_task_async(failed_id)
            failed = await queue.get_result(failed_id, timeout=0)
            assert queue.deserialize_result(failed) is None
        await backend.close()

    asyncio.run(main())


def test_sync_task_queue_deserialize_result(tmp_path: Path) -> None:
    backend = SQLiteBackend(str(tmp_path / "tasks.db"))
    with SyncTaskQueue(backend) as queue:
        task_id = queue.enqueue(add, 40, 2)
        run_sync(queue, task_id)
        assert queue.deserialize_result(queue.get_result(task_id, timeout=0)) == 42
    close(backend)
