"""One Worker, driven from async code and from plain code: start, stop, run, process_task(s)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from test_worker_helpers import (
    REGISTRY,
    add,
    async_add,
    async_sleep_then,
    await_until,
    backend_fixture,
    fail,
    make_backend,
    sleep_then,
    stop_registered,
    stop_registered_async,
    wait_until,
)

from sitq import Result, SQLiteBackend, SyncTaskQueue, TaskQueue, TaskStatus, Worker
from sitq.backend import Backend
from sitq.errors import EventLoopMisuse, WorkerStateError

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_memory]

backend = backend_fixture()

# -- async use ----------------------------------------------------------------------------------


def test_async_start_and_stop(backend: Backend) -> None:
    async def main() -> None:
        queue = TaskQueue(backend)
        worker = Worker(queue.backend, poll_interval=0.05)
        task_id = await queue.enqueue(async_add, 2, 3)
        job = asyncio.create_task(worker.start())
        result = await queue.get_result(task_id, timeout=10)
        assert result.value == 5 and result.is_success
        assert worker.is_running
        await worker.stop()
        assert not worker.is_running
        await asyncio.wait_for(job, 5)  # start() returned once stopped
        await queue.close()

    asyncio.run(main())


def test_stop_right_after_create_task_never_runs_a_task(backend: Backend) -> None:
    async def main() -> None:
        queue = TaskQueue(backend)
        task_id = await queue.enqueue(add, 1, 1)
        worker = Worker(queue, poll_interval=0.05)
        job = asyncio.create_task(worker.start())
        await worker.stop()
        await asyncio.wait_for(job, 5)
        assert (await queue.get_task(task_id)).status is TaskStatus.PENDING  # type: ignore[union-attr]
        await queue.close()

    asyncio.run(main())


def test_async_process_task_and_process_tasks(backend: Backend) -> None:
    async def main() -> None:
        queue = TaskQueue(backend)
        worker = Worker(queue, max_workers=2)
        one = await queue.enqueue(add, 1, 2)
        many = [await queue.enqueue(async_add, i, i) for i in range(3)]
        result = await worker.process_task_async(one)
        assert isinstance(result, Result) and result.value == 3
        results = await worker.process_tasks_async(many)
        assert [r.value for r in results] == [0, 2, 4]
        # a finished task's stored result is returned as is
        assert (await worker.process_task_async(one)).value == 3
        await queue.close()

    asyncio.run(main())


def test_stop_awaited_from_the_workers_own_task_does_not_deadlock(tmp_path: Path) -> None:
    async def main() -> None:
        queue = TaskQueue(SQLiteBackend(tmp_path / "q.db"))
        worker = Worker(queue, poll_interval=0.05, graceful_shutdown=30)
        REGISTRY["own-task"] = worker
        # stop() awaited inside its own task only requests the stop: waiting would wait for itself
        task_id = await queue.enqueue(stop_registered_async, "own-task")
        await asyncio.wait_for(worker.start(), 10)
        assert (await queue.get_result(task_id, timeout=1)).value == "asked"
        await queue.close()

    asyncio.run(main())


# -- plain (sync) use ---------------------------------------------------------------------------


def test_sync_start_returns_at_once_and_stop_blocks_until_stopped(tmp_path: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    worker = Worker(queue, poll_interval=0.05)
    began = time.monotonic()
    worker.start()
    assert time.monotonic() - began < 5 and worker.is_running
    task_id = queue.enqueue(sleep_then, 0.3, "done")
    wait_until(lambda: worker.get_status().current_task_id == task_id, what="task running")
    worker.stop()  # waits for the running task (graceful_shutdown is 30 s)
    assert not worker.is_running
    assert queue.get_result(task_id, timeout=0).value == "done"
    with pytest.raises(WorkerStateError):
        worker.start()
        worker.start()
    worker.stop()
    queue.close()


def test_sync_process_task_and_process_tasks(backend: Backend) -> None:
    queue = SyncTaskQueue(backend)
    worker = Worker(queue)
    ok = queue.enqueue(add, 20, 22)
    bad = queue.enqueue(fail, "nope")
    result = worker.process_task(ok)
    assert result.is_success and result.value == 42
    results = worker.process_tasks([ok, bad])
    assert [r.is_success for r in results] == [True, False]
    assert results[1].is_error and "ValueError: nope" in (results[1].error or "")
    queue.close()


def test_run_with_duration_blocks_that_long(backend: Backend) -> None:
    queue = SyncTaskQueue(backend)
    task_id = queue.enqueue(add, 1, 2)
    worker = Worker(queue, poll_interval=0.05)
    began = time.monotonic()
    worker.run(duration=0.4)
    elapsed = time.monotonic() - began
    assert 0.4 <= elapsed < 5
    assert not worker.is_running
    assert queue.get_result(task_id, timeout=0).value == 3
    queue.close()


@pytest.mark.parametrize("source", ["task_queue", "sync_task_queue", "backend", "backend_kw"])
def test_built_from_a_queue_a_sync_queue_or_a_backend(source: str, tmp_path: Path) -> None:
    sync_queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    worker = {
        "task_queue": lambda: Worker(sync_queue.async_queue),
        "sync_task_queue": lambda: Worker(sync_queue),
        "backend": lambda: Worker(sync_queue.backend),
        "backend_kw": lambda: Worker(backend=sync_queue.backend),
    }[source]()
    task_id = sync_queue.enqueue(add, 3, 4)
    assert worker.process_task(task_id).value == 7
    assert worker.backend is sync_queue.backend
    sync_queue.close()


def test_blocking_calls_inside_a_running_loop_are_clear_errors(tmp_path: Path) -> None:
    async def main() -> None:
        worker = Worker(SQLiteBackend(tmp_path / "q.db"))
        with pytest.raises(EventLoopMisuse, match=r"await worker\.start"):
            worker.run(duration=1)
        await worker.backend.close()

    asyncio.run(main())


def test_sync_stop_from_inside_a_task_does_not_deadlock(tmp_path: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    worker = Worker(queue, worker_type="thread", poll_interval=0.05)
    REGISTRY["own-thread"] = worker
    # from one of its own tasks, stop() requests the stop and returns at once
    task_id = queue.enqueue(stop_registered, "own-thread")
    began = time.monotonic()
    worker.run(duration=20)
    assert time.monotonic() - began < 10
    assert queue.get_result(task_id, timeout=0).value == "requested"
    queue.close()


def test_sync_stop_of_a_worker_running_on_another_threads_loop(tmp_path: Path) -> None:
    store = SQLiteBackend(tmp_path / "q.db")
    worker = Worker(store, poll_interval=0.05)

    async def serve() -> None:
        await worker.start()

    thread = threading.Thread(target=lambda: asyncio.run(serve()))
    thread.start()
    wait_until(lambda: worker.is_running, what="worker started")
    worker.stop()
    assert not worker.is_running
    thread.join(5)
    assert not thread.is_alive()
    asyncio.run(store.close())


def test_async_stop_of_a_worker_started_from_plain_code(tmp_path: Path) -> None:
    store = SQLiteBackend(tmp_path / "q.db")
    worker = Worker(store, poll_interval=0.05)
    worker.start()

    async def main() -> None:
        await asyncio.wait_for(worker.stop(), 10)

    asyncio.run(main())
    assert not worker.is_running
    worker.stop()  # idempotent
    asyncio.run(store.close())


# -- real processes: Ctrl-C and interpreter exit -----------------------------------------------

_CTRL_C_SCRIPT = """
import sys, time
from sitq import SQLiteBackend, SyncTaskQueue, Worker

