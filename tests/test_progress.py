"""Progress: ``current_task().set_progress`` checked at the call, stored with the task
(throttled, the last value always kept), readable through `get_task`, `worker.get_status()`
and ``sitq inspect``, from this process and from another one."""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from subprocess_env import clean_environment
from test_worker_helpers import wait_until

import sitq
from sitq import SyncTaskQueue, TaskStatus, Worker
from sitq.context import TaskContext
from sitq.errors import ConfigurationError
from sitq.progress import Progress
from sitq_memory import MemoryBackend
from sitq_sqlite import SQLiteBackend

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_memory]

#: Bound on a subprocess of these tests (a hang fails the test, never the run).
SUBPROCESS_TIMEOUT = 120


#: Gates the tasks below wait on, by name (the tasks run in this process).
GATES: dict[str, threading.Event] = {}


def report_then_wait(gate: str, steps: int) -> str:
    """Report ``steps`` progress values in a tight loop, wait for ``GATES[gate]``, then
    report the last step."""
    for step in range(steps):
        sitq.current_task().set_progress(step / steps, f"step {step} of {steps}")
    GATES[gate].wait(60)
    sitq.current_task().set_progress(1.0, "done")
    return "ok"


async def async_report_then_wait(gate: str, steps: int) -> str:
    """`report_then_wait` as a coroutine."""
    for step in range(steps):
        sitq.current_task().set_progress(step / steps, f"step {step} of {steps}")
    await asyncio.to_thread(GATES[gate].wait, 60)
    sitq.current_task().set_progress(1.0, "done")
    return "ok"


def report_in_child(steps: int) -> int:
    """Report progress in a tight loop from a process worker's child; return its pid."""
    for step in range(steps):
        sitq.current_task().set_progress(step / steps, f"step {step + 1} of {steps}")
    return os.getpid()


def report_then_wait_in_child(gate: str) -> str:
    """Report progress from a child process, then wait for ``gate`` to exist."""
    sitq.current_task().set_progress(0.4, "step 2 of 5")
    while not os.path.exists(gate):
        time.sleep(0.01)
    return "ok"


