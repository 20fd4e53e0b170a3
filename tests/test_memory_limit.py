"""``max_memory_mb`` bounds a running task of a process worker: the child going over the limit
is killed, the task fails with `ResourceLimitExceeded` naming the limit, a fresh child takes
its place and the worker goes on.

The task allocates in steps of touched memory, so it is stopped long before the machine (2
shared cores) feels it; it would take about 600 MiB if it were not.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from sitq import SQLiteBackend, SyncTaskQueue, TaskStatus, Worker
from sitq.errors import ResourceLimitExceeded

pytestmark = [pytest.mark.needs_sqlite]

LIMIT_MB = 200
STEP_MB = 25


def grow(total_mb: int, pid_file: str) -> int:
    """Write this process's pid to ``pid_file``, then hold ``total_mb`` of touched memory, a
    step at a time."""
    Path(pid_file).write_text(str(os.getpid()))
    held = []
    for _ in range(total_mb // STEP_MB):
        held.append(b"\x01" * (STEP_MB * 2**20))  # written, so resident
        time.sleep(0.05)
    return len(held)


def whoami() -> int:
    return os.getpid()


def test_a_task_over_max_memory_mb_fails_naming_the_limit_and_the_next_runs_in_a_fresh_child(
    tmp_path: Path,
) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "tasks.db"))
    worker = Worker(queue, worker_type="process", max_workers=1, max_memory_mb=LIMIT_MB)
    pid_file = tmp_path / "hog.pid"
    hog = queue.enqueue(grow, 600, str(pid_file))
    after = queue.enqueue(whoami)
    failed, next_one = worker.process_tasks([hog, after])

    assert failed.status is TaskStatus.FAILED
    assert failed.error is not None and failed.error.startswith("ResourceLimitExceeded: task ")
    assert f"over max_memory_mb={LIMIT_MB}: its child process was killed" in failed.error
    used = int(failed.error.split(" used ")[1].split(" MiB")[0].replace(",", ""))
    assert LIMIT_MB < used < 600, f"stopped at {used} MiB"

    assert next_one.status is TaskStatus.SUCCEEDED, next_one.error
    assert next_one.value != int(pid_file.read_text()), "the next task ran in the killed child"
    queue.close()


def test_the_error_carries_the_limit_and_the_use() -> None:
    error = ResourceLimitExceeded("task t used 250 MiB", limit_mb=200, used_mb=250.0)
    assert (error.limit_mb, error.used_mb, str(error)) == (200, 250.0, "task t used 250 MiB")
