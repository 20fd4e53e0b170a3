"""Execution strategies: worker_type "async", "thread" and "process", and what timeouts do."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from test_worker_helpers import (
    add,
    async_add,
    async_sleep_then,
    backend_fixture,
    burn_cpu,
    die,
    getpid_after,
    sleep_then,
    thread_name,
)

from sitq import SQLiteBackend, SyncTaskQueue, TaskQueue, TaskStatus, Worker
from sitq.backend import Backend
from sitq.errors import TaskTimeout
from sitq.executors import Call
from sitq.processes import ChildTaskError, ProcessExecutor

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_memory]

backend = backend_fixture()

CANCELLED: list[str] = []


async def cancellable(seconds: float) -> str:
    """Records that it was cancelled (runs in this process)."""
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        CANCELLED.append("cancelled")
        raise
    return "finished"


async def loop_thread_name() -> str:
    """Name of the thread whose loop runs the coroutine."""
    return threading.current_thread().name


def pid_to_file_then_sleep(path: str, seconds: float) -> None:
    """Write this process's pid to ``path``, then sleep."""
    Path(path).write_text(str(os.getpid()))
    time.sleep(seconds)


def backends_in_this_process() -> int:
    """How many sitq backend objects exist in the process running the task."""
    from sitq.backend import Backend

    return sum(1 for obj in gc.get_objects() if isinstance(obj, Backend))


def reversed_bytes(data: bytes) -> bytes:
    """``data`` backwards (a reply as large as the call)."""
    return data[::-1]


def unpicklable_result() -> Any:
    """Returns something that cannot be pickled."""
    return threading.Lock()


def results(queue: SyncTaskQueue, ids: list[str], timeout: float = 20) -> list[Any]:
    """Values of finished tasks, failing the test if one failed."""
    out = []
    for task_id in ids:
        result = queue.get_result(task_id, timeout=timeout)
        assert result.is_success, result.error
        out.append(result.value)
    return out


# -- async --------------------------------------------------------------------------------------


def test_async_runs_coroutines_on_the_loop_and_functions_in_threads(backend: Backend) -> None:
    async def main() -> None:
        queue = TaskQueue(backend)
        worker = Worker(queue, worker_type="async")
        sync_id = await queue.enqueue(thread_name)
        async_id = await queue.enqueue(loop_thread_name)
        sync_result, async_result = await worker.process_tasks_async([sync_id, async_id])
        assert sync_result.value.startswith("sitq-task")
        assert async_result.value == threading.current_thread().name
        await queue.close()

    asyncio.run(main())


def test_async_timeout_cancels_the_coroutine(tmp_path: Path) -> None:
    CANCELLED.clear()

    async def main() -> None:
        queue = TaskQueue(SQLiteBackend(tmp_path / "q.db"))
        worker = Worker(queue, timeout=0.2)
        task_id = await queue.enqueue(cancellable, 30)
        result = await asyncio.wait_for(worker.process_task_async(task_id), 10)
        assert result.status is TaskStatus.FAILED
        assert "TaskTimeout" in (result.error or "") and "0.2 s" in (result.error or "")
        assert CANCELLED == ["cancelled"]
        await queue.close()

    asyncio.run(main())


async def no_op() -> None:
    """Does nothing, on the loop."""


def test_a_worker_has_stored_every_success_when_it_stops(backend: Backend) -> None:
    # a success goes to the outcome writer without its task waiting for the write; the
    # worker still counts it, releases its lease and stores it before start() returns
    async def main() -> None:
        queue = TaskQueue(backend)
        await queue.enqueue_many([no_op] * 30)
        worker = Worker(queue, max_tasks=30, max_workers=4)
        await asyncio.wait_for(worker.start(), 20)
        assert (await queue.counts())[TaskStatus.SUCCEEDED] == 30
        metrics = worker.get_metrics()
        assert metrics.tasks_processed == 30 and metrics.success_rate == 1.0
        assert len(worker._leases) == 0 and not worker._running
        await queue.close()

    asyncio.run(main())


# -- threads ------------------------------------------------------------------------------------


def test_four_sleeping_tasks_on_four_threads_overlap(backend: Backend) -> None:
    queue = SyncTaskQueue(backend)
    ids = [queue.enqueue(sleep_then, 0.5, i) for i in range(4)]
    worker = Worker(queue, worker_type="thread", max_workers=4, poll_interval=0.05)
    began = time.monotonic()
    worker.start()
    assert results(queue, ids) == [0, 1, 2, 3]
    elapsed = time.monotonic() - began
    worker.stop()
    queue.close()
    assert elapsed < 1.5, f"4 x 0.5 s on 4 threads took {elapsed:.2f} s"


