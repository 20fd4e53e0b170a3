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
from collections.abc import Awaitable, Callable

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
        relevant: Callable[[], Awaitable[bool]],
    ) -> None:
        """Return when ``signal`` fires, or the file changed and ``relevant()`` says the change
        matters, or after ``timeout`` seconds."""
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
                if await relevant():
                    return
        finally:
            waiter.cancel()
