"""`SyncTaskQueue`: the blocking facade, in plain scripts, from threads, and misused in a loop."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sitq import SQLiteBackend, SyncTaskQueue, Task, TaskQueue, TaskStatus, Worker
from sitq.errors import (
    ConfigurationError,
    EventLoopMisuse,
    QueueClosed,
    ResultTimeout,
    TaskNotFound,
)

pytestmark = [pytest.mark.needs_sqlite]

PythonRun = Callable[..., subprocess.CompletedProcess[str]]
WAIT = 30


def add(a: int, b: int) -> int:
    return a + b


def explode() -> None:
    raise KeyError("missing")


def test_the_same_surface_blocking(tmp_path: Path) -> None:
    with SyncTaskQueue(f"sqlite:///{tmp_path / 'tasks.db'}") as queue:
        first = queue.enqueue(add, 1, 2, priority=3, queue="maths")
        many = queue.enqueue_many([(add, (n, n)) for n in range(50)] + [Task(explode)])
        task = queue.get_task(first)
        assert task is not None and task.args == (1, 2) and task.priority == 3
        assert task.queue == "maths" and task.status is TaskStatus.PENDING
        assert queue.get_task("missing") is None
        with pytest.raises(ResultTimeout):
            queue.get_result(first, timeout=0.1)
        with pytest.raises(TaskNotFound):
            queue.get_result("missing", timeout=1)
        assert queue.counts()[TaskStatus.PENDING] == 52

        worker = Worker(queue, poll_interval=0.05, log_errors=False)
        worker.start()  # in the background, from plain code
        try:
            assert queue.get_result(first, timeout=WAIT).value == 3
            values = [queue.get_result(i, timeout=WAIT) for i in many]
        finally:
            worker.stop()
        assert [r.value for r in values[:-1]] == [2 * n for n in range(50)]
        assert values[-1].is_error and "KeyError" in (values[-1].error or "")
        assert queue.counts()[TaskStatus.SUCCEEDED] == 51
    with pytest.raises(QueueClosed):
        queue.enqueue(add, 1, 1)


def test_close_is_idempotent_and_reopening_sees_the_tasks(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tasks.db'}"
    queue = SyncTaskQueue(url)
    task_id = queue.enqueue(add, 2, 2)
    queue.close()
    queue.close()
    with SyncTaskQueue(url) as again:
        task = again.get_task(task_id)
        assert task is not None and task.args == (2, 2)


def test_default_backend_in_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with SyncTaskQueue() as queue:
        queue.enqueue(add, 1, 1)
        assert isinstance(queue.backend, SQLiteBackend)
    assert (tmp_path / "sitq.db").is_file()


def test_a_plain_script(python_run: PythonRun, tmp_path: Path) -> None:
    (tmp_path / "jobs.py").write_text("def mul(a, b):\n    return a * b\n")
    done = python_run(
        """
        import json
        from sitq import SyncTaskQueue, Worker
        from jobs import mul

        queue = SyncTaskQueue("sqlite:///script.db")
        ids = [queue.enqueue(mul, n, 10) for n in range(5)]
        worker = Worker(queue, poll_interval=0.05)
        worker.start()
        print(json.dumps([queue.get_result(i, timeout=30).value for i in ids]))
        worker.stop()
        queue.close()
        """,
        path=[tmp_path],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [0, 10, 20, 30, 40]
    assert (tmp_path / "script.db").is_file()


def test_a_script_that_forgets_to_close_still_exits(python_run: PythonRun, tmp_path: Path) -> None:
    done = python_run(
        """
        from sitq import SyncTaskQueue
        queue = SyncTaskQueue("sqlite:///forgot.db")
        print(queue.enqueue(print, "never run"))
        """,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    with SyncTaskQueue(f"sqlite:///{tmp_path / 'forgot.db'}") as queue:
        assert queue.get_task(done.stdout.strip()) is not None


def test_many_threads_enqueue_at_once(tmp_path: Path) -> None:
    threads, per_thread = 8, 60
    barrier = threading.Barrier(threads)
    with SyncTaskQueue(f"sqlite:///{tmp_path / 'tasks.db'}") as queue:

        def produce(t: int) -> list[str]:
            barrier.wait(WAIT)
            ids = []
            for n in range(per_thread):
                if n % 20 == 0:
                    ids += queue.enqueue_many([(add, (t, k)) for k in range(3)])
                else:
                    ids.append(queue.enqueue(add, t, n))
            return ids

        with ThreadPoolExecutor(threads) as pool:
            per = list(pool.map(produce, range(threads)))
        ids = [i for chunk in per for i in chunk]
        assert len(ids) == len(set(ids)) == threads * (per_thread + 2 * 3)
        assert queue.counts()[TaskStatus.PENDING] == len(ids)

        worker = Worker(queue, poll_interval=0.05, max_workers=20)
        worker.start()
        try:
            # and several threads wait for results at once
            def collect(chunk: list[str]) -> list[int]:
                return [queue.get_result(i, timeout=WAIT).value for i in chunk]

            with ThreadPoolExecutor(threads) as pool:
                values = list(pool.map(collect, per))
        finally:
            worker.stop()
        assert all(isinstance(v, int) for chunk in values for v in chunk)
        assert values[3][:3] == [3 + 0, 3 + 1, 3 + 2]  # thread 3's first enqueue_many


def test_inside_a_running_loop_it_says_what_to_do(tmp_path: Path) -> None:
    queue = SyncTaskQueue(f"sqlite:///{tmp_path / 'tasks.db'}")
    task_id = queue.enqueue(add, 1, 2)

    async def misuse() -> list[str]:
        messages = []
        calls: list[Callable[[], object]] = [
            lambda: queue.enqueue(add, 1, 2),
            lambda: queue.enqueue_many([(add, (1, 2))]),
            lambda: queue.get_result(task_id, timeout=1),
            lambda: queue.get_task(task_id),
            lambda: queue.counts(),
        ]
        for call in calls:
            with pytest.raises(EventLoopMisuse) as caught:
                call()
            messages.append(str(caught.value))
        # the async API is the fix the message names, and it works right here
        async with TaskQueue(f"sqlite:///{tmp_path / 'tasks.db'}") as async_queue:
            assert (await async_queue.get_task(task_id)) is not None
        return messages

    messages = asyncio.run(misuse())
    assert "SyncTaskQueue.enqueue() blocks" in messages[0]
    assert "inside a running event loop" in messages[0]
    assert "`await TaskQueue.enqueue()`" in messages[0]
    assert "`await TaskQueue.get_result()`" in messages[2]
    # nothing was stored by the refused calls, and the queue still works outside the loop
    assert queue.counts()[TaskStatus.PENDING] == 1
    queue.close()


def test_event_loop_misuse_is_a_runtime_error() -> None:
    assert issubclass(EventLoopMisuse, RuntimeError)


def test_bad_input_is_refused_before_blocking(tmp_path: Path) -> None:
    with SyncTaskQueue(f"sqlite:///{tmp_path / 'tasks.db'}") as queue:
        with pytest.raises(ConfigurationError):
            queue.enqueue(42)  # type: ignore[call-overload]
        with pytest.raises(ConfigurationError):
            queue.get_result("x", timeout=-5)
        assert sum(queue.counts().values()) == 0
