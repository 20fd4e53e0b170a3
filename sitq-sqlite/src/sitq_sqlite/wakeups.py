"""How a SQLite backend wakes its waiters, in this process and in the others.

`Wakeups` joins the two mechanisms of a file-backed store: a datagram per commit to the
processes waiting on the file (`sitq_sqlite.wake`), and, where no socket can be bound, the
WAL watch (`sitq_sqlite.watch`). The backend calls `send` after each commit and `wait` in
`wait_for_work` / `wait_for_finish`; an in-memory database has neither (only the in-process
signals, which the backend's base class fires).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sitq.signals import Signal

from .wake import FINISHED, WORK, WakeListener, WakeSender, listeners, wake_dir
from .watch import PendingPeek, WalWatch

__all__ = ["FINISHED", "WORK", "Wakeups"]


class Wakeups:
    """The wake-ups of the database file at ``path`` (tasks table ``table``).

    :param clock: the backend's clock (the WAL watch asks whether pending work is due).
    """

    def __init__(self, path: str, table: str, clock: Callable[[], float]) -> None:
        self._dir = wake_dir(path)
        self._watch = WalWatch(path)
        self._peek = PendingPeek(path, table, clock)
        self._sender = WakeSender(self._dir)
        self._listeners: dict[str, WakeListener | None] = {}  # None: cannot listen here
        self._lock = threading.Lock()
        self._closed = False

    def send(self, kind: str) -> None:
        """Wake the other processes waiting for ``kind`` (`WORK` or `FINISHED`)."""
        self._sender.send(kind)

    async def wait(self, kind: str, signal: Signal, timeout: float) -> None:
        """Return when ``signal`` fires (this process) or another process commits ``kind``,
        or after ``timeout`` seconds."""
        listener = self._listener(kind, signal)
        if listener is not None:
            return await listener.wait(timeout)
        relevant = self._peek if kind == WORK else _always
        await self._watch.wait(signal, timeout, relevant)

    def _listener(self, kind: str, signal: Signal) -> WakeListener | None:
        """This process's wake-up socket for ``kind``, bound on the first wait (None where
        none can be: then the caller watches the WAL)."""
        with self._lock:
            if kind not in self._listeners and not self._closed:
                self._listeners[kind] = listeners.acquire(self._dir, kind, signal)
            return self._listeners.get(kind)

    def close(self) -> None:
        """Let go of the sockets and the peek connection (idempotent)."""
        with self._lock:
            self._closed = True
            bound, self._listeners = list(self._listeners.values()), {}
        for listener in bound:
            if listener is not None:
                listeners.release(listener)
        self._sender.close()
        self._peek.close()


def _always() -> bool:
    return True
