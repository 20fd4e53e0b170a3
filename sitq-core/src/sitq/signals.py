"""In-process wake-ups that work across threads and event loops.

A worker waiting for work, or a caller waiting for a result, parks on a `Signal`; the backend
fires it after an enqueue or a finish commits. Waiters on any loop in any thread are woken with
``call_soon_threadsafe``. Signals are process-local: other processes still rely on polling (or on
a backend's own notification, such as PostgreSQL's LISTEN/NOTIFY).
"""

from __future__ import annotations

import asyncio
import collections
import threading
import weakref


class Signal:
    """A broadcast wake-up: `notify()` releases every current waiter."""

    __slots__ = ("__weakref__", "_lock", "_waiters")

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


def notify(key: str, kind: str) -> None:
    """Fire the signal of ``channel(key, kind)`` if anyone holds it; otherwise do nothing
    (no `Signal` is made for an event nobody waits on: enqueues from plain code call this
    once per task)."""
    sig = _channels.get((key, kind))
    if sig is not None:
        sig.notify()


class AsyncMutex:
    """A mutex that coroutines on different event loops (and threads) can share.

    Uncontended, acquiring costs no thread hop. Contended, waiters queue first-in first-out
    and releasing hands the mutex straight to the first of them, waking only that one (on its
    own loop, thread-safely): no thundering herd, no polling.
    """

    __slots__ = ("_guard", "_locked", "_waiters")

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locked = False
        self._waiters: collections.deque[_Waiter] = collections.deque()

    @property
    def locked(self) -> bool:
        """True while someone holds the mutex."""
        return self._locked

    async def __aenter__(self) -> None:
        with self._guard:
            if not self._locked:
                self._locked = True
                return
            waiter = _Waiter(asyncio.get_running_loop().create_future())
            self._waiters.append(waiter)
        try:
            await waiter.future
        except asyncio.CancelledError:
            with self._guard:
                if not waiter.owner and waiter in self._waiters:
                    self._waiters.remove(waiter)
            if waiter.owner:  # the mutex was handed to us as we were cancelled: pass it on
                self._release()
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._release()

    def _release(self) -> None:
        while True:
            with self._guard:
                if not self._waiters:
                    self._locked = False
                    return
                waiter = self._waiters.popleft()
                if waiter.future.done():  # cancelled while waiting; it knows it is not owner
                    continue
                waiter.owner = True
            if _wake(waiter.future):
                return
            with self._guard:  # its loop is gone: it will never run, try the next one
                waiter.owner = False


class _Waiter:
    __slots__ = ("future", "owner")

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future
        self.owner = False


def _wake(fut: asyncio.Future[None]) -> bool:
    """Resolve ``fut`` on its own loop; False if that loop is closed."""
    loop = fut.get_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        fut.set_result(None)
        return True
    if loop.is_closed():
        return False
    try:
        loop.call_soon_threadsafe(_release, fut)
    except RuntimeError:  # closed in between
        return False
    return True
