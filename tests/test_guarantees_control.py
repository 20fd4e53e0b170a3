"""Promise 6: control. Cancel a queued task (it never runs) or a running one (a coroutine is
cancelled, a child process killed, a thread flagged and reported), within one heartbeat
interval; requeue failed and dead tasks; at most one active task per dedupe key; results kept
for ``result_ttl``, after which "expired" is told apart from "unknown".
"""

from __future__ import annotations

import asyncio
import collections
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from sitq import MemoryBackend, SQLiteBackend, SyncTaskQueue, Task, TaskStatus, Worker, current_task
from sitq.errors import ResultExpired, TaskNotFound

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_memory]

LEASE = 0.6  # the heartbeat runs every 0.2 s
BOUND = 15.0  # seconds any single wait below may take before the test fails

_events: dict[str, list[str]] = collections.defaultdict(list)
_lock = threading.Lock()


def note(what: str) -> None:
    task = current_task()
    with _lock:
        _events[task.task_id].append(what)


def events(task_id: str) -> list[str]:
    with _lock:
        return list(_events[task_id])


def wait_for(task_id: str, what: str) -> None:
    deadline = time.monotonic() + BOUND
    while what not in events(task_id):
        assert time.monotonic() < deadline, f"{task_id} never got to {what!r}: {events(task_id)}"
        time.sleep(0.02)


async def waits_forever() -> str:
    note("started")
    try:
        await asyncio.sleep(120)
    except asyncio.CancelledError:
        note("cancelled")
        raise
    return "finished"


def loops_until_cancelled() -> str:
    note("started")
    deadline = time.monotonic() + 60
    while not current_task().cancelled:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    note("saw the flag")
    return "stopped early"


def sleeps_in_a_child(pid_file: str) -> str:
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(120)
    return "finished"


def quick(x: int) -> int:
    note("ran")
    return x


def fails_until(path: str) -> str:
    note("ran")
    if not Path(path).exists():
        raise RuntimeError("not yet")
    return "ok"


def open_backend(kind: str, path: Path) -> MemoryBackend | SQLiteBackend:
    return MemoryBackend() if kind == "memory" else SQLiteBackend(path / "tasks.db")


@pytest.fixture(params=["sqlite", "memory"])
def queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SyncTaskQueue]:
    q = SyncTaskQueue(open_backend(str(request.param), tmp_path))
    yield q
    q.close()


@pytest.fixture
def worker(queue: SyncTaskQueue) -> Iterator[Worker]:
    w = Worker(queue, lease_seconds=LEASE, poll_interval=0.05, max_workers=4, graceful_shutdown=2)
    w.start()
    yield w
    w.stop()


def test_cancel_a_queued_task_it_never_runs(queue: SyncTaskQueue) -> None:
    task_id = queue.enqueue(quick, 1)
    assert queue.cancel(task_id)
    assert not queue.cancel(task_id), "cancelling twice"
    w = Worker(queue, lease_seconds=LEASE, poll_interval=0.05)
    w.start()
    try:
        other = queue.enqueue(quick, 2)
        assert queue.get_result(other, timeout=BOUND).value == 2
    finally:
        w.stop()
    result = queue.get_result(task_id, timeout=0)
    assert result.status is TaskStatus.CANCELLED and events(task_id) == []


def test_cancel_a_running_coroutine(queue: SyncTaskQueue, worker: Worker) -> None:
    task_id = queue.enqueue(waits_forever)
    wait_for(task_id, "started")
    assert queue.cancel(task_id)
    wait_for(task_id, "cancelled")  # within one heartbeat interval, here 0.2 s
    result = queue.get_result(task_id, timeout=0)
    assert result.status is TaskStatus.CANCELLED and result.value is None
    assert not queue.cancel(task_id), "cancelling twice"
    assert queue.get_result(queue.enqueue(quick, 3), timeout=BOUND).value == 3, "worker goes on"


