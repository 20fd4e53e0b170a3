"""Noticing commits that other processes make to a SQLite file, without a query.

In WAL mode every commit appends frames to the ``-wal`` file, so a change of its size or
modification time means some connection, maybe in another process, wrote. Looking costs one
``os.stat`` (microseconds, no thread hop), so a waiting worker can look every few
milliseconds and pick up work enqueued by another process within that time, instead of
waiting for its next poll. The looks space out while nothing changes (each wake-up of an idle
process costs CPU too): every 5 ms right after a change, every 50 ms after a quiet second.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from sitq.signals import Signal

#: Seconds between looks at the WAL file right after a change, and at most.
WATCH_INTERVAL = 0.005
WATCH_MAX_INTERVAL = 0.05
_BACKOFF = 1.25


class WalWatch:
    """Watches the ``-wal`` file of the database at ``path``."""

    def __init__(
        self, path: str, interval: float = WATCH_INTERVAL, max_interval: float = WATCH_MAX_INTERVAL
    ) -> None:
        self.wal = path + "-wal"
        self.interval = interval
        self.max_interval = max(interval, max_interval)
        self._next = interval  # grows while nothing changes, across waits

    def stamp(self) -> tuple[int, int, int] | None:
        """What identifies the WAL's current state (None if it does not exist)."""
        try:
            st = os.stat(self.wal)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    async def wait(
        self,
        signal: Signal,
        timeout: float,
        relevant: Callable[[], bool],
    ) -> None:
        """Return when ``signal`` fires, or the file changed and ``relevant()`` says the change
        matters, or after ``timeout`` seconds. ``relevant`` is called on this thread: it must be
        quick (see `PendingPeek`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen = self.stamp()
        waiter = asyncio.ensure_future(signal.wait(timeout))
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return
                done, _ = await asyncio.wait({waiter}, timeout=min(self._next, remaining))
                if done:
                    self._next = self.interval
                    return
                now = self.stamp()
                if now == seen:
                    self._next = min(self._next * _BACKOFF, self.max_interval)
                    continue
                seen = now
                self._next = self.interval
                if relevant():
                    return
        finally:
            waiter.cancel()


class PendingPeek:
    """Answers "is any pending task due?" with a plain ``sqlite3`` read on a connection of its
    own, on the calling thread.

    A read in WAL mode takes no lock that a writer holds, so it returns in tens of
    microseconds. Not an aiosqlite call on purpose: a waiter is cancelled whenever its worker
    stops, and an aiosqlite call still in flight when its event loop closes kills that
    connection's thread (every later call on it would hang).
    """

    def __init__(self, path: str, table: str, clock: Callable[[], float]) -> None:
        self.path = path
        self._sql = (
            f"SELECT 1 FROM {table} INDEXED BY {table}_pending "
            "WHERE status = 'pending' AND available_at <= ? LIMIT 1"
        )
        self._clock = clock
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def __call__(self) -> bool:
        """True if a pending task is due (or if the database cannot tell right now)."""
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = sqlite3.connect(  # mode=rw: never creates the file
                        Path(self.path).absolute().as_uri() + "?mode=rw",
                        uri=True,
                        timeout=0.0,
                        isolation_level=None,
                        check_same_thread=False,
                    )
                return self._conn.execute(self._sql, (self._clock(),)).fetchone() is not None
            except sqlite3.Error:  # busy, schema not there yet...: let the caller claim
                return True

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
