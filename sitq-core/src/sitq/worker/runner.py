"""`Runner`: a worker driven from plain code, beside the async worker it drives.

As `SyncTaskQueue` stands beside `TaskQueue`, a `Runner` gives a `Worker` its plain-code
side: a background event loop in a thread (`Portal`) for ``worker.start()`` and one-off
``worker.process_task(id)`` calls, a blocking ``worker.stop()``, ``worker.run(duration=)`` in
the foreground with Ctrl-C / SIGTERM handling, and a graceful stop at interpreter exit.

`Worker` itself picks the side at each call: in a running event loop its methods return
awaitables; in plain code they go through its runner. Each has one precise return type:

* ``start() -> Coroutine[Any, Any, None]``: the serving coroutine itself in async code; from
  plain code a `Background` (a `Coroutine` subclass, so ``asyncio.create_task`` and
  ``asyncio.run`` accept it) that waits for the background thread if awaited, and does
  nothing if dropped;
* ``stop() -> Awaitable[None]``: a `Waiter`, made lazily; after a blocking stop it is done at
  once. Being no coroutine, plain code may drop it without a type checker objecting;
* ``process_task() -> Result | Coroutine[Any, Any, Result]`` (and ``process_tasks``): a typed
  union, as no one type is both; typed async code calls ``process_task_async`` (and
  ``process_tasks_async``) for the precise type.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import functools
import signal
import threading
import time
import weakref
from collections.abc import Coroutine
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

from ..bridge import Background, Portal, forbid_running_loop
from ..errors import WorkerStateError
from ..validation import check_seconds

if TYPE_CHECKING:
    from .worker import Worker

T = TypeVar("T")

#: Seconds between looks at the watchdog while a blocking stop waits for the worker.
_WEDGE_CHECK_INTERVAL = 0.1


class Runner:
    """The plain-code side of one `Worker`."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.portal: Portal | None = None
        self.background: concurrent.futures.Future[None] | None = None

    def start_in_background(self) -> Background:
        """Serve on a background thread until stopped; returns once the worker runs (or
        raises why it could not start)."""
        w = self.worker
        self.close_portal()
        self.portal = Portal(f"sitq-worker-{w.worker_id}")
        started = threading.Event()
        w._start_pending = True
        self.background = background = self.portal.submit(w._serve(started=started))
        _stop_at_exit(w)
        while not started.wait(0.05):
            if background.done():
                break
        if background.done() and background.exception() is not None:
            self.background = None
            self.close_portal()
            background.result()  # raises why it could not start
        return Background(background, self._stop_from_outside)

    def stop_and_wait(self) -> None:
        """Block until the worker has stopped (the stop was requested); a Ctrl-C while waiting
        hands running tasks back at once, then goes on."""
        try:
            self.wait_stopped()
        except KeyboardInterrupt:
            self.worker.graceful_shutdown = 0.0  # a second Ctrl-C: hand running tasks back now
            self.worker._request_stop()
            self.wait_stopped()
            raise

    def wait_stopped(self) -> None:
        """Block until the worker's run ends; `WorkerStateError` if it cannot, its event loop
        still wedged by a task past the grace period (see `_wait_unless_wedged`)."""
        if self.background is not None:
            self._wait_unless_wedged(self.background)
            try:
                self.background.result()
            finally:
                self.background = None
                self.close_portal()
        else:
            while not self.worker._done.wait(0.1):
                pass

    def _wait_unless_wedged(self, background: concurrent.futures.Future[None]) -> None:
        """Wait for ``background`` to end, raising `WorkerStateError` if the worker's watchdog
        finds its loop wedged once ``graceful_shutdown`` seconds, and one more watchdog bound,
        have passed since this wait began (the background thread and its loop are left as
        they are: nothing can stop them)."""
        w = self.worker
        asked = time.monotonic()
        while not concurrent.futures.wait([background], _WEDGE_CHECK_INTERVAL)[0]:
            keeper = w._keeper
            watchdog = keeper.watchdog if keeper is not None else None
            if (
                watchdog is not None
                and watchdog.wedged
                and time.monotonic() - asked >= w.graceful_shutdown + watchdog.bound
            ):
                raise WorkerStateError(
                    f"worker {w.worker_id} cannot stop: a task blocks its event loop (the "
                    "watchdog logged which, and where). Its tasks go to other workers once "
                    "their leases lapse; the worker's thread runs on until the process ends. "
                    "Run blocking code with asyncio.to_thread, or such tasks in "
                    "worker_type='thread' or 'process'."
                )

    async def wait_stopped_async(self) -> None:
        """Wait, from any event loop, until the worker's run ends."""
        w = self.worker
        if w._stopped is not None and w._loop is asyncio.get_running_loop():
            await asyncio.shield(w._stopped)
        elif self.background is not None:
            await asyncio.wrap_future(self.background)
        else:
            await asyncio.to_thread(w._done.wait)

    async def _stop_from_outside(self) -> None:
        self.worker._request_stop()
        await self.wait_stopped_async()

    def close_portal(self) -> None:
        """Close the background loop unless a background run still uses it."""
        if self.portal is not None and (self.background is None or self.background.done()):
            self.portal.close()
            self.portal = None

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the worker's background loop and return its result."""
        if self.portal is None:
            self.portal = Portal(f"sitq-worker-{self.worker.worker_id}")
        return self.portal.run(coro)

    def run(self, duration: float | None) -> None:
        """Serve in the foreground for ``duration`` seconds or until Ctrl-C / SIGTERM; raise
        `KeyboardInterrupt` after a Ctrl-C."""
        forbid_running_loop("Worker.run()", "`await worker.start()`")
        if duration is not None:
            check_seconds("duration", duration, allow_zero=True)
        if asyncio.run(self._run_for(duration)):
            raise KeyboardInterrupt

    async def _run_for(self, duration: float | None) -> bool:
        w = self.worker
        loop = asyncio.get_running_loop()
        interrupted = False

        def on_signal(signum: int) -> None:
            nonlocal interrupted
            interrupted = interrupted or signum == signal.SIGINT
            if w._state == "stopping":
                w.graceful_shutdown = 0.0
                w._wake_now()
            w._request_stop()

        installed = []
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(signum, on_signal, signum)
                    installed.append(signum)
                except (NotImplementedError, RuntimeError):
                    pass
                else:  # after asyncio's: its wake-up of the loop stays, this runs beside it
                    signal.signal(signum, functools.partial(_tell_watchdog, w))
        timer = loop.call_later(duration, w._request_stop) if duration is not None else None
        try:
            await w._serve()
        finally:
            if timer is not None:
                timer.cancel()
            for signum in installed:
                loop.remove_signal_handler(signum)
        return interrupted


