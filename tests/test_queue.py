"""`TaskQueue`, the async API: enqueue, enqueue_many, get_result, get_task, close.

Real SQLite files in ``tmp_path`` and real workers in this process.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from sitq import Task, TaskQueue, TaskStatus, Worker
from sitq.eager import EagerTaskQueue
from sitq.errors import ConfigurationError, QueueClosed, ResultTimeout, TaskNotFound
from sitq_sqlite import SQLiteBackend

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_memory]

WAIT = 30  # bound on every wait for a result; a passing test needs a fraction of a second


def add(a: int, b: int) -> int:
    return a + b


def greet(name: str, *, punctuation: str = "!") -> str:
    return f"hello {name}{punctuation}"


def explode(message: str) -> None:
    raise ValueError(message)


async def double_later(x: int) -> int:
    await asyncio.sleep(0.01)
    return 2 * x


def run(body: Callable[[], Awaitable[None]]) -> None:
    """Run ``body`` in a fresh event loop, bounded so a hang fails the test."""

    async def bounded() -> None:
        await asyncio.wait_for(body(), 60)

    asyncio.run(bounded())


class running:
    """``async with running(queue) as worker``: a worker serving ``queue`` in this loop."""

    def __init__(self, queue: TaskQueue, **options: Any) -> None:
        self.worker = Worker(queue, poll_interval=0.05, **options)

    async def __aenter__(self) -> Worker:
        self._serving = asyncio.create_task(self.worker.start())
        return self.worker

    async def __aexit__(self, *exc: object) -> None:
        await self.worker.stop()
        await self._serving


def test_enqueue_and_get_task(tmp_path: Path) -> None:
    async def body() -> None:
        async with TaskQueue(f"sqlite:///{tmp_path / 'tasks.db'}") as queue:
            task_id = await queue.enqueue(greet, "sitq", punctuation="?")
            assert isinstance(task_id, str) and len(task_id) == 32
            task = await queue.get_task(task_id)
            assert task is not None
            assert task.id == task_id
            assert task.function is greet or task.function_name == "test_queue:greet"
            assert task.args == ("sitq",) and task.kwargs == {"punctuation": "?"}
            assert task.status is TaskStatus.PENDING and task.attempts == 0
            assert task.queue == "default" and task.priority == 0
            assert task.created_at is not None and task.created_at.tzinfo is not None
            assert await queue.get_task("0" * 32) is None

    run(body)


def test_enqueue_options_are_stored(tmp_path: Path) -> None:
    async def body() -> None:
        async with TaskQueue(f"sqlite:///{tmp_path / 'tasks.db'}") as queue:
            eta = datetime.now(timezone.utc) + timedelta(hours=2)
            task_id = await queue.enqueue(
                add, 1, 2, eta=eta, priority=7, queue="emails", max_retries=3, timeout=9.5,
                dedupe_key="k1",
            )  # fmt: skip
            task = await queue.get_task(task_id)
            assert task is not None
            assert task.priority == 7 and task.queue == "emails"
            assert task.max_retries == 3 and task.timeout == 9.5 and task.dedupe_key == "k1"
            assert isinstance(task.eta, datetime) and abs((task.eta - eta).total_seconds()) < 0.01
            # a pending task with the same dedupe key is not stored twice
            assert await queue.enqueue(add, 5, 5, dedupe_key="k1") == task_id
            # a Task carries options that would clash with the function's own keywords
            clash = Task(greet, args=("x",), kwargs={"punctuation": "."}, priority=2)
            clash_id = await queue.enqueue(clash)
            stored = await queue.get_task(clash_id)
            assert stored is not None and stored.kwargs == {"punctuation": "."}
            assert stored.priority == 2
            assert (await queue.counts())[TaskStatus.PENDING] == 2

    run(body)


def test_enqueue_a_task_with_other_arguments_is_refused(tmp_path: Path) -> None:
    async def body() -> None:
        async with TaskQueue("memory://") as queue:
            with pytest.raises(ConfigurationError, match="takes no other arguments"):
                await queue.enqueue(Task(add, args=(1, 2)), 3)

    run(body)


def test_enqueue_many_forms_and_order(tmp_path: Path) -> None:
    async def body() -> None:
        async with TaskQueue(f"sqlite:///{tmp_path / 'tasks.db'}") as queue:
            assert await queue.enqueue_many([]) == []
            items: list[Any] = [
                Task(add, args=(1, 1)),
                (add, (2, 2)),
                (greet, ("you",), {"punctuation": "."}),
                (add, [3, 3]),
            ]
            ids = await queue.enqueue_many(items)
            assert len(ids) == 4 and len(set(ids)) == 4
            async with running(queue):
                results = [await queue.get_result(i, timeout=WAIT) for i in ids]
            assert [r.value for r in results] == [2, 4, "hello you.", 6]
            assert all(r.is_success and r.status is TaskStatus.SUCCEEDED for r in results)

    run(body)


def test_enqueue_many_is_all_or_nothing(tmp_path: Path) -> None:
    async def body() -> None:
        async with TaskQueue(f"sqlite:///{tmp_path / 'tasks.db'}") as queue:
            items: list[Any] = [(add, (1, 2)), (add, (3, 4)), 42]
            with pytest.raises(ConfigurationError, match="enqueue_many items must be"):
                await queue.enqueue_many(items)
            lock = threading.Lock()
            with pytest.raises(Exception, match=r"_thread\.lock"):
                await queue.enqueue_many([(add, (1, 2)), (add, (lock, 4))])
            assert sum((await queue.counts()).values()) == 0

    run(body)


@pytest.mark.parametrize("kind", [TaskQueue, EagerTaskQueue])
def test_every_enqueue_path_refuses_a_call_over_max_payload_bytes(
    kind: type[TaskQueue], tmp_path: Path
) -> None:
    """``enqueue_many`` with plain ``(fn, args)`` tuples once stored what ``enqueue`` refused."""
    big = b"x" * 2000

    async def body() -> None:
        async with kind(f"sqlite:///{tmp_path / 'tasks.db'}", max_payload_bytes=1000) as queue:
            with pytest.raises(ConfigurationError, match="over this queue's max_payload_bytes"):
                await queue.enqueue(add, big, 1)
            with pytest.raises(ConfigurationError) as refused:
                await queue.enqueue(Task(add, args=(big, 1)))
            batches: list[list[Any]] = [
                [(add, (big, 1))],
                [(add, (1, 2)), (add, (big, 1), {})],
                [Task(add, args=(1, 2)), Task(add, args=(big, 1))],
            ]
            for batch in batches:
                with pytest.raises(ConfigurationError) as by_batch:
                    await queue.enqueue_many(batch)
                assert str(by_batch.value) == str(refused.value)
            if kind is TaskQueue:  # refused before the backend is asked to use the connection
                with pytest.raises(ConfigurationError, match="max_payload_bytes"):
                    await queue.enqueue_many([(add, (big, 1))], connection=object())
            assert sum((await queue.counts()).values()) == 0  # nothing of any batch stored
            task_id = await queue.enqueue(add, b"x" * 500, b"")  # under the limit: stored
            pending = 0 if kind is EagerTaskQueue else 1  # an eager queue ran it already
            assert (await queue.counts())[TaskStatus.PENDING] == pending
            assert await queue.get_task(task_id) is not None

    run(body)


def test_enqueue_many_of_thousands(tmp_path: Path) -> None:
    async def body() -> None:
        async with TaskQueue(f"sqlite:///{tmp_path / 'tasks.db'}") as queue:
            ids = await queue.enqueue_many([(add, (n, n)) for n in range(3000)])
            assert len(set(ids)) == 3000
            async with running(queue, max_workers=50):
                last = await queue.get_result(ids[-1], timeout=WAIT)
                assert last.value == 2 * 2999
                results = [await queue.get_result(i, timeout=WAIT) for i in ids]
            assert [r.value for r in results] == [2 * n for n in range(3000)]

    run(body)


def test_get_result_of_a_failure(tmp_path: Path) -> None:
    async def body() -> None:
        async with TaskQueue(f"sqlite:///{tmp_path / 'tasks.db'}") as queue:
            task_id = await queue.enqueue(explode, "the widget broke")
            async with running(queue, log_errors=False):
                result = await queue.get_result(task_id, timeout=WAIT)
            assert result.status is TaskStatus.FAILED
            assert result.is_error and not result.is_success and result.value is None
            assert result.error is not None and "ValueError: the widget broke" in result.error
            assert result.traceback is not None and "explode" in result.traceback
            assert result.attempts == 1
            assert result.finished_at is not None and result.started_at is not None

    run(body)


def test_get_result_of_a_coroutine_function(tmp_path: Path) -> None:
    async def body() -> None:
        async with TaskQueue(f"sqlite:///{tmp_path / 'tasks.db'}") as queue:
            ids = [await queue.enqueue(double_later, n) for n in range(20)]
            async with running(queue):
                values = await asyncio.gather(*(queue.get_result(i, timeout=WAIT) for i in ids))
            assert [r.value for r in values] == [2 * n for n in range(20)]

    run(body)


#: Set when a result wait has begun (see `SignalOnlyBackend`); `held` waits for it.
RESULT_AWAITED = threading.Event()


def held(x: int) -> int:
    """Return ``x + 1`` once someone waits for this task's result."""
    assert RESULT_AWAITED.wait(WAIT), "get_result never started waiting"
    return x + 1


