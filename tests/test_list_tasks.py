"""`Backend.list_tasks` and `Backend.queue_counts`, on every backend installed here.

The monitoring reads behind ``sitq status``, ``sitq failed`` and friends. A backend plugin
passes these unchanged.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from sitq import TaskStatus
from sitq.backend import ALL_STATUSES, Backend, TaskRecord
from sitq.errors import ConfigurationError
from sitq.task import new_task_id
from sitq_memory import MemoryBackend
from sitq_sqlite import SQLiteBackend

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_memory]


class Clock:
    """A clock the test moves by hand, so enqueue times are distinct and known."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "memory"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """A fresh backend with a hand-moved clock (connected inside each test's event loop)."""
    b: Backend = (
        SQLiteBackend(tmp_path / "tasks.db") if request.param == "sqlite" else MemoryBackend()
    )
    b.clock = Clock()
    return b


def run(backend: Backend, body: Callable[[], Awaitable[None]]) -> None:
    """Run ``body`` in a fresh event loop with ``backend`` connected."""

    async def main() -> None:
        await backend.connect()
        try:
            await body()
        finally:
            await backend.close()

    asyncio.run(main())


def in_loop(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Turn ``async def test_…(backend, …)`` into a plain test run by `run`."""

    @functools.wraps(test)
    def wrapper(backend: Backend, **kwargs: Any) -> None:
        run(backend, lambda: test(backend, **kwargs))

    return wrapper


def record(clock: Clock, queue: str = "default", function: str = "m:f") -> TaskRecord:
    clock.now += 1
    return TaskRecord(
        id=new_task_id(),
        function=function,
        payload=b"x",
        serializer="pickle",
        queue=queue,
        available_at=clock.now,
        created_at=clock.now,
    )


async def fill(backend: Backend) -> list[str]:
    """Six tasks: two pending on 'a', one running, one succeeded, one failed, one cancelled."""
    clock: Clock = backend.clock  # type: ignore[assignment]
    ids = [await backend.enqueue(record(clock, queue=q)) for q in "aabbbc"]
    clock.now += 1
    claimed = await backend.claim_by_id(ids[2], worker_id="w1", lease_seconds=60)
    assert claimed is not None and claimed.lease_token
    for tid, ok in ((ids[3], True), (ids[4], False)):
        c = await backend.claim_by_id(tid, worker_id="w2", lease_seconds=60)
        assert c is not None and c.lease_token
        if ok:
            assert await backend.complete(tid, c.lease_token, b"r")
        else:
            assert await backend.fail(tid, c.lease_token, "ValueError: boom", "Traceback …")
    assert await backend.cancel(ids[5])
    return ids


@in_loop
async def test_lists_oldest_first_by_default(backend: Backend) -> None:
    ids = await fill(backend)
    assert [r.id for r in await backend.list_tasks()] == ids


@in_loop
async def test_newest_first(backend: Backend) -> None:
    ids = await fill(backend)
    assert [r.id for r in await backend.list_tasks(order="newest")] == ids[::-1]


@in_loop
async def test_filters_by_status_and_queue(backend: Backend) -> None:
    ids = await fill(backend)
    pending = await backend.list_tasks(statuses=[TaskStatus.PENDING])
    assert [r.id for r in pending] == ids[:2]
    assert all(r.status is TaskStatus.PENDING for r in pending)
    finished = await backend.list_tasks(statuses=[TaskStatus.FAILED, TaskStatus.SUCCEEDED])
    assert [r.id for r in finished] == ids[3:5]
    on_b = await backend.list_tasks(queue="b")
    assert [r.id for r in on_b] == ids[2:5]
    assert await backend.list_tasks(statuses=[TaskStatus.RUNNING], queue="a") == []
    assert await backend.list_tasks(statuses=[]) == []
    assert [r.id for r in await backend.list_tasks(statuses=["cancelled"])] == [ids[5]]  # type: ignore[list-item]


@in_loop
async def test_limit(backend: Backend) -> None:
    ids = await fill(backend)
    assert [r.id for r in await backend.list_tasks(limit=2)] == ids[:2]
    assert [r.id for r in await backend.list_tasks(limit=1, order="newest")] == ids[-1:]
    assert await backend.list_tasks(limit=0) == []
    assert len(await backend.list_tasks(limit=None)) == 6


@in_loop
async def test_records_are_complete(backend: Backend) -> None:
    ids = await fill(backend)
    (running,) = await backend.list_tasks(statuses=[TaskStatus.RUNNING])
    assert running.id == ids[2]
    assert running.worker_id == "w1"
    assert running.attempts == 1
    assert running.started_at is not None and running.lease_expires_at is not None
    assert running.payload == b"x" and running.function == "m:f"
    (failed,) = await backend.list_tasks(statuses=[TaskStatus.FAILED])
    assert failed.error == "ValueError: boom" and failed.traceback == "Traceback …"
    assert failed.finished_at is not None
    (done,) = await backend.list_tasks(statuses=[TaskStatus.SUCCEEDED])
    assert done.result == b"r"


@in_loop
async def test_returns_copies(backend: Backend) -> None:
    ids = await fill(backend)
    first = (await backend.list_tasks(limit=1))[0]
    first.status = TaskStatus.DEAD
    stored = await backend.get_task(ids[0])
    assert stored is not None and stored.status is TaskStatus.PENDING


@in_loop
async def test_ties_keep_enqueue_order(backend: Backend) -> None:
    clock: Clock = backend.clock  # type: ignore[assignment]
    clock.now += 1
    records = [
        TaskRecord(id=new_task_id(), function="m:f", payload=b"", serializer="pickle",
                   available_at=clock.now, created_at=clock.now)
        for _ in range(5)
    ]  # fmt: skip
    ids = await backend.enqueue_many(records)
    assert [r.id for r in await backend.list_tasks()] == ids
    assert [r.id for r in await backend.list_tasks(order="newest")] == ids[::-1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": -1}, "limit"),
        ({"limit": True}, "limit"),
        ({"order": "random"}, "order"),
        ({"statuses": ["lost"]}, "statuses"),
    ],
)
@in_loop
async def test_bad_arguments_are_named(
    backend: Backend, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        await backend.list_tasks(**kwargs)


@in_loop
async def test_queue_counts(backend: Backend) -> None:
    assert await backend.queue_counts() == {}
    await fill(backend)
    counts = await backend.queue_counts()
    assert set(counts) == {"a", "b", "c"}
    for per_queue in counts.values():
        assert set(per_queue) == set(ALL_STATUSES)
    assert counts["a"][TaskStatus.PENDING] == 2
    assert counts["b"][TaskStatus.RUNNING] == 1
    assert counts["b"][TaskStatus.SUCCEEDED] == 1
    assert counts["b"][TaskStatus.FAILED] == 1
    assert counts["c"][TaskStatus.CANCELLED] == 1
    assert sum(sum(c.values()) for c in counts.values()) == 6


@in_loop
async def test_default_queue_counts_agree(backend: Backend) -> None:
    """The base-class default (built on list_tasks) gives what the backend's override gives."""
    await fill(backend)
    assert await Backend.queue_counts(backend) == await backend.queue_counts()
