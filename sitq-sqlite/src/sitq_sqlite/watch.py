"""Noticing commits that other processes make to a SQLite file, without a query.

In WAL mode every commit appends frames to the ``-wal`` file, so a change of its size or
modification time means some connection, maybe in another process, wrote. Looking costs one
``os.stat`` (microseconds, no thread hop), so a waiting worker can look every few
milliseconds and pick up work enqueued by another process within that time, instead of
waiting for its next poll.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

from sitq.signals import Signal

#: Seconds between looks at the WAL file while waiting.
WATCH_INTERVAL = 0.01


class WalWatch:
    """Watches the ``-wal`` file of the database at ``path``."""

    def __init__(self, path: str, interval: float = WATCH_INTERVAL) -> None:
        self.wal = path + "-wal"
        self.interval = interval

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
                done, _ = await asyncio.wait({waiter}, timeout=min(self.interval, remaining))
                if done:
                    return
                now = self.stamp()
                if now != seen:
                    seen = now
                    if await relevant():
                        return
        finally:
            waiter.cancel()
