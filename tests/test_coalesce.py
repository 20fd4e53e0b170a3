"""Concurrent enqueues share backend round trips (`sitq.coalesce.Coalescer`) without changing
what each caller sees."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from sitq import Task, TaskQueue, TaskStatus
from sitq.coalesce import Coalescer
from sitq.errors import ConfigurationError

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_memory]


def noop() -> None:
    """A task that does nothing."""


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'q.db'}"


def test_concurrent_enqueues_are_all_stored_once(url: str) -> None:
    async def main() -> None:
        async with TaskQueue(url) as queue:
            ids = await asyncio.gather(*(queue.enqueue(noop) for _ in range(300)))
            assert len(set(ids)) == 300
            counts = await queue.counts()
            assert counts[TaskStatus.PENDING] == 300

    asyncio.run(asyncio.wait_for(main(), 60))


def test_concurrent_enqueues_with_one_dedupe_key_get_one_task(url: str) -> None:
    async def main() -> None:
        async with TaskQueue(url) as queue:
            ids = await asyncio.gather(
                *(queue.enqueue(noop, dedupe_key="same") for _ in range(50)),
                *(queue.enqueue(noop) for _ in range(50)),
            )
            assert len(set(ids[:50])) == 1
            assert len(set(ids[50:])) == 50
            assert (await queue.counts())[TaskStatus.PENDING] == 51

    asyncio.run(asyncio.wait_for(main(), 60))


def test_a_bad_enqueue_fails_alone_among_concurrent_ones(url: str) -> None:
    async def main() -> None:
        async with TaskQueue(url) as queue:
            taken = await queue.enqueue(noop)
            results = await asyncio.gather(
                *(queue.enqueue(noop) for _ in range(20)),
                queue.enqueue(Task(noop, id=taken)),
                *(queue.enqueue(noop) for _ in range(20)),
                return_exceptions=True,
            )
            errors = [r for r in results if isinstance(r, BaseException)]
            assert len(errors) == 1 and isinstance(errors[0], ConfigurationError)
            assert isinstance(results[20], ConfigurationError)
            assert (await queue.counts())[TaskStatus.PENDING] == 41

    asyncio.run(asyncio.wait_for(main(), 60))


class _SlowStore:
    """A store whose batch writes take a while, to see how calls are grouped."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def write_many(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        await asyncio.sleep(0.01)
        if any(item < 0 for item in items):
            raise ValueError(f"negative item in {list(items)}")
        return [item * 10 for item in items]


def test_a_lone_call_is_written_at_once_and_later_ones_together() -> None:
    async def main() -> None:
        store = _SlowStore()
        coalescer = Coalescer(store.write_many, max_batch=4)
        results = await asyncio.gather(*(coalescer.submit(i) for i in range(10)))
        assert results == [i * 10 for i in range(10)]
        assert store.batches == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9]]
        assert await coalescer.submit(11) == 110
        assert store.batches[-1] == [11]

    asyncio.run(asyncio.wait_for(main(), 10))


def test_each_caller_gets_its_own_error() -> None:
    async def main() -> None:
        store = _SlowStore()
        coalescer = Coalescer(store.write_many)
        results = await asyncio.gather(
            *(coalescer.submit(i) for i in (1, 2, -3, 4)), return_exceptions=True
        )
        assert results[:2] == [10, 20] and results[3] == 40
        assert isinstance(results[2], ValueError)

    asyncio.run(asyncio.wait_for(main(), 10))


def test_a_caller_cancelled_while_queued_is_left_out() -> None:
    async def main() -> None:
        store = _SlowStore()
        coalescer = Coalescer(store.write_many)
        first = asyncio.ensure_future(coalescer.submit(1))
        await asyncio.sleep(0)  # the first write is in flight
        queued = [asyncio.ensure_future(coalescer.submit(i)) for i in (2, 3)]
        await asyncio.sleep(0)
        queued[0].cancel()
        assert await first == 10
        assert await queued[1] == 30
        assert store.batches == [[1], [3]]

    asyncio.run(asyncio.wait_for(main(), 10))
