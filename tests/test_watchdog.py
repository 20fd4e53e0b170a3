"""A task that wedges its worker's event loop (an async function that never awaits) costs that
worker, not the queue: the heartbeat thread's watchdog names the task, stops extending the
worker's leases so another worker runs the rest of its batch, and lets SIGTERM end the process
after the grace period; ``SyncTaskQueue.get_result(timeout=...)`` keeps its timeout.

Real things only: ``sitq worker`` processes on one SQLite file. Every wait has an upper bound
that only a hang would break; nothing asserts how fast anything is.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sitq import SyncTaskQueue, TaskStatus

pytestmark = [pytest.mark.needs_sqlite]

APP = '''
"""Tasks for the watchdog tests; the queue comes from SITQ_BACKEND_URL."""
import asyncio

import sitq
from sitq import TaskQueue

queue = TaskQueue()


async def spin():
    """Never awaits: wedges the event loop it runs on."""
    while True:
        pass


async def who_runs_me():
    await asyncio.sleep(0.2)
    return sitq.current_task().worker_id
'''

LEASE = 2.0
GRACE = 3.0
#: Upper bound on any one wait (a hang breaks it; a slow, shared machine does not).
BOUND = 60.0


def env_for(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITQ_")}
    env["SITQ_BACKEND_URL"] = f"sqlite:///{folder / 'tasks.db'}"
    env["PYTHONPATH"] = os.pathsep.join([str(folder), env.get("PYTHONPATH", "")])
    return env


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "wedgeapp.py").write_text(APP)
    return tmp_path


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def start_worker(
    folder: Path, procs: list[subprocess.Popen[bytes]], name: str, *args: str
) -> subprocess.Popen[bytes]:
    """``sitq worker wedgeapp:queue ARGS`` in the background, its stderr in ``NAME.err``."""
    with open(folder / f"{name}.err", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sitq", "worker", "wedgeapp:queue", "--worker-id", name,
             "--lease-seconds", str(LEASE), "--graceful-shutdown", str(GRACE),
             "--poll-interval", "0.05", *args],
            cwd=folder,
            env=env_for(folder),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )  # fmt: skip
    procs.append(proc)
    return proc


def stderr_of(folder: Path, name: str) -> str:
    return (folder / f"{name}.err").read_text(errors="replace")


def wait_for_text(folder: Path, name: str, text: str) -> str:
    deadline = time.monotonic() + BOUND
    while text not in (found := stderr_of(folder, name)):
        assert time.monotonic() < deadline, f"{name} never logged {text!r}:\n{found}"
        time.sleep(0.05)
    return found


def test_a_wedged_worker_is_named_its_batch_runs_elsewhere_and_sigterm_ends_it(
    app_dir: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    with SyncTaskQueue(env_for(app_dir)["SITQ_BACKEND_URL"]) as queue:
        spinning = queue.enqueue("wedgeapp:spin", timeout=1, queue="spin")
        other = queue.enqueue("wedgeapp:who_runs_me", queue="other")
        # A claims both in one batch; the spinning task wedges its loop, the other never ends
        a = start_worker(app_dir, procs, "A", "--concurrency", "2")
        log = wait_for_text(app_dir, "A", "its event loop has not answered")
        assert f"task {spinning} wedgeapp:spin (attempt 1)" in log, log
        assert "while True:" in log, "the log line shows where the loop is blocked"
        assert "asyncio.to_thread" in log, "the log line says how to avoid it"

        # A no longer extends its leases: B recovers the other task of the batch and runs it
        start_worker(app_dir, procs, "B", "--queues", "other", "--recovery-interval", "0.2")
        result = queue.get_result(other, timeout=BOUND)
        assert result.status is TaskStatus.SUCCEEDED, result.error
        assert result.value == "B", f"the other task of A's batch was run by {result.value}"

        # SIGTERM cannot reach A's blocked loop; the watchdog ends A after the grace period
        a.send_signal(signal.SIGTERM)
        try:
            code = a.wait(GRACE + 15.0)
        except subprocess.TimeoutExpired:
            pytest.fail(f"SIGTERM did not end the wedged worker:\n{stderr_of(app_dir, 'A')}")
        assert code == 128 + signal.SIGTERM, stderr_of(app_dir, "A")
        log = stderr_of(app_dir, "A")
        assert "exits now (SIGTERM" in log and f"task {spinning} wedgeapp:spin" in log, log
        task = queue.get_task(spinning)  # its lease lapsed too: recovered for another attempt
        assert task is not None and task.status is TaskStatus.PENDING and task.attempts == 1


def test_a_second_sigterm_ends_a_wedged_worker_at_once(
    app_dir: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    with SyncTaskQueue(env_for(app_dir)["SITQ_BACKEND_URL"]) as queue:
        queue.enqueue("wedgeapp:spin")
    a = start_worker(app_dir, procs, "A", "--graceful-shutdown", "600")
    wait_for_text(app_dir, "A", "its event loop has not answered")
    a.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    a.send_signal(signal.SIGTERM)
    try:
        code = a.wait(BOUND)  # far below the 600 s grace period
    except subprocess.TimeoutExpired:
        pytest.fail(f"a second SIGTERM did not end the wedged worker:\n{stderr_of(app_dir, 'A')}")
    assert code == 128 + signal.SIGTERM
    assert "exits now (a second SIGTERM)" in stderr_of(app_dir, "A")


SYNC_SCRIPT = textwrap.dedent(
    """
    import logging, os, sys, time
    from sitq import SyncTaskQueue, Worker
    from sitq.errors import ResultTimeout, WorkerStateError

    logging.basicConfig(level=logging.WARNING)
    queue = SyncTaskQueue(os.environ["SITQ_BACKEND_URL"])
    task_id = queue.enqueue("wedgeapp:spin", timeout=1)
    worker = Worker(queue, lease_seconds=2, poll_interval=0.05, graceful_shutdown=1)
    worker.start()  # on a thread of its own, sharing the queue's backend
    deadline = time.monotonic() + 30
    while not worker.get_status().running_task_ids and time.monotonic() < deadline:
        time.sleep(0.05)
    began = time.monotonic()
    try:
        queue.get_result(task_id, timeout=3)
    except ResultTimeout as exc:
        print(f"ResultTimeout after {time.monotonic() - began:.1f} s: {exc}", flush=True)
    try:
        worker.stop()
    except WorkerStateError as exc:
        print(f"WorkerStateError: {exc}", flush=True)
    """  # then the interpreter exits, with the wedged worker thread (a daemon) in it
)


def test_beside_a_wedged_worker_in_the_same_process_get_result_and_stop_return(
    app_dir: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SYNC_SCRIPT],
        cwd=app_dir,
        env=env_for(app_dir),
        capture_output=True,
        text=True,
        timeout=BOUND,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ResultTimeout after"), done.stdout + done.stderr
    assert "is not finished after 3 s" in done.stdout
    seconds = float(done.stdout.split()[2])
    assert seconds < 3 + 10, f"get_result(timeout=3) took {seconds} s"  # a hang would break it
    assert "WorkerStateError: worker" in done.stdout and "cannot stop" in done.stdout
    assert "wedgeapp:spin" in done.stderr, "the watchdog names the task"
