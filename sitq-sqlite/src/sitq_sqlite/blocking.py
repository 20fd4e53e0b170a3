"""Enqueueing from plain code without a thread hop: a `sqlite3` connection per calling thread.

An aiosqlite call hops to the connection's thread and back, and a `SyncTaskQueue` call first
hops to its event loop: ~300 µs around a ~50 µs insert. `ThreadConnections` gives each
calling thread a stdlib `sqlite3` connection of its own to the tasks file instead, opened with
the pragmas of the backend's own connection (`opening.connection_pragmas`); SQLite's locking
and busy timeout serialize its writes with every other connection, in this process or another.

A thread's connection is closed when the thread ends (its thread-local slot goes, and with it
the last reference), or by `ThreadConnections.close` for all threads at once.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sitq.errors import QueueClosed

from .database import retry_locked_blocking
from .opening import connection_pragmas

T = TypeVar("T")

#: Connections inherited across a fork: never used nor closed in the child (SQLite forbids
#: either), only kept from the garbage collector, which would close them.
_INHERITED: list[sqlite3.Connection] = []


class _Held:
    """One thread's connection, and the lock that keeps `ThreadConnections.close` from
    closing it under a statement."""

    __slots__ = ("__weakref__", "conn", "finalizer", "lock", "pid")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn: sqlite3.Connection | None = conn
        self.lock = threading.Lock()
        self.pid = os.getpid()
        self.finalizer = weakref.finalize(self, conn.close)
        self.finalizer.atexit = False  # at exit the process lets go of its files anyway

    def close(self) -> None:
        with self.lock:
            conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()


class ThreadConnections:
    """One `sqlite3` connection to ``path`` per calling thread, opened on first use."""

    def __init__(self, path: str, *, synchronous: str, busy_timeout: float) -> None:
        self._uri = Path(path).absolute().as_uri() + "?mode=rw"  # never creates the file
        self._busy_timeout = busy_timeout
        self._pragmas = connection_pragmas(
            in_memory=False, synchronous=synchronous, busy_timeout=busy_timeout
        )
        self._local = threading.local()
        self._held: weakref.WeakSet[_Held] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._closed = False

    def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work(connection)`` on this thread's connection; `QueueClosed` after `close`."""
        held: _Held | None = getattr(self._local, "held", None)
        if held is None or held.pid != os.getpid():
            if held is not None and held.conn is not None:  # forked: the parent's, not ours
                held.finalizer.detach()
                _INHERITED.append(held.conn)
            held = self._local.held = self._open()
        with held.lock:
            if held.conn is None:
                raise QueueClosed("this SQLite backend was closed")
            return work(held.conn)

    def _open(self) -> _Held:
        with self._lock:
            if self._closed:
                raise QueueClosed("this SQLite backend was closed")
            conn = sqlite3.connect(
                self._uri,
                uri=True,
                timeout=self._busy_timeout,
                isolation_level=None,  # autocommit, as the backend's own connection
                check_same_thread=False,  # `close` may come from another thread
            )
            try:
                for pragma in self._pragmas:
                    retry_locked_blocking(conn.execute, pragma)
            except BaseException:
                conn.close()
                raise
            held = _Held(conn)
            self._held.add(held)
            return held

    def open_count(self) -> int:
        """How many threads' connections are open now."""
        with self._lock:
            return sum(1 for held in self._held if held.conn is not None)

    def close(self) -> None:
        """Close every thread's connection (idempotent); later calls raise `QueueClosed`."""
        with self._lock:
            self._closed = True
            held = list(self._held)
        for one in held:
            one.close()
