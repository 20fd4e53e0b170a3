"""The one place where synchronous code meets sitq's async core.

A `Portal` runs an event loop in a daemon thread; blocking calls submit coroutines to it and
wait. Calling a blocking method from inside a running event loop would deadlock or stall that
loop, so it raises `EventLoopMisuse` with the async alternative instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, TypeVar

from .errors import EventLoopMisuse

T = TypeVar("T")


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, or None."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def forbid_running_loop(call: str, alternative: str) -> None:
    """Raise `EventLoopMisuse` if a blocking ``call`` is made inside a running event loop."""
    if running_loop() is not None:
        raise EventLoopMisuse(
            f"{call} blocks, and was called inside a running event loop, which it would stall. "
            f"In async code use {alternative} instead."
        )


class Portal:
    """An event loop in a background daemon thread, for running coroutines from sync code."""

    def __init__(self, name: str = "sitq-portal") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The portal's loop, started on first use."""
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=run, name=self._name, daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the portal loop; returns a thread-safe future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(
        self,
        coro: Coroutine[Any, Any, T],
        timeout: float | None = None,
        on_timeout: Callable[[], BaseException] | None = None,
    ) -> T:
        """Run ``coro`` on the portal loop and block until it returns (or raises).

        With ``timeout``, the calling thread waits that many seconds at most, whatever the
        portal's loop is doing: past them the coroutine is cancelled and ``on_timeout()`` is
        raised (default: `TimeoutError`). The coroutine's own timeouts cannot promise that: a
        backend shared with a worker whose event loop is blocked may never answer it.
        """
        if self._thread is not None and threading.current_thread() is self._thread:
            coro.close()
            raise EventLoopMisuse("a blocking sitq call was made from the portal's own loop")
        future = self.submit(coro)
        try:
            finished, _ = concurrent.futures.wait([future], timeout)
        except KeyboardInterrupt:
            future.cancel()
            raise
        if not finished:
            future.cancel()
            raise (
                on_timeout()
                if on_timeout is not None
                else TimeoutError(f"no answer within {timeout} s")
            )
        return future.result()

    def close(self) -> None:
        """Stop the loop and join its thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None and thread is not threading.current_thread():
            thread.join()
            loop.close()


class Deferred(Coroutine[Any, Any, T]):
    """A coroutine made only when first awaited: ``make()`` is called then, not before.

    Calls that work from both plain and async code return one, so that their return type is
    the same in both (``asyncio.create_task`` accepts it, ``await`` waits for it) and plain
    code may ignore it: nothing runs, and nothing warns, if it is never awaited.
    """

    def __init__(self, make: Callable[[], Coroutine[Any, Any, T]]) -> None:
        self._make = make
        self._coro: Coroutine[Any, Any, T] | None = None

    def _inner(self) -> Coroutine[Any, Any, T]:
        if self._coro is None:
            self._coro = self._make()
        return self._coro

    def send(self, value: Any) -> Any:
        """Coroutine protocol."""
        return self._inner().send(value)

    def throw(self, *args: Any) -> Any:
        """Coroutine protocol."""
        return self._inner().throw(*args)

    def close(self) -> None:
        """Coroutine protocol."""
        if self._coro is not None:
            self._coro.close()

    def __await__(self) -> Generator[Any, None, T]:
        return self._inner().__await__()


class Waiter(Awaitable[T]):
    """An awaitable whose coroutine ``make()`` is made only when it is awaited.

    Unlike a `Deferred` it is no coroutine, so plain code may drop it without a type checker
    asking for an ``await``: blocking calls that also work in async code return one.
    """

    def __init__(self, make: Callable[[], Coroutine[Any, Any, T]]) -> None:
        self._make = make

    def __await__(self) -> Generator[Any, None, T]:
        return self._make().__await__()


async def _nothing() -> None:
    return None


def done() -> Waiter[None]:
    """A `Waiter` that finishes at once when awaited (for work already done)."""
    return Waiter(_nothing)


class Background(Deferred[None]):
    """What a call that started work in the background returns to plain code.

    Ignore it, or await it to wait until that work ends: ``asyncio.run(worker.start())``
    then serves until the worker stops. If the wait is cancelled (Ctrl-C under
    ``asyncio.run``), ``on_cancel()`` is awaited (it should stop the work) before the
    cancellation goes on. Nothing runs, and nothing warns, if it is never awaited.
    """

    def __init__(
        self,
        future: concurrent.futures.Future[Any],
        on_cancel: Callable[[], Awaitable[Any]],
    ) -> None:
        super().__init__(self._wait)
        self._future = future
        self._on_cancel = on_cancel

    async def _wait(self) -> None:
        try:
            await asyncio.shield(asyncio.wrap_future(self._future))
        except asyncio.CancelledError:
            await self._on_cancel()
            raise
