"""In-process wake-ups that work across threads and event loops.

A worker waiting for work, or a caller waiting for a result, parks on a `Signal`; the backend
fires it after an enqueue or a finish commits. Waiters on any loop in any thread are woken with
``call_soon_threadsafe``. Signals are process-local: other processes still rely on polling (or on
a backend's own notification, such as PostgreSQL's LISTEN/NOTIFY).
"""

from __future__ import annotations

import asyncio
import threading
import weakref


class Signal:
    """A broadcast wake-up: `notify()` releases every current waiter."""

    __slots__ = ("_lock", "_waiters", "__weakref__")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[asyncio.Future[None]] = set()

    async def wait(self, timeout: float | None) -> bool:
        """Wait for the next `notify()`; return False if ``timeout`` seconds pass first."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._waiters.add(fut)
        try:
            await asyncio.wait_for(fut, timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            with self._lock:
                self._waiters.discard(fut)

    def notify(self) -> None:
        """Wake every waiter, whatever loop or thread it waits on."""
        with self._lock:
            if not self._waiters:
                return
            waiters, self._waiters = self._waiters, set()
        for fut in waiters:
            loop = fut.get_loop()
            if loop.is_closed():
                continue
            try:
                loop.call_soon_threadsafe(_release, fut)
            except RuntimeError:  # loop closed in between
                pass


def _release(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


_channels: weakref.WeakValueDictionary[tuple[str, str], Signal] = weakref.WeakValueDictionary()
_channels_lock = threading.Lock()


def channel(key: str, kind: str) -> Signal:
    """The process-wide `Signal` for one store (``key``) and event ``kind``.

    Two backend objects opened on the same file share their signals, so a worker wakes when a
    queue built separately on the same database enqueues.
    """
    with _channels_lock:
        sig = _channels.get((key, kind))
        if sig is None:
            sig = Signal()
            _channels[(key, kind)] = sig
        return sig


class AsyncMutex:
    """A mutex that coroutines on different event loops (and threads) can share.

    Uncontended, acquiring costs no thread hop; a contended waiter parks until the holder
    releases (re-checking now and then, so a missed wake-up only costs a little latency).
    """

    __slots__ = ("_lock", "_released")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._released = Signal()

    async def __aenter__(self) -> None:
        while not self._lock.acquire(blocking=False):
            await self._released.wait(0.01)

    async def __aexit__(self, *exc: object) -> None:
        self._lock.release()
        self._released.notify()
