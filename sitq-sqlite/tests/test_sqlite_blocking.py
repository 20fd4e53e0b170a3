"""`sitq_sqlite.blocking`: the connection each calling thread gets for blocking enqueues is
set up as the backend's own, and closed when its thread ends or the backend closes."""

from __future__ import annotations

import asyncio
import gc
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sitq import SyncTaskQueue, TaskStatus
from sitq.conformance import make_record
from sitq.errors import ConfigurationError
from sitq_sqlite import SQLiteBackend

pytestmark = [pytest.mark.needs_sqlite]


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[SQLiteBackend]:
    """A connected backend on a fresh file, synchronous=FULL (not the default)."""
    made = SQLiteBackend(tmp_path / "tasks.db", synchronous="FULL", busy_timeout=7)
    asyncio.run(made.connect())
    yield made
    asyncio.run(made.close())


def _open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def _in_threads(count: int, backend: SQLiteBackend) -> None:
    def enqueue() -> None:
        backend.enqueue_many_blocking([make_record()])

    threads = [threading.Thread(target=enqueue) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)


def test_a_thread_connection_has_the_backend_pragmas(backend: SQLiteBackend) -> None:
    def pragmas(conn: sqlite3.Connection) -> tuple[object, ...]:
        return tuple(
            conn.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("journal_mode", "synchronous", "busy_timeout")
        )

    assert backend._threads.run(pragmas) == ("wal", 2, 7000)  # 2: FULL


def test_connections_of_ended_threads_are_closed(backend: SQLiteBackend) -> None:
    for _ in range(3):
        _in_threads(8, backend)
    gc.collect()
    assert backend._threads.open_count() == 0
    assert asyncio.run(backend.counts())[TaskStatus.PENDING] == 24


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_close_closes_the_connections_of_live_threads(tmp_path: Path) -> None:
    before = _open_files()
    backend = SQLiteBackend(tmp_path / "tasks.db")
    asyncio.run(backend.connect())
    stored, stop = threading.Barrier(5), threading.Event()

    def enqueue_and_stay() -> None:
        backend.enqueue_many_blocking([make_record()])
        stored.wait(30)
        stop.wait(30)

    threads = [threading.Thread(target=enqueue_and_stay) for _ in range(4)]
    for t in threads:
        t.start()
    stored.wait(30)
    asyncio.run(backend.close())
    try:
        assert _open_files() <= before
    finally:
        stop.set()
        for t in threads:
            t.join(30)


def test_an_unconnected_backend_says_to_connect(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "tasks.db")
    with pytest.raises(ConfigurationError, match="connect"):
        backend.enqueue_many_blocking([make_record()])
    assert not (tmp_path / "tasks.db").exists()


def test_a_writer_in_another_connection_is_waited_for(backend: SQLiteBackend) -> None:
    """A write lock held elsewhere (another process, here another connection) makes the
    blocking enqueue wait for it, as the busy timeout says, then store."""
    other = sqlite3.connect(backend.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    done = threading.Event()
    ids: list[str] = []

    def enqueue() -> None:
        ids.extend(backend.enqueue_many_blocking([make_record()]))
        done.set()

    thread = threading.Thread(target=enqueue)
    thread.start()
    assert not done.wait(0.2)  # still waiting for the lock
    other.execute("COMMIT")
    other.close()
    thread.join(30)
    assert len(ids) == 1 and asyncio.run(backend.get_task(ids[0])) is not None


def test_a_sync_queue_on_a_new_file_creates_it_first(tmp_path: Path) -> None:
    with SyncTaskQueue(f"sqlite:///{tmp_path / 'new.db'}") as queue:
        task_id = queue.enqueue(print, "hello")
        assert queue.get_task(task_id) is not None
