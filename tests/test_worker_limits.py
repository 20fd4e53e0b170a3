"""Resource management: max_memory_mb, max_cpu_percent, and graceful_shutdown (no task lost,
none left running)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import psutil
import pytest
from test_worker_helpers import (
    add,
    async_sleep_then,
    backend_fixture,
    burn_cpu,
    burn_cpu_for,
    make_backend,
    sleep_then,
    statuses,
    wait_until,
)

from sitq import SQLiteBackend, SyncTaskQueue, TaskQueue, TaskStatus, Worker
from sitq.backend import Backend
from sitq.limits import ResourceLimits

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_memory]

backend = backend_fixture()

_HELD: list[bytes] = []


def hold_memory(megabytes: int) -> int:
    """Keep ``megabytes`` of touched memory alive in this process; return its pid."""
    _HELD.append(b"\x01" * (megabytes * 2**20))
    return os.getpid()


def rss_mb() -> float:
    """Resident memory of this process in MiB."""
    return float(psutil.Process().memory_info().rss) / 2**20


# -- memory -------------------------------------------------------------------------------------


def test_above_max_memory_mb_the_worker_takes_no_task(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    task_id = queue.enqueue(add, 1, 1)
    worker = Worker(queue, max_memory_mb=1, poll_interval=0.05)  # this process uses far more
    with caplog.at_level(logging.WARNING, logger="sitq.worker"):
        worker.start()
        wait_until(lambda: worker.get_status().throttled is not None, what="throttled")
        time.sleep(0.3)
        assert queue.get_task(task_id).status is TaskStatus.PENDING  # type: ignore[union-attr]
        assert "max_memory_mb=1" in (worker.get_status().throttled or "")
        worker.stop()
    assert "takes no new task: memory" in caplog.text
    assert worker.get_status().throttled is None
    roomy = Worker(queue, max_memory_mb=rss_mb() + 4096)
    assert roomy.process_task(task_id).value == 2
    queue.close()


def test_process_children_above_max_memory_mb_are_recycled(tmp_path: Path) -> None:
    limit = rss_mb() + 64  # above this process, below a child holding the memory below
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    worker = Worker(queue, worker_type="process", max_workers=1, max_memory_mb=limit)
    heavy = queue.enqueue(hold_memory, int(limit) + 32)
    light = queue.enqueue(hold_memory, 1)
    lighter = queue.enqueue(hold_memory, 0)
    first, second, third = (r.value for r in worker.process_tasks([heavy, light, lighter]))
    assert first != second  # the child that went above the limit was replaced
    assert second == third  # a child under the limit is kept
    queue.close()


# -- CPU ----------------------------------------------------------------------------------------


def test_above_max_cpu_percent_the_worker_pauses_claiming(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    # burns for longer than the CPU sampling window (0.25 s), so the sample taken when the
    # slot frees covers the burn whatever the machine's load
    ids = [queue.enqueue(burn_cpu_for, 1.0), queue.enqueue(add, 1, 2)]
    worker = Worker(queue, max_workers=1, max_cpu_percent=5, poll_interval=0.05)
    with caplog.at_level(logging.INFO, logger="sitq.worker"):
        worker.start()
        assert queue.get_result(ids[1], timeout=30).value == 3  # throttling only delays
        worker.stop()
    assert "takes no new task: CPU" in caplog.text and "above max_cpu_percent=5" in caplog.text
    assert "takes tasks again" in caplog.text
    queue.close()


def test_resource_limits_measure_this_process_and_its_children() -> None:
    limits = ResourceLimits(max_memory_mb=10**6, max_cpu_percent=100, interval=0.05)
    assert limits.over_limit() is None
    burn_cpu(200_000)
    time.sleep(0.06)
    usage = limits.usage()
    assert usage.memory_mb > 1 and usage.cpu_percent > 0
    assert not ResourceLimits().active


# -- graceful shutdown --------------------------------------------------------------------------


@pytest.mark.parametrize("worker_type", ["async", "thread", "process"])
def test_stop_mid_task_loses_nothing_and_leaves_nothing_running(
    worker_type: str, backend: Backend
) -> None:
    async def main() -> None:
        queue = TaskQueue(backend)
        long = [await queue.enqueue(sleep_then, 5) for _ in range(2)]
        if worker_type == "async":
            long.append(await queue.enqueue(async_sleep_then, 5))
        quick = [await queue.enqueue(sleep_then, 0.01, i) for i in range(3)]
        later = [await queue.enqueue(add, i, i, priority=-1) for i in range(5)]
        worker = Worker(queue, worker_type=worker_type, max_workers=4, graceful_shutdown=0.3)
        job = asyncio.create_task(worker.start())
        ids = long + quick + later
        deadline = time.monotonic() + 20
        while not all(t in worker.get_status().running_task_ids for t in long):
            assert time.monotonic() < deadline, "long tasks never all started"
            await asyncio.sleep(0.01)
        began = time.monotonic()
        await asyncio.wait_for(worker.stop(), 20)
        assert time.monotonic() - began < 10
        await asyncio.wait_for(job, 5)
        found = await statuses(queue.backend, ids)
        assert len(found) == len(ids)  # none lost
        assert TaskStatus.RUNNING not in found  # none stuck
        assert set(found) <= {TaskStatus.SUCCEEDED, TaskStatus.PENDING}
        for task_id in long:  # handed back unrun, attempt not counted
            record = await queue.backend.get_task(task_id)
            assert record is not None
            assert record.status is TaskStatus.PENDING and record.attempts == 0
        await queue.close()

    asyncio.run(main())


def test_stop_lets_tasks_finish_within_the_grace_period(tmp_path: Path) -> None:
    queue = SyncTaskQueue(make_backend("sqlite", tmp_path))
    task_id = queue.enqueue(sleep_then, 0.3, "finished")
    worker = Worker(queue, graceful_shutdown=10, poll_interval=0.05)
    worker.start()
    wait_until(lambda: worker.get_status().current_task_id == task_id, what="task running")
    worker.stop()
    assert queue.get_result(task_id, timeout=0).value == "finished"
    queue.close()


def test_process_children_are_gone_after_stop(tmp_path: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    task_id = queue.enqueue(sleep_then, 30)
    worker = Worker(queue, worker_type="process", max_workers=2, graceful_shutdown=0.1)
    worker.start()
    wait_until(lambda: worker.get_status().current_task_id == task_id, what="task running")
    executor = worker._executor
    assert executor is not None
    pids = list(executor.pids)  # type: ignore[attr-defined]
    assert len(pids) == 2
    worker.stop()
    for pid in pids:
        wait_until(
            lambda pid=pid: (  # type: ignore[misc]
                not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
            ),
            what=f"child {pid} gone",
        )
    assert queue.get_task(task_id).status is TaskStatus.PENDING  # type: ignore[union-attr]
    queue.close()
