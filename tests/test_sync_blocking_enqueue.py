"""`SyncTaskQueue` on a backend with `Capability.BLOCKING_ENQUEUE` stores tasks in the calling
thread, and that path keeps everything the event-loop path does: the records (options,
headers, signing, payload limit), the ``sitq_task_enqueued`` hook, the refusals.

Every test runs on a SQLite file and on the memory backend (blocking), and on SQLite
``:memory:`` (no second connection: the queue's event loop), which must behave the same.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import sitq
from sitq import SyncTaskQueue
from sitq.backend import Backend, Capability
from sitq.errors import ConfigurationError, EventLoopMisuse, QueueClosed
from sitq.hookspecs import hookimpl
from sitq.plugins import PluginManager
from sitq_memory import MemoryBackend
from sitq_sqlite import SQLiteBackend

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_memory]

KEY = b"k" * 32


def add(a: int, b: int) -> int:
    """A task."""
    return a + b


@pytest.fixture(params=["sqlite-file", "memory", "sqlite-in-memory"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A backend; only ``sqlite-in-memory`` lacks the blocking enqueue."""
    made: Backend
    if request.param == "sqlite-file":
        made = SQLiteBackend(tmp_path / "tasks.db")
    elif request.param == "memory":
        made = MemoryBackend()
    else:
        made = SQLiteBackend(":memory:")
    assert made.supports(Capability.BLOCKING_ENQUEUE) == (request.param != "sqlite-in-memory")
    yield made
    asyncio.run(made.close())


class Listens:
    """Records each ``sitq_task_enqueued`` call, the thread it ran in and whether an event
    loop ran there."""

    def __init__(self) -> None:
        self.seen: list[tuple[str | None, int, bool]] = []

    @hookimpl
    def sitq_task_enqueued(self, task: sitq.Task) -> None:
        self.seen.append((task.id, threading.get_ident(), _loop_running()))


class ListensAsync:
    """The same as an ``async def`` hook (awaited on the queue's event loop)."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []

    @hookimpl
    async def sitq_task_enqueued(self, task: sitq.Task) -> None:
        await asyncio.sleep(0)
        self.seen.append(task.id)


class Raises:
    """A hook that fails: logged, and the enqueue goes on."""

    @hookimpl
    def sitq_task_enqueued(self, task: sitq.Task) -> None:
        raise RuntimeError("hook failed")


class AddsHeaders:
    """Headers on every task."""

    @hookimpl
    def sitq_enqueue_headers(self, task: sitq.Task) -> Any:
        return {"tenant": "t1"}


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def test_the_enqueued_hook_fires_once_per_task(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    plain, awaited = Listens(), ListensAsync()
    plugins = PluginManager(autoload=False, plugins=[plain, Raises(), awaited, AddsHeaders()])
    with (
        caplog.at_level(logging.ERROR, logger="sitq"),
        SyncTaskQueue(backend, plugins=plugins) as queue,
    ):
        one = queue.enqueue(add, 1, 2)
        many = queue.enqueue_many([(add, (1, 2)), sitq.Task(add, (3, 4))])
        stored = [queue.get_task(task_id) for task_id in [one, *many]]
    assert [task_id for task_id, _, _ in plain.seen] == [one, *many]
    assert awaited.seen == [one, *many]
    assert [task.meta for task in stored if task is not None] == [{"tenant": "t1"}] * 3
    assert len([r for r in caplog.records if "raised; ignored" in r.getMessage()]) == 3
    if backend.supports(Capability.BLOCKING_ENQUEUE):  # in the caller's thread, no loop there
        assert {(thread, running) for _, thread, running in plain.seen} == {
            (threading.get_ident(), False)
        }


def test_the_records_are_those_of_the_event_loop_path(backend: Backend, tmp_path: Path) -> None:
    """Options, dedupe keys and eta stored as through the event loop (``:memory:``)."""
    options: dict[str, Any] = {
        "priority": 4, "queue": "mail", "max_retries": 2, "timeout": 1.5, "dedupe_key": "d",
        "eta": timedelta(hours=1),
    }  # fmt: skip
    fields = ("function", "serializer", "queue", "priority", "max_retries", "timeout",
              "dedupe_key", "meta", "status", "attempts")  # fmt: skip
    got = []
    for used in (backend, SQLiteBackend(":memory:")):
        with SyncTaskQueue(used) as queue:
            first = queue.enqueue(add, 1, 2, **options)
            assert queue.enqueue(add, 5, 6, **options) == first  # a dedupe hit
            (record,) = asyncio.run(used.list_tasks())
            task = queue.get_task(first)
            assert task is not None and task.args == (1, 2)
            assert 3599 < record.available_at - record.created_at <= 3600
            got.append(tuple(getattr(record, name) for name in fields))
        asyncio.run(used.close())
    assert got[0] == got[1]


def test_signing_and_the_payload_limit_hold(backend: Backend) -> None:
    with SyncTaskQueue(backend, secret_key=KEY, max_payload_bytes=2000) as queue:
        task_id = queue.enqueue(add, 1, 2)
        task = queue.get_task(task_id)
        assert task is not None and task.args == (1, 2)
        with pytest.raises(ConfigurationError, match="max_payload_bytes"):
            queue.enqueue(add, "x" * 5000, 1)
        with pytest.raises(ConfigurationError, match="max_payload_bytes"):
            queue.enqueue_many([(add, (1, 2)), (add, ("x" * 5000, 1))])
        assert sum(queue.counts().values()) == 1
    with SyncTaskQueue(backend, secret_key=b"another key, 32 bytes long......") as other:
        unsigned = other.get_task(task_id)
        assert unsigned is not None and unsigned.args == ()  # its signature does not check


def test_declared_tasks_enqueue_on_the_same_path(backend: Backend) -> None:
    listens = Listens()
    with SyncTaskQueue(backend, plugins=PluginManager(autoload=False, plugins=[listens])) as queue:

        @queue.task(queue="q", priority=2)
        def double(x: int) -> int:
            return 2 * x

        handle = double.enqueue(21)
        again = double.options(dedupe_key="once").enqueue(1)
        assert double.options(dedupe_key="once").enqueue(2) == again
        task = queue.get_task(handle.id)
        assert task is not None and (task.queue, task.priority, task.args) == ("q", 2, (21,))
    assert [task_id for task_id, _, _ in listens.seen] == [handle.id, again.id, again.id]


def test_refusals_are_the_same(backend: Backend) -> None:
    queue = SyncTaskQueue(backend)
    with pytest.raises(ConfigurationError, match="needs a function"):
        queue.enqueue(42)  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError):
        queue.enqueue(add, 1, 2, priority="high")  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match="takes no other arguments"):
        queue.enqueue(sitq.Task(add, (1, 2)), 3)

    async def inside_a_loop() -> None:
        with pytest.raises(EventLoopMisuse):
            queue.enqueue(add, 1, 2)
        with pytest.raises(EventLoopMisuse):
            queue.enqueue_many([(add, (1, 2))])

    asyncio.run(inside_a_loop())
    assert queue.enqueue_many([]) == []
    queue.close()
    with pytest.raises(QueueClosed):
        queue.enqueue(add, 1, 2)
    with pytest.raises(QueueClosed):
        queue.enqueue_many([(add, (1, 2))])