def test_thread_worker_runs_coroutine_functions_too(tmp_path: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    worker = Worker(queue, worker_type="thread", max_workers=2)
    ids = [queue.enqueue(async_add, 1, 2), queue.enqueue(add, 3, 4), queue.enqueue(thread_name)]
    values = [r.value for r in worker.process_tasks(ids)]
    assert values[:2] == [3, 7] and values[2].startswith("sitq-task")
    queue.close()


def test_thread_timeout_fails_the_task_and_reclaims_its_slot(tmp_path: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    worker = Worker(queue, worker_type="thread", max_workers=1, poll_interval=0.05)
    stuck = queue.enqueue(sleep_then, 3.0, timeout=0.2)
    quick = queue.enqueue(add, 1, 1)
    began = time.monotonic()
    worker.start()
    failed = queue.get_result(stuck, timeout=10)
    assert failed.status is TaskStatus.FAILED and "TaskTimeout" in (failed.error or "")
    # the one slot went to a fresh thread: the next task did not wait for the stuck one
    assert queue.get_result(quick, timeout=10).value == 2
    assert time.monotonic() - began < 2.5
    worker.stop()
    queue.close()


def test_thread_timeout_of_a_coroutine_cancels_it_on_its_own_loop(tmp_path: Path) -> None:
    CANCELLED.clear()
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    worker = Worker(queue, worker_type="thread", timeout=0.2)
    result = worker.process_task(queue.enqueue(cancellable, 30))
    assert "TaskTimeout" in (result.error or "")
    assert CANCELLED == ["cancelled"]
    queue.close()


def test_a_tasks_own_timeout_wins_over_the_workers(tmp_path: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    worker = Worker(queue, timeout=0.1)
    slow_but_allowed = queue.enqueue(async_sleep_then, 0.3, "ok", timeout=5)
    assert worker.process_task(slow_but_allowed).value == "ok"
    too_slow = queue.enqueue(async_sleep_then, 5, timeout=0.2)
    assert "after 0.2 s" in (worker.process_task(too_slow).error or "")
    queue.close()


# -- processes ----------------------------------------------------------------------------------


def test_cpu_bound_work_runs_in_two_distinct_child_processes(tmp_path: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    ids = [queue.enqueue(burn_cpu, 400_000) for _ in range(4)]
    worker = Worker(queue, worker_type="process", max_workers=2, poll_interval=0.05)
    worker.start()
    values = results(queue, ids)
    worker.stop()
    queue.close()
    pids = {pid for pid, _ in values}
    assert len(pids) == 2 and os.getpid() not in pids
    assert len({checksum for _, checksum in values}) == 1


def test_process_children_never_hold_a_backend(tmp_path: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    worker = Worker(queue, worker_type="process", max_workers=1)
    assert worker.process_task(queue.enqueue(backends_in_this_process)).value == 0
    assert backends_in_this_process() >= 1  # while the parent does
    queue.close()


def test_process_worker_runs_coroutines_lambdas_and_closures(tmp_path: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    worker = Worker(queue, worker_type="process", max_workers=1)
    offset = 10
    ids = [
        queue.enqueue(async_add, 1, 2),
        queue.enqueue(lambda x: x * 2, 21),
        queue.enqueue(lambda: offset + 1),
    ]
    assert [r.value for r in worker.process_tasks(ids)] == [3, 42, 11]
    queue.close()


def test_process_timeout_kills_the_child_and_replaces_it(tmp_path: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    pid_file = tmp_path / "pid"
    worker = Worker(queue, worker_type="process", max_workers=1, poll_interval=0.05)
    stuck = queue.enqueue(pid_to_file_then_sleep, str(pid_file), 30, timeout=0.5)
    after = queue.enqueue(getpid_after, 0)
    worker.start()
    failed = queue.get_result(stuck, timeout=20)
    assert failed.status is TaskStatus.FAILED and "TaskTimeout" in (failed.error or "")
    killed = int(pid_file.read_text())
    replacement = queue.get_result(after, timeout=20).value
    assert replacement != killed
    worker.stop()
    queue.close()
    assert not psutil.pid_exists(killed) or psutil.Process(killed).status() == "zombie"


def test_a_crashing_child_fails_its_task_and_the_worker_goes_on(tmp_path: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    worker = Worker(queue, worker_type="process", max_workers=1)
    crashed, fine = worker.process_tasks([queue.enqueue(die), queue.enqueue(add, 2, 2)])
    assert crashed.status is TaskStatus.FAILED
    assert "ChildTaskError" in (crashed.error or "") and "exit code 3" in (crashed.error or "")
    assert fine.value == 4
    queue.close()


def test_large_calls_and_replies_and_any_value_cross_the_pipe_whole(tmp_path: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    worker = Worker(queue, worker_type="process", max_workers=1)
    big = os.urandom(4 * 2**20)  # far more than a pipe holds: sent from a thread, read in parts

    class Local:  # defined here: its instances go back by value (cloudpickle)
        def __init__(self, n: int) -> None:
            self.n = n

    ids = [
        queue.enqueue(reversed_bytes, big),
        queue.enqueue(reversed_bytes, b"small"),
        queue.enqueue(lambda: {"nested": [1, 2.5, None]}),
        queue.enqueue(lambda: Local(7)),
        queue.enqueue(lambda: "text", timeout=30),
    ]
    large, small, nested, local, timed = worker.process_tasks(ids)
    assert large.value == big[::-1] and small.value == b"llams"
    assert nested.value == {"nested": [1, 2.5, None]}
    assert type(local.value).__name__ == "Local" and local.value.n == 7
    assert timed.value == "text"
    queue.close()


def test_a_child_killed_while_idle_is_replaced_before_it_gets_a_call() -> None:
    async def main() -> None:
        executor = ProcessExecutor(1)
        await executor.start()
        try:
            [victim] = executor.pids
            os.kill(victim, signal.SIGKILL)
            give_up = time.monotonic() + 60
            while executor.pids in ([victim], []):  # until its replacement is there
                assert time.monotonic() < give_up, "the killed child was never replaced"
                await asyncio.sleep(0.01)
            assert await executor.run(Call(os.getpid, (), {})) == executor.pids[0] != victim
        finally:
            await executor.close()

    asyncio.run(main())


def test_a_child_that_dies_in_a_call_is_replaced_once() -> None:
    """Its call fails and the loop sees its pipe end: both report the death, and the pool
    gets one child in its place, not two (two replacements also killed and closed the dead
    child's pipe from two threads at once)."""

    async def main() -> None:
        executor = ProcessExecutor(1)
        await executor.start()
        try:
            for _ in range(3):
                [before] = executor.pids
                with pytest.raises(ChildTaskError):
                    await executor.run(Call(die, (), {}))
                assert await executor.run(Call(add, (2, 2), {})) == 4
                await asyncio.sleep(0.3)  # a second replacement would have started by now
                await asyncio.gather(*executor._replacing)
                assert len(executor.pids) == 1 and executor.pids != [before]
        finally:
            await executor.close()

    asyncio.run(main())


class LoopWithoutReaders(asyncio.SelectorEventLoop):
    """An event loop that cannot watch file descriptors, like Windows' proactor loop."""

    def add_reader(self, fd: Any, callback: Callable[..., Any], *args: Any) -> None:  # type: ignore[override]  # typeshed's is generic over *args
        raise NotImplementedError


def test_on_a_loop_that_cannot_watch_pipes_an_io_thread_reads_the_replies() -> None:
    async def main() -> None:
        executor = ProcessExecutor(1)
        await executor.start()
        try:
            big = os.urandom(2**20)
            assert await executor.run(Call(reversed_bytes, (big,), {})) == big[::-1]
            assert await executor.run(Call(add, (2, 3), {}, timeout=30)) == 5
            with pytest.raises(TaskTimeout):
                await executor.run(Call(time.sleep, (30,), {}, timeout=0.2))
            with pytest.raises(ChildTaskError):
                await executor.run(Call(die, (), {}))
            assert await executor.run(Call(add, (1, 1), {})) == 2  # in a fresh child
        finally:
            await executor.close()

    loop = LoopWithoutReaders()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


def test_exceptions_from_children_keep_their_type_and_remote_traceback(tmp_path: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    worker = Worker(queue, worker_type="process", max_workers=1)
    failed = worker.process_task(queue.enqueue(lambda: 1 / 0))
    assert (failed.error or "").startswith("ZeroDivisionError")
    assert "RemoteTraceback" in (failed.traceback or "") and "<lambda>" in (failed.traceback or "")
    unsendable = worker.process_task(queue.enqueue(unpicklable_result))
    assert "cannot be sent back" in (unsendable.error or "")
    queue.close()


def test_process_timeout_counts_from_the_start_of_the_function(
    tmp_path: Path, monkeypatch: Any
) -> None:
    # a module that takes 0.6 s to import: a fresh child imports it before the call starts
    (tmp_path / "slow_to_import.py").write_text(
        "import time\ntime.sleep(0.6)\n\ndef quick():\n    return 'quick'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import slow_to_import  # type: ignore[import-not-found]

    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    worker = Worker(queue, worker_type="process", max_workers=1)
    result = worker.process_task(queue.enqueue(slow_to_import.quick, timeout=0.3))
    assert result.is_success, result.error
    assert result.value == "quick"
    queue.close()
