"""`sitq_postgres.blocking`: the private event loop each calling thread gets for blocking
enqueues, its pool closed when the thread ends or the backend closes, and the async path's
retries after a lost connection."""

from __future__ import annotations

import asyncio
import gc
import threading
import uuid
from collections.abc import Iterator

import asyncpg
import pytest
from pg_support import PG_URL

from sitq import SyncTaskQueue, TaskStatus
from sitq.conformance import make_record
from sitq.errors import QueueClosed
from sitq_postgres import PostgresBackend

pytestmark = pytest.mark.postgres


@pytest.fixture
def app_name() -> str:
    """An application_name no other test uses: its connections can be counted and killed."""
    return f"sitq_blocking_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def backend(pg_url: str, app_name: str) -> Iterator[PostgresBackend]:
    """A connected backend whose connections carry ``app_name``."""
    made = PostgresBackend(f"{pg_url}&application_name={app_name}")
    asyncio.run(made.connect())
    yield made
    asyncio.run(made.close())


async def _connections(app_name: str, *, kill: bool = False) -> int:
    conn = await asyncpg.connect(PG_URL)
    try:
        what = "pg_terminate_backend(pid)" if kill else "pid"
        rows = await conn.fetch(
            f"SELECT {what} FROM pg_stat_activity WHERE application_name = $1 "
            "AND pid <> pg_backend_pid()",
            app_name,
        )
        return len(rows)
    finally:
        await conn.close()


def _connections_soon(app_name: str, expected: int) -> int:
    """The count of ``app_name``'s connections once it is ``expected`` (a closed connection
    leaves pg_stat_activity a moment after its client closed it), or the last count seen."""
    for _ in range(200):
        found = asyncio.run(_connections(app_name))
        if found == expected:
            return found
        threading.Event().wait(0.05)
    return found


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def _in_thread(backend: PostgresBackend, loops: list[asyncio.AbstractEventLoop]) -> None:
    def enqueue() -> None:
        backend.enqueue_many_blocking([make_record()])
        loops.append(backend._threads.run(_running_loop))

    thread = threading.Thread(target=enqueue)
    thread.start()
    thread.join(60)


def test_an_ended_threads_loop_and_pool_are_closed(backend: PostgresBackend, app_name: str) -> None:
    loops: list[asyncio.AbstractEventLoop] = []
    for _ in range(3):
        _in_thread(backend, loops)
    gc.collect()
    assert len(loops) == 3 and all(loop.is_closed() for loop in loops)
    assert _connections_soon(app_name, 0) == 0  # the backend's own pool opened none
    assert asyncio.run(backend.counts())[TaskStatus.PENDING] == 3


def test_close_closes_the_pools_of_live_threads(pg_url: str, app_name: str) -> None:
    backend = PostgresBackend(f"{pg_url}&application_name={app_name}")
    asyncio.run(backend.connect())
    stored, stop = threading.Barrier(4), threading.Event()
    outcomes: list[BaseException | None] = []

    def enqueue_and_stay() -> None:
        backend.enqueue_many_blocking([make_record()])
        stored.wait(30)
        stop.wait(30)
        try:
            backend.enqueue_many_blocking([make_record()])
            outcomes.append(None)
        except BaseException as exc:  # checked below
            outcomes.append(exc)

    threads = [threading.Thread(target=enqueue_and_stay) for _ in range(3)]
    for t in threads:
        t.start()
    stored.wait(30)
    assert asyncio.run(_connections(app_name)) >= 3
    asyncio.run(backend.close())
    stop.set()
    for t in threads:
        t.join(30)
    assert len(outcomes) == 3 and all(isinstance(o, QueueClosed) for o in outcomes), outcomes
    assert _connections_soon(app_name, 0) == 0


def test_a_lost_connection_is_retried(pg_url: str, app_name: str) -> None:
    with SyncTaskQueue(f"{pg_url}&application_name={app_name}") as queue:
        first = queue.enqueue(print, 1)
        assert asyncio.run(_connections(app_name, kill=True)) >= 1
        second = queue.enqueue(print, 2)
        assert {t.id for t in asyncio.run(queue.backend.list_tasks())} == {first, second}
