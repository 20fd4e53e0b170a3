"""Eager mode: tasks run as they are enqueued, through a real worker and a real backend."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sitq import Blueprint, SyncBlueprint, Task, TaskStatus
from sitq.eager import EagerSyncTaskQueue, EagerTaskQueue

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_memory]

calls: list[Any] = []
attempts: dict[str, int] = {}


def add(a: int, b: int) -> int:
    calls.append(("add", a, b))
    return a + b


async def shout(word: str) -> str:
    await asyncio.sleep(0)
    return word.upper()


def fails_twice(key: str) -> str:
    attempts[key] = attempts.get(key, 0) + 1
    if attempts[key] < 3:
        raise ConnectionError(f"attempt {attempts[key]}")
    return "third time lucky"


def always_fails() -> None:
    raise ValueError("nope")


@pytest.fixture(params=["memory://", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return request.param if request.param != "sqlite" else f"sqlite:///{tmp_path / 'e.db'}"


def test_a_task_has_run_when_enqueue_returns(url: str) -> None:
    async def main() -> None:
        async with EagerTaskQueue(url) as queue:
            task_id = await queue.enqueue(add, 2, 3)
            result = await queue.get_result(task_id, timeout=0)
            assert result.is_success and result.value == 5
            assert (
                await queue.get_result(await queue.enqueue(shout, "hi"), timeout=0)
            ).value == "HI"

    asyncio.run(main())


def test_retries_run_before_enqueue_returns() -> None:
    async def main() -> None:
        async with EagerTaskQueue() as queue:  # memory:// by default
            task_id = await queue.enqueue(fails_twice, "a", max_retries=2)
            result = await queue.get_result(task_id, timeout=0)
            assert result.value == "third time lucky" and result.attempts == 3
            failed = await queue.get_result(await queue.enqueue(always_fails), timeout=0)
            assert failed.status is TaskStatus.FAILED and "ValueError: nope" in (failed.error or "")

    asyncio.run(main())


def test_worker_options_and_callbacks() -> None:
    seen: list[Any] = []
    options = {"max_retries": 1, "on_success": lambda tid, value: seen.append(value)}

    async def main() -> None:
        async with EagerTaskQueue(worker_options=options) as queue:
            task_id = await queue.enqueue(fails_twice, "b")
            assert (await queue.get_result(task_id, timeout=0)).status is TaskStatus.FAILED
            await queue.enqueue(add, 1, 1)

    asyncio.run(main())
    assert seen == [2]


def test_eta_is_ignored_and_enqueue_many_runs_all(url: str) -> None:
    async def main() -> None:
        async with EagerTaskQueue(url) as queue:
            later = await queue.enqueue(add, 1, 2, eta=timedelta(hours=1))
            assert (await queue.get_result(later, timeout=0)).value == 3
            ids = await queue.enqueue_many([Task(add, args=(i, i)) for i in range(3)])
            values = [(await queue.get_result(t, timeout=0)).value for t in ids]
            assert values == [0, 2, 4]

    asyncio.run(main())


def test_sync_eager_queue(url: str) -> None:
    with EagerSyncTaskQueue(url) as queue:
        task_id = queue.enqueue(add, 20, 22)
        assert queue.get_result(task_id, timeout=0).value == 42
        assert queue.get_task(task_id).status is TaskStatus.SUCCEEDED  # type: ignore[union-attr]
        assert queue.worker.worker_id == "eager"


order: list[str] = []
nesting = EagerTaskQueue()  # module level: tasks refer to it by name, it is not pickled


async def inner() -> None:
    order.append("inner")


async def outer() -> None:
    order.append("outer starts")
    await nesting.enqueue(inner)
    order.append("outer ends")


def test_a_task_that_enqueues_runs_the_inner_task_first() -> None:
    async def main() -> None:
        async with nesting:
            await nesting.enqueue(outer)

    asyncio.run(main())
    assert order == ["outer starts", "inner", "outer ends"]


eager_tasks = Blueprint()
eager_sync_tasks = SyncBlueprint()


@eager_tasks.task
async def double(n: int) -> int:
    """Declared on an async blueprint."""
    return 2 * n


@eager_sync_tasks.task
def triple(n: int) -> int:
    """Declared on a plain blueprint."""
    return 3 * n


def test_a_declared_task_has_run_when_its_enqueue_returns(url: str) -> None:
    async def main() -> None:
        async with EagerTaskQueue(url) as queue:
            queue.register(eager_tasks)
            handle = await double.enqueue(21)
            assert (await handle.status()) is TaskStatus.SUCCEEDED
            assert await handle.result(timeout=0) == 42

    asyncio.run(main())
    with EagerSyncTaskQueue(url) as queue:
        queue.register(eager_sync_tasks)
        handle = triple.enqueue(14)
        assert handle.status() is TaskStatus.SUCCEEDED
        assert handle.result(timeout=0) == 42