def _tell_watchdog(worker: Worker, signum: int, frame: FrameType | None) -> None:
    """The Python-level handler of a stop signal, beside asyncio's (which only wakes the loop
    to call ``on_signal``): it runs even while a task blocks the loop, and tells the heartbeat
    thread's watchdog, which ends the process if the loop stays blocked past the grace period
    (see `sitq.watchdog`). Only records: it may interrupt any code of the loop's thread."""
    keeper = worker._keeper
    watchdog = keeper.watchdog if keeper is not None else None
    if watchdog is not None:
        watchdog.signalled(signum, worker.graceful_shutdown)


_at_exit: weakref.WeakSet[Worker] = weakref.WeakSet()
_at_exit_lock = threading.Lock()
_at_exit_registered = False


def _stop_at_exit(worker: Worker) -> None:
    """Stop ``worker`` gracefully at interpreter exit if it is still running then.

    The hook runs where `concurrent.futures` registers its own (``threading``'s exit hooks,
    last registered first), so the stop happens while thread pools still take work, and before
    the process executor's `atexit` handler kills child processes.
    """
    global _at_exit_registered
    with _at_exit_lock:
        _at_exit.add(worker)
        if not _at_exit_registered:
            # loaded now, thread pools register their exit hook before ours, so ours runs first
            import concurrent.futures.thread  # noqa: F401

            register = getattr(threading, "_register_atexit", atexit.register)
            try:
                register(_stop_workers)
            except RuntimeError:  # the interpreter is already shutting down
                return
            _at_exit_registered = True


def _stop_workers() -> None:
    for worker in list(_at_exit):
        if worker._runner.background is not None:
            try:
                worker.stop()
            except WorkerStateError as exc:  # wedged: the interpreter exits without it
                worker.logger.error("at exit: %s", exc)
            except BaseException:
                worker.logger.exception("stopping worker %s at exit failed", worker.worker_id)


__all__ = ["Runner"]