class SignalOnlyBackend(SQLiteBackend):
    """A SQLite backend whose result waits never poll: only an in-process finish wakes them.

    `RESULT_AWAITED` is set (on the loop, once the waiter is registered) each time a result
    wait begins, so a task can be held until its caller waits for it.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.woken_by_finish = 0

    async def wait_for_finish(self, timeout: float) -> None:
        asyncio.get_running_loop().call_soon(RESULT_AWAITED.set)
        if await self.finished_signal.wait(WAIT):
            self.woken_by_finish += 1


def test_get_result_wakes_when_a_worker_in_this_process_finishes(tmp_path: Path) -> None:
    db = tmp_path / "tasks.db"
    backend = SignalOnlyBackend(db)
    RESULT_AWAITED.clear()

    async def body() -> None:
        async with TaskQueue(backend) as queue:
            task_id = await queue.enqueue(held, 41)
            # the worker has its own backend object on the same file: they share wake-ups
            async with TaskQueue(SQLiteBackend(db)) as worker_queue, running(worker_queue):
                result = await queue.get_result(task_id, timeout=WAIT)
            assert result.value == 42
            assert backend.woken_by_finish >= 1

    run(body)


def test_get_result_timeout_and_unknown_ids(tmp_path: Path) -> None:
    async def body() -> None:
        async with TaskQueue(f"sqlite:///{tmp_path / 'tasks.db'}") as queue:
            task_id = await queue.enqueue(add, 1, 2)
            with pytest.raises(ResultTimeout, match=f"task {task_id} is still pending after 0.2"):
                await queue.get_result(task_id, timeout=0.2)
            with pytest.raises(ResultTimeout):
                await queue.get_result(task_id, timeout=0)
            with pytest.raises(TimeoutError):  # ResultTimeout is a TimeoutError too
                await queue.get_result(task_id, timeout=0)
            with pytest.raises(TaskNotFound, match="no task with id 'nope'"):
                await queue.get_result("nope", timeout=5)
            with pytest.raises(TaskNotFound):
                await queue.get_result("nope")  # no timeout: still answers at once
            with pytest.raises(KeyError):  # TaskNotFound is a KeyError too
                await queue.get_result("nope", timeout=0)
            with pytest.raises(ConfigurationError, match="timeout must be a finite number"):
                await queue.get_result(task_id, timeout=-1)

    run(body)


def test_close_and_async_with(tmp_path: Path) -> None:
    async def body() -> None:
        queue = TaskQueue(f"sqlite:///{tmp_path / 'tasks.db'}")
        task_id = await queue.enqueue(add, 1, 2)  # connects on first use
        assert not queue.closed
        await queue.close()
        await queue.close()  # idempotent
        assert queue.closed
        with pytest.raises(QueueClosed, match="create a new one"):
            await queue.enqueue(add, 1, 2)
        with pytest.raises(QueueClosed):
            await queue.get_task(task_id)

        async with TaskQueue(f"sqlite:///{tmp_path / 'tasks.db'}") as reopened:
            task = await reopened.get_task(task_id)
            assert task is not None and task.args == (1, 2)
        assert reopened.closed

        # the queue closes when the body raises, and the error goes through
        with pytest.raises(RuntimeError, match="inside"):
            async with TaskQueue(f"sqlite:///{tmp_path / 'tasks.db'}") as failing:
                raise RuntimeError("inside")
        assert failing.closed

    run(body)


def test_sqlite_urls_relative_and_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    async def body() -> None:
        async with TaskQueue("sqlite:///x.db") as relative:
            await relative.enqueue(add, 1, 2)
        assert (tmp_path / "x.db").is_file()
        absolute = tmp_path / "sub" / "abs.db"
        absolute.parent.mkdir()
        async with TaskQueue(f"sqlite:///{absolute}") as queue:
            await queue.enqueue(add, 1, 2)
            assert isinstance(queue.backend, SQLiteBackend)
        assert absolute.is_file()

    run(body)


def test_the_default_backend_is_sitq_db_in_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    async def body() -> None:
        async with TaskQueue() as queue:
            task_id = await queue.enqueue(add, 20, 22)
            assert isinstance(queue.backend, SQLiteBackend)
            async with running(queue):
                assert (await queue.get_result(task_id, timeout=WAIT)).value == 42
        assert (tmp_path / "sitq.db").is_file()

    run(body)


def test_sitq_backend_url_chooses_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SITQ_BACKEND_URL", f"sqlite:///{tmp_path / 'from_env.db'}")

    async def body() -> None:
        async with TaskQueue() as queue:
            await queue.enqueue(add, 1, 1)
        assert (tmp_path / "from_env.db").is_file()
        assert not (tmp_path / "sitq.db").exists()

    run(body)


def test_two_queues_on_one_file_see_the_same_tasks(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"

    async def body() -> None:
        async with TaskQueue(url) as producer, TaskQueue(url) as consumer:
            task_id = await producer.enqueue(add, 2, 3)
            async with running(consumer):
                assert (await producer.get_result(task_id, timeout=WAIT)).value == 5
            assert (await consumer.get_result(task_id, timeout=0)).value == 5

    run(body)


def test_a_queue_serves_several_event_loops_in_turn(tmp_path: Path) -> None:
    queue = TaskQueue(f"sqlite:///{tmp_path / 'tasks.db'}")
    first = asyncio.run(queue.enqueue(add, 1, 2))
    second = asyncio.run(queue.enqueue(add, 3, 4))

    async def finish() -> list[int]:
        async with running(queue):
            return [(await queue.get_result(i, timeout=WAIT)).value for i in (first, second)]

    assert asyncio.run(finish()) == [3, 7]
    asyncio.run(queue.close())