@pytest.mark.parametrize(
    ("fraction", "message", "problem"),
    [
        (1.5, None, "from 0.0 to 1.0"),
        (-0.1, None, "from 0.0 to 1.0"),
        (math.nan, None, "finite"),
        (math.inf, None, "finite"),
        (True, None, "finite number"),
        ("half", None, "finite number"),
        (0.5, 12, "must be a string"),
        (0.5, "x" * 1025, "over 1024 bytes"),
    ],
)
def test_bad_progress_fails_at_the_call(fraction: Any, message: Any, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        TaskContext("t", 1, "w").set_progress(fraction, message)


@pytest.mark.parametrize("worker_type", ["thread", "async"])
def test_progress_is_readable_while_the_task_runs(tmp_path: Path, worker_type: str) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    gate = GATES[worker_type] = threading.Event()
    function = report_then_wait if worker_type == "thread" else async_report_then_wait
    task_id = queue.enqueue(function, worker_type, 10_000)
    worker = Worker(queue, worker_type=worker_type, max_workers=1, poll_interval=0.05)
    worker.start()
    try:

        def stored() -> Progress | None:
            task = queue.get_task(task_id)
            assert task is not None
            return task.progress

        last = Progress(9_999 / 10_000, "step 9999 of 10000")
        wait_until(
            lambda: (p := stored()) is not None and (p.fraction, p.message) == astuple(last),
            what="the last progress of the loop, stored",
        )
        assert worker.get_status().progress[task_id].message == last.message
        gate.set()
        assert queue.get_result(task_id, timeout=20).value == "ok"
        final = stored()
        assert final is not None and (final.fraction, final.message) == (1.0, "done")
        assert final.updated_at > 0
        wait_until(
            lambda: task_id not in worker.get_status().progress,
            what="the finished task gone from the worker's status",
        )
    finally:
        worker.stop()
        queue.close()


def astuple(progress: Progress) -> tuple[float, str | None]:
    """What a test compares of a progress (its time is the worker's)."""
    return progress.fraction, progress.message


def test_progress_is_seen_from_another_process(tmp_path: Path) -> None:
    """A real ``sitq worker`` process runs the task; this process reads its progress."""
    (tmp_path / "progress_tasks.py").write_text(
        textwrap.dedent(
            """
            import os, time
            import sitq

            queue = sitq.TaskQueue("sqlite:///q.db")

            def slow(gate):
                sitq.current_task().set_progress(0.4, "step 2 of 5")
                while not os.path.exists(gate):
                    time.sleep(0.01)
                return "ok"
            """
        )
    )
    url = f"sqlite:///{tmp_path / 'q.db'}"
    gate = tmp_path / "gate"
    queue = SyncTaskQueue(url)
    task_id = queue.enqueue("progress_tasks:slow", str(gate))
    worker = subprocess.Popen(
        [sys.executable, "-m", "sitq", "worker", "progress_tasks:queue", "--worker-type", "thread",
         "--max-tasks", "1", "--poll-interval", "0.05"],
        cwd=tmp_path,
        env=clean_environment([tmp_path]),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:

        def progress() -> Progress | None:
            task = queue.get_task(task_id)
            assert task is not None
            return task.progress

        wait_until(lambda: progress() is not None, timeout=60, what="progress from the worker")
        found = progress()
        assert found is not None and astuple(found) == (0.4, "step 2 of 5")
        assert queue.get_task(task_id).status is TaskStatus.RUNNING  # type: ignore[union-attr]
        shown = subprocess.run(
            [sys.executable, "-m", "sitq", "inspect", task_id, "--backend", url],
            cwd=tmp_path, env=clean_environment(), capture_output=True, text=True,
            timeout=SUBPROCESS_TIMEOUT,
        )  # fmt: skip
        assert "40% step 2 of 5" in shown.stdout, shown.stdout + shown.stderr
        gate.touch()
        assert queue.get_result(task_id, timeout=60).value == "ok"
        output, _ = worker.communicate(timeout=SUBPROCESS_TIMEOUT)
        assert worker.returncode == 0, output
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        queue.close()


def test_progress_travels_from_a_process_worker_child(tmp_path: Path) -> None:
    """The child sends its progress up its pipe; the parent stores it, the last value kept."""
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    task_id = queue.enqueue(report_in_child, 20_000)
    worker = Worker(queue, worker_type="process", max_workers=1)
    assert worker.process_task(task_id).value != os.getpid()
    task = queue.get_task(task_id)
    assert task is not None and task.progress is not None
    assert astuple(task.progress) == (19_999 / 20_000, "step 20000 of 20000")
    queue.close()


def test_progress_of_a_running_child_is_readable(tmp_path: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    gate = tmp_path / "gate"
    task_id = queue.enqueue(report_then_wait_in_child, str(gate))
    worker = Worker(queue, worker_type="process", max_workers=1, poll_interval=0.05)
    worker.start()
    try:

        def progress() -> Progress | None:
            task = queue.get_task(task_id)
            assert task is not None
            return task.progress

        wait_until(lambda: progress() is not None, timeout=60, what="progress from the child")
        assert astuple(progress()) == (0.4, "step 2 of 5")  # type: ignore[arg-type]
        assert worker.get_status().progress[task_id].message == "step 2 of 5"
        gate.touch()
        assert queue.get_result(task_id, timeout=60).value == "ok"
    finally:
        worker.stop()
        queue.close()


def report_many(steps: int) -> int:
    """Report ``steps`` progress values in a tight loop."""
    for step in range(steps):
        sitq.current_task().set_progress((step + 1) / steps, None)
    return steps


class CountingBackend(MemoryBackend):
    """A memory backend that counts its progress writes."""

    writes = 0

    async def set_progress(self, updates: Mapping[str, tuple[str, Progress]]) -> set[str]:
        self.writes += 1
        return await super().set_progress(updates)


def test_a_tight_loop_of_reports_is_written_in_few_batches() -> None:
    backend = CountingBackend()
    queue = SyncTaskQueue(backend)
    task_id = queue.enqueue(report_many, 20_000)
    worker = Worker(queue, worker_type="thread", max_workers=1)
    assert worker.process_task(task_id).value == 20_000
    task = queue.get_task(task_id)
    assert task is not None and task.progress is not None and task.progress.fraction == 1.0
    assert 1 <= backend.writes < 1_000  # throttled: not one write per report
    queue.close()
