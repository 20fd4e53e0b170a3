"""Two worker processes on one SQLite file: every task runs exactly once and has one result.

Real processes: each worker is a fresh interpreter that runs ``Worker.run()`` until SIGTERM.
Every execution appends its task id to a file of the process that ran it, so the test counts
executions directly rather than trusting the stored statuses.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sitq import SyncTaskQueue, Task, TaskStatus
from sitq_sqlite import SQLiteBackend

pytestmark = [pytest.mark.needs_sqlite]

TASKS = 2000
DEADLINE = 120  # seconds for the whole run; far more than it needs

TASK_MODULE = '''
"""The tasks both workers run."""
import os
import time

import sitq


def square(n):
    """Record which process ran this task, then return n * n."""
    task = sitq.current_task()
    with open(os.path.join(os.environ["EXEC_DIR"], f"executions-{os.getpid()}.txt"), "a") as f:
        f.write(f"{task.task_id} {task.attempt}\\n")
    time.sleep(0.001)
    return n * n
'''

WORKER = """
import os, signal, sys, threading
from collections.abc import Callable
from pathlib import Path
from sitq import TaskQueue, Worker
from sitq_sqlite import SQLiteBackend

worker = Worker(TaskQueue(SQLiteBackend(sys.argv[1])), max_workers=8, poll_interval=0.02)
worker.start()
Path(os.environ["EXEC_DIR"], f"ready-{os.getpid()}").touch()
stopped = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stopped.set())
stopped.wait(120)  # the test sends SIGTERM once every task has finished
worker.stop()
status = worker.get_status()
print(status.tasks_processed, status.tasks_succeeded, flush=True)
"""


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition()`` every 20 ms until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _started(workers: list[subprocess.Popen[str]], folder: Path) -> bool:
    """True once every worker has written its ready file; fails at once, with its output, if
    one exited instead."""
    for process in workers:
        if process.poll() is not None:
            _, err = process.communicate()
            pytest.fail(f"a worker exited with {process.returncode} before it started:\n{err}")
    return len(list(folder.glob("ready-*"))) == len(workers)


def test_two_worker_processes_run_every_task_exactly_once(tmp_path: Path) -> None:
    (tmp_path / "mp_tasks.py").write_text(TASK_MODULE)
    (tmp_path / "mp_worker.py").write_text(textwrap.dedent(WORKER))
    db = tmp_path / "tasks.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITQ_")}
    env.update(PYTHONPATH=str(tmp_path), EXEC_DIR=str(tmp_path))
    workers = [
        subprocess.Popen(
            [sys.executable, str(tmp_path / "mp_worker.py"), str(db)],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        wait_for(lambda: _started(workers, tmp_path), 60, "both workers to start")
        with SyncTaskQueue(SQLiteBackend(db)) as queue:
            ids: list[str] = []
            for start in range(0, TASKS, 200):  # in batches, while both workers are claiming
                batch = [Task("mp_tasks:square", args=(n,)) for n in range(start, start + 200)]
                ids += queue.enqueue_many(batch)
            assert len(set(ids)) == TASKS

            def all_final() -> bool:
                counts = queue.counts()
                return counts[TaskStatus.PENDING] + counts[TaskStatus.RUNNING] == 0

            wait_for(all_final, DEADLINE, f"{TASKS} tasks to finish")
            results = {task_id: queue.get_result(task_id, timeout=0) for task_id in ids}
    finally:
        outputs = []
        for process in workers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in workers:
            try:
                outputs.append(process.communicate(timeout=60))
            except subprocess.TimeoutExpired:
                process.kill()
                outputs.append(process.communicate())

    for process, (_, err) in zip(workers, outputs, strict=True):
        assert process.returncode == 0, err

    # every task succeeded, with the value its own argument gives
    assert all(r.status is TaskStatus.SUCCEEDED for r in results.values())
    assert [results[task_id].value for task_id in ids] == [n * n for n in range(TASKS)]
    assert all(r.attempts == 1 for r in results.values())

    # every task ran exactly once, counted from the side effect
    per_process = {
        path.name: [line.split() for line in path.read_text().splitlines()]
        for path in tmp_path.glob("executions-*.txt")
    }
    executions = collections.Counter(
        task_id for lines in per_process.values() for task_id, _ in lines
    )
    assert set(executions) == set(ids)
    assert [task_id for task_id, n in executions.items() if n != 1] == []
    assert all(attempt == "1" for lines in per_process.values() for _, attempt in lines)

    # both processes took part, and each one's own count agrees with what it wrote
    assert len(per_process) == 2, f"only {list(per_process)} ran tasks"
    reported = sorted(tuple(map(int, out.split())) for out, _ in outputs)
    written = sorted((len(lines), len(lines)) for lines in per_process.values())
    assert reported == written
    assert sum(n for n, _ in reported) == TASKS
    assert os.path.getsize(db) > 0