def test_cancel_a_running_thread_is_flagged_and_reported(
    queue: SyncTaskQueue, caplog: pytest.LogCaptureFixture
) -> None:
    w = Worker(
        queue, worker_type="thread", lease_seconds=LEASE, poll_interval=0.05, graceful_shutdown=2
    )
    w.start()
    try:
        task_id = queue.enqueue(loops_until_cancelled)
        wait_for(task_id, "started")
        with caplog.at_level("WARNING", logger="sitq.worker"):
            assert queue.cancel(task_id)
            wait_for(task_id, "saw the flag")
            deadline = time.monotonic() + BOUND
            while "it was cancelled" not in caplog.text:
                assert time.monotonic() < deadline, caplog.text
                time.sleep(0.02)
        assert "runs on until it returns" in caplog.text
        result = queue.get_result(task_id, timeout=0)
        assert result.status is TaskStatus.CANCELLED and result.value is None, "result dropped"
        assert queue.get_result(queue.enqueue(quick, 4), timeout=BOUND).value == 4
    finally:
        w.stop()


def test_cancel_a_running_child_process_kills_it(tmp_path: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "tasks.db"))
    w = Worker(queue, worker_type="process", max_workers=1, lease_seconds=LEASE, poll_interval=0.05)
    w.start()
    try:
        pid_file = tmp_path / "child.pid"
        task_id = queue.enqueue(sleeps_in_a_child, str(pid_file))
        deadline = time.monotonic() + BOUND
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.02)
        child = psutil.Process(int(pid_file.read_text()))
        assert queue.cancel(task_id)
        gone, _ = psutil.wait_procs([child], timeout=BOUND)
        assert gone, "the child process running the cancelled task is still alive"
        assert queue.get_result(task_id, timeout=0).status is TaskStatus.CANCELLED
        assert queue.get_result(queue.enqueue(os.getpid), timeout=30).value != child.pid
    finally:
        w.stop()
        queue.close()


def test_requeue_failed_and_dead_tasks(queue: SyncTaskQueue, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    w = Worker(queue, lease_seconds=LEASE, poll_interval=0.05)
    task_id = queue.enqueue(fails_until, str(flag))
    (result,) = w.process_tasks([task_id])
    assert result.status is TaskStatus.FAILED
    flag.write_text("go")
    assert queue.requeue(task_id)
    assert not queue.requeue(task_id), "it is pending now"
    (result,) = w.process_tasks([task_id])
    assert result.status is TaskStatus.SUCCEEDED and result.value == "ok"
    assert events(task_id) == ["ran", "ran"]


def test_dedupe_key_at_most_one_active_task(queue: SyncTaskQueue, worker: Worker) -> None:
    first = queue.enqueue(Task(waits_forever, dedupe_key="report-42"))
    wait_for(first, "started")
    again = [queue.enqueue(Task(quick, args=(1,), dedupe_key="report-42")) for _ in range(5)]
    assert again == [first] * 5, "a running task holds its key"
    assert queue.cancel(first)
    wait_for(first, "cancelled")
    fresh = queue.enqueue(Task(quick, args=(2,), dedupe_key="report-42"))
    assert fresh != first, "a cancelled task frees its key"
    assert queue.get_result(fresh, timeout=BOUND).value == 2
    newest = queue.enqueue(Task(quick, args=(3,), dedupe_key="report-42"))
    assert newest != fresh, "a finished task frees its key"
    assert queue.get_result(newest, timeout=BOUND).value == 3


def test_results_expire_after_result_ttl(queue: SyncTaskQueue) -> None:
    w = Worker(queue, lease_seconds=LEASE, poll_interval=0.05, result_ttl=0.3)
    w.start()
    try:
        task_id = queue.enqueue(quick, 5)
        assert queue.get_result(task_id, timeout=BOUND).value == 5
        deadline = time.monotonic() + BOUND
        while True:
            try:
                queue.get_result(task_id, timeout=0)
            except ResultExpired as exc:
                assert exc.task_id == task_id and exc.status == "succeeded"
                assert "expired" in str(exc)
                break
            assert time.monotonic() < deadline, "the result never expired"
            time.sleep(0.05)
    finally:
        w.stop()
    with pytest.raises(TaskNotFound):
        queue.get_result("no-such-task", timeout=0)
    task = queue.get_task(task_id)
    assert task is not None and task.status is TaskStatus.SUCCEEDED, "the tombstone stays"
    assert not queue.requeue(task_id), "nothing left to run"