def slow(seconds):
    sys.stdout.write("running\\n")
    sys.stdout.flush()
    time.sleep(seconds)
    return "finished"

if __name__ == "__main__":
    queue = SyncTaskQueue(SQLiteBackend(sys.argv[1]))
    for _ in range(4):
        queue.enqueue(slow, float(sys.argv[2]))
    worker = Worker(queue, max_workers=2, poll_interval=0.05,
                    graceful_shutdown=float(sys.argv[3]))
    try:
        worker.run()  # runs until Ctrl-C
    except KeyboardInterrupt:
        print("Worker stopped by user", flush=True)
    queue.close()
"""


def _run_and_interrupt(
    tmp_path: Path, seconds: float, grace: float, signals: int
) -> tuple[dict[TaskStatus, int], str]:
    script = tmp_path / "ctrl_c.py"
    script.write_text(textwrap.dedent(_CTRL_C_SCRIPT))
    db = tmp_path / "q.db"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(db), str(seconds), str(grace)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "running" in proc.stdout.readline()
        for _ in range(signals):
            time.sleep(0.1)
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Worker stopped by user" in out
    return _stored_statuses(str(db)), err


def _stored_statuses(db: str) -> dict[TaskStatus, int]:
    queue = SyncTaskQueue(SQLiteBackend(db))
    try:
        return queue.counts()
    finally:
        queue.close()


def test_ctrl_c_lets_in_flight_tasks_finish(tmp_path: Path) -> None:
    counts, err = _run_and_interrupt(tmp_path, seconds=0.5, grace=30, signals=1)
    # the two in flight finished, the rest were never started
    assert counts[TaskStatus.RUNNING] == 0, (counts, err)
    assert counts[TaskStatus.SUCCEEDED] == 2 and counts[TaskStatus.PENDING] == 2, (counts, err)


def test_ctrl_c_after_the_grace_period_hands_tasks_back(tmp_path: Path) -> None:
    counts, err = _run_and_interrupt(tmp_path, seconds=30, grace=0.2, signals=1)
    assert counts[TaskStatus.RUNNING] == 0, (counts, err)
    assert counts[TaskStatus.PENDING] == 4, (counts, err)


def test_second_ctrl_c_hands_tasks_back_at_once(tmp_path: Path) -> None:
    began = time.monotonic()
    counts, err = _run_and_interrupt(tmp_path, seconds=30, grace=30, signals=2)
    assert time.monotonic() - began < 15
    assert counts[TaskStatus.RUNNING] == 0 and counts[TaskStatus.PENDING] == 4, (counts, err)


@pytest.mark.parametrize("worker_type", ["async", "process"])
def test_a_background_worker_is_stopped_gracefully_at_exit(
    worker_type: str, tmp_path: Path
) -> None:
    script = tmp_path / "exit.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, time
            from sitq import SQLiteBackend, SyncTaskQueue, Worker

            def slow():
                time.sleep(0.3)
                return "finished"

            if __name__ == "__main__":
                queue = SyncTaskQueue(SQLiteBackend(sys.argv[1]))
                task_id = queue.enqueue(slow)
                worker = Worker(queue, worker_type=sys.argv[2], poll_interval=0.05)
                worker.start()
                while worker.get_status().current_task_id != task_id:
                    time.sleep(0.01)
                # no worker.stop(): the interpreter exits with the task in flight
            """
        )
    )
    db = tmp_path / "q.db"
    done = subprocess.run(
        [sys.executable, str(script), str(db), worker_type],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    counts = _stored_statuses(str(db))
    assert counts[TaskStatus.SUCCEEDED] == 1 and counts[TaskStatus.RUNNING] == 0


_ASYNCIO_RUN_SCRIPT = """
import asyncio, signal, sys, time
from sitq import SQLiteBackend, SyncTaskQueue, Worker

def slow():
    # say "running" (the test's cue for Ctrl-C) only once asyncio.run has put in its Ctrl-C
    # handler: on a loaded machine the task can start before the main thread gets there, and
    # a Ctrl-C then interrupts the script before it awaits the worker
    deadline = time.monotonic() + 30
    while signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        assert time.monotonic() < deadline, "asyncio.run never installed its Ctrl-C handler"
        time.sleep(0.005)
    sys.stdout.write("running\\n")
    sys.stdout.flush()
    time.sleep(0.5)
    return "finished"

if __name__ == "__main__":
    queue = SyncTaskQueue(SQLiteBackend(sys.argv[1]))
    task_id = queue.enqueue(slow)
    worker = Worker(queue, poll_interval=0.05)
    try:
        asyncio.run(worker.start())  # start() from plain code, awaited: serves until Ctrl-C
    except KeyboardInterrupt:
        print("interrupted", queue.get_task(task_id).status.value, worker.is_running)
    queue.close()
"""


def test_asyncio_run_of_start_serves_until_ctrl_c(tmp_path: Path) -> None:
    script = tmp_path / "serve.py"
    script.write_text(textwrap.dedent(_ASYNCIO_RUN_SCRIPT))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "q.db")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "running" in proc.stdout.readline()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "interrupted succeeded False" in out, (out, err)


def test_async_sleep_task_is_cancelled_and_handed_back_on_stop(tmp_path: Path) -> None:
    async def main() -> None:
        queue = TaskQueue(make_backend("sqlite", tmp_path))
        task_id = await queue.enqueue(async_sleep_then, 30)
        worker = Worker(queue, poll_interval=0.05, graceful_shutdown=0.1)
        job = asyncio.create_task(worker.start())
        await await_until(lambda: worker.get_status().current_task_id == task_id)
        await asyncio.wait_for(worker.stop(), 10)
        await job
        record = await queue.backend.get_task(task_id)
        assert record is not None
        assert record.status is TaskStatus.PENDING and record.attempts == 0
        await queue.close()

    asyncio.run(main())


def test_pid_is_not_a_child(tmp_path: Path) -> None:
    # the worker never forks the test process: tasks of async/thread workers run here
    queue = SyncTaskQueue(make_backend("memory", tmp_path))
    task_id = queue.enqueue(os.getpid)
    assert Worker(queue).process_task(task_id).value == os.getpid()
    queue.close()
