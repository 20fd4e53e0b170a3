"""Enqueueing from plain code without a thread hop: a private event loop per calling thread.

No blocking PostgreSQL driver is among sitq's dependencies, and asyncpg needs an event loop.
A `SyncTaskQueue` call used to hop to the queue's loop thread and back (~200 µs) around each
round trip. `ThreadLoops` gives each calling thread an event loop of its own, run in that
thread with ``run_until_complete``; the backend's `Database` gives it one connection (it runs
one call at a time: a pool's acquire and release would cost as much as the INSERT), and the
statements, the NOTIFY and the retries after a lost connection are the async path's own.

A thread's loop (and with it its connection) is shut down when the thread ends, or by
`ThreadLoops.close` for all threads at once.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from sitq.errors import QueueClosed

T = TypeVar("T")

#: Loops inherited across a fork: never run nor closed in the child (their sockets are the
#: parent's), only kept from the garbage collector.
_INHERITED: list[asyncio.AbstractEventLoop] = []


def _shut_down(loop: asyncio.AbstractEventLoop) -> None:
    """Close ``loop``, first letting its pools close (`Database` parks a guard per pool that
    closes it when the loop shuts its async generators down) if this thread can run it."""
    if loop.is_closed():
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # no loop running in this thread: ``loop`` may run here
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        except Exception:  # the server is gone: the sockets go with the loop
            pass
    loop.close()


class _Held:
    """One thread's loop, and the lock that keeps `ThreadLoops.close` from closing it while
    it runs."""

    __slots__ = ("__weakref__", "closed", "finalizer", "lock", "loop", "pid")

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.lock = threading.Lock()
        self.pid = os.getpid()
        self.closed = False
        self.finalizer = weakref.finalize(self, _shut_down, self.loop)
        self.finalizer.atexit = False  # at exit the process lets go of its sockets anyway


class ThreadLoops:
    """One private event loop per calling thread, created on first use."""

    def __init__(
        self, on_new: Callable[[asyncio.AbstractEventLoop], None] = lambda loop: None
    ) -> None:
        """``on_new(loop)`` is called for each thread's loop when it is made."""
        self._on_new = on_new
        self._local = threading.local()
        self._held: weakref.WeakSet[_Held] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._closed = False

    def run(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run the coroutine ``make()`` on this thread's loop and return its result;
        `QueueClosed` after `close`. Never call it inside a running event loop."""
        held: _Held | None = getattr(self._local, "held", None)
        if held is None or held.pid != os.getpid():
            if held is not None:  # forked: the parent's loop, not ours
                held.finalizer.detach()
                _INHERITED.append(held.loop)
            held = self._local.held = self._new()
        with held.lock:
            if held.closed:
                raise QueueClosed("this PostgreSQL backend was closed")
            return held.loop.run_until_complete(make())

    def _new(self) -> _Held:
        with self._lock:
            if self._closed:
                raise QueueClosed("this PostgreSQL backend was closed")
            held = _Held()
            self._held.add(held)
        self._on_new(held.loop)
        return held

    def stop(self) -> None:
        """Refuse new runs; wait for those under way (idempotent). Their loops stay open for
        the backend to close their pools, then `close`."""
        with self._lock:
            self._closed = True
            held = list(self._held)
        for one in held:
            with one.lock:
                one.closed = True

    def close(self) -> None:
        """Close every thread's loop (after `stop`, and after their pools were closed)."""
        self.stop()
        with self._lock:
            held = list(self._held)
        for one in held:
            one.finalizer()
