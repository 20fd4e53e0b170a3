"""Promises 2 and 4 with real processes on one SQLite file: a dead worker's tasks run again
within lease + recovery interval, and a worker that stalled past its lease (SIGSTOP) and then
woke up (SIGCONT) cannot store its outcome: the task keeps the one result of its new run.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from test_guarantees_support import (
    log_lines,
    rows,
    start_worker,
    stderr_of,
    stop_all,
    wait_until,
    write_tasks,
)

from sitq import SQLiteBackend, SyncTaskQueue, TaskStatus, Worker

pytestmark = [pytest.mark.needs_sqlite]

BOUND = 30.0


def attempt_started(log: Path, task_id: str, attempt: int) -> bool:
    return any(line[:2] == [task_id, str(attempt)] and len(line) == 3 for line in log_lines(log))


@pytest.fixture
def tasks_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Task module and log in ``tmp_path``, importable by workers in this process too."""
    log = write_tasks(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("GTASKS_LOG", str(log))
    return log


def test_a_stalled_workers_late_completion_is_rejected(tmp_path: Path, tasks_here: Path) -> None:
    db = tmp_path / "tasks.db"
    queue = SyncTaskQueue(SQLiteBackend(db))
    task_id = queue.enqueue("gtasks:zombie", 2.5, 3.0)
    lease = 0.6
    a = start_worker(
        tmp_path, db, {"worker_id": "A", "lease_seconds": lease, "poll_interval": 0.05}
    )
    b = Worker(
        SyncTaskQueue(SQLiteBackend(db)),
        worker_id="B",
        lease_seconds=lease,
        recovery_interval=0.1,
        poll_interval=0.05,
    )
    try:
        wait_until(lambda: attempt_started(tasks_here, task_id, 1), BOUND, "A to start it")
        a.send_signal(signal.SIGSTOP)  # A stalls, heartbeat and all
        b.start()
        wait_until(lambda: attempt_started(tasks_here, task_id, 2), BOUND, "B to take it over")
        a.send_signal(signal.SIGCONT)  # A wakes up, finishes attempt 1 and reports it
        wait_until(
            lambda: any(line[3:] == ["finished-first"] for line in log_lines(tasks_here)),
            BOUND,
            "A to finish attempt 1",
        )
        result = queue.get_result(task_id, timeout=BOUND)  # B's attempt ends after A's
        assert result.status is TaskStatus.SUCCEEDED
        assert result.value["worker"] == "B" and result.value["attempt"] == 2, (
            f"the stored result came from {result.value}: a stale completion was accepted"
        )
        assert result.attempts == 2
        wait_until(
            lambda: "outcome succeeded not stored" in stderr_of(tmp_path),
            BOUND,
            "A to log that its late outcome was refused",
        )
    finally:
        b.stop()
        stop_all([a])
    ((status, worker_id),) = rows(db, "SELECT status, worker_id FROM sitq_tasks")
    assert (status, worker_id) == ("succeeded", "B")
    queue.close()


def test_a_dead_workers_task_runs_again_within_lease_plus_recovery_interval(
    tmp_path: Path, tasks_here: Path
) -> None:
    db = tmp_path / "tasks.db"
    queue = SyncTaskQueue(SQLiteBackend(db))
    task_id = queue.enqueue("gtasks:zombie", 60.0, 0.0)  # attempt 1 would take a minute
    lease, recovery = 1.0, 0.5
    a = start_worker(tmp_path, db, {"lease_seconds": lease, "poll_interval": 0.05})
    b = Worker(
        SyncTaskQueue(SQLiteBackend(db)),
        lease_seconds=lease,
        recovery_interval=recovery,
        poll_interval=0.05,
    )
    try:
        wait_until(lambda: attempt_started(tasks_here, task_id, 1), BOUND, "A to start it")
        a.send_signal(signal.SIGKILL)
        killed_at = time.time()
        a.wait(10)
        b.start()
        result = queue.get_result(task_id, timeout=BOUND)
    finally:
        b.stop()
        stop_all([a])
    assert result.status is TaskStatus.SUCCEEDED and result.value["attempt"] == 2
    assert result.started_at is not None
    waited = result.started_at.timestamp() - killed_at
    # the lease was extended at most lease/3 before the kill; 2 s of slack for a busy machine
    assert waited <= lease + recovery + 2.0, f"ran again {waited:.2f} s after its worker died"
    queue.close()
