"""Helpers for the task-life guarantee tests (test_guarantees_*, test_chaos_*): no tests here.

Real things only: worker processes started with the same Python, a real SQLite file, task
functions in a module written to the test's folder (so worker processes import them by path),
and an execution log that every task appends one line to when it starts.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.needs_sqlite]

#: The module of task functions, written as ``gtasks.py`` into the test's folder.
TASKS_MODULE = textwrap.dedent(
    '''
    """Task functions for the guarantee tests; each logs its start to $GTASKS_LOG."""

    import asyncio
    import os
    import time

    import sitq


    def _log(tag=""):
        task = sitq.current_task()
        line = f"{task.task_id} {task.attempt} {os.getpid()} {tag}\\n".encode()
        fd = os.open(
            os.path.join(os.environ["GTASKS_LOG"], f"exec-{os.getpid()}.log"),
            os.O_WRONLY | os.O_APPEND | os.O_CREAT,
            0o600,
        )
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        return task


    def _me(task):
        return {"task": task.task_id, "attempt": task.attempt, "pid": os.getpid(),
                "worker": task.worker_id}


    async def work(seconds=0.0):
        """Log, sleep without blocking the loop, return who ran it."""
        task = _log()
        await asyncio.sleep(seconds)
        return _me(task)


    async def block(seconds):
        """Log, then block the worker's event loop for ``seconds``."""
        task = _log()
        time.sleep(seconds)
        return _me(task)


    def sync_work(seconds):
        """Log, then sleep in the thread this runs in."""
        task = _log()
        time.sleep(seconds)
        return _me(task)


    def crash():
        """Log, then kill the process running it (a poison task)."""
        _log()
        os._exit(13)


    async def zombie(first_seconds, later_seconds):
        """Attempt 1 blocks its worker's event loop for ``first_seconds`` (so that once the
        worker wakes from a SIGSTOP, nothing can stop it before it reports); later attempts
        sleep ``later_seconds`` without blocking."""
        task = _log()
        if task.attempt == 1:
            time.sleep(first_seconds)
            _log("finished-first")
        else:
            await asyncio.sleep(later_seconds)
        return _me(task)


    def ok(x):
        _log()
        return x
    '''
)

#: A worker process: ``python -c WORKER_SCRIPT DB OPTIONS_JSON`` runs until SIGTERM.
WORKER_SCRIPT = textwrap.dedent(
    """
    import json, logging, sys
    from sitq import TaskQueue, Worker
    from sitq_sqlite import SQLiteBackend

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    options = json.loads(sys.argv[2])
    queue = TaskQueue(SQLiteBackend(sys.argv[1]))
    try:
        Worker(queue, **options).run()
    except KeyboardInterrupt:
        pass
    """
)


def write_tasks(folder: Path) -> Path:
    """Write ``gtasks.py`` and make a log folder; return the log folder."""
    (folder / "gtasks.py").write_text(TASKS_MODULE)
    log = folder / "execlog"
    log.mkdir(exist_ok=True)
    return log


def worker_env(folder: Path, **extra: str) -> dict[str, str]:
    """Environment for worker processes: ``gtasks`` importable, its log set, no SITQ_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITQ_")}
    env["PYTHONPATH"] = os.pathsep.join([str(folder), env.get("PYTHONPATH", "")])
    env["GTASKS_LOG"] = str(folder / "execlog")
    env.update(extra)
    return env


def start_worker(
    folder: Path, db: Path, options: dict[str, Any], **env: str
) -> subprocess.Popen[bytes]:
    """A worker process on ``db``, with its stderr in ``folder/worker-N.err``."""
    n = len(list(folder.glob("worker-*.err")))
    err = open(folder / f"worker-{n}.err", "wb")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER_SCRIPT, str(db), json.dumps(options)],
        env=worker_env(folder, **env),
        stdout=subprocess.DEVNULL,
        stderr=err,
        cwd=folder,
    )
    err.close()
    return proc


def stop_all(procs: list[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    """SIGTERM every live process, then SIGKILL any still there after ``timeout``."""
    for p in procs:
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGCONT)
                p.terminate()
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def executions(log: Path) -> collections.Counter[str]:
    """How many times each task started, from the execution log."""
    counts: collections.Counter[str] = collections.Counter()
    for path in log.glob("exec-*.log"):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3:  # tagged lines mark progress, not starts
                counts[parts[0]] += 1
    return counts


def log_lines(log: Path) -> list[list[str]]:
    """Every execution log line, split: ``[task_id, attempt, pid, tag?]``."""
    return [
        line.split() for path in log.glob("exec-*.log") for line in path.read_text().splitlines()
    ]


def rows(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run a read-only query on the database file."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, step: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something true; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def stderr_of(folder: Path) -> str:
    """All worker processes' stderr, for assertion messages."""
    return "\n".join(p.read_text(errors="replace") for p in sorted(folder.glob("worker-*.err")))
