"""`LeaseKeeper`: extends the leases of a worker's running tasks, from a thread of its own.

A claim holds for ``lease_seconds``; the keeper pushes every held lease back every
``interval`` seconds (a third of the lease by default). It runs on its own thread with its own
event loop, through `Backend.heartbeat_backend` (its own connection where the backend needs
one), so a task that blocks the worker's event loop, even for many leases, cannot starve it.
Backends that return None there get the keeper as a task on the worker's loop instead.

The leases live in the worker's `LeaseTable` (``worker/leases.py``), which both threads use
under its one lock. A lease the backend no longer holds (the task was cancelled, or recovered
by another worker after this one stalled) is marked lost there and reported to ``on_lost`` on
the worker's loop, which stops the execution: cancellation of a running task takes effect
within one interval.

A task with a timeout gets its lease extended only until ``timeout + lease_seconds`` after it
started: if the worker's loop is wedged past that, the lease lapses and another worker
recovers the task.

The same thread runs the worker's `LoopWatchdog` (``watchdog.py``), for every backend: while
the worker's loop leaves its ticks unanswered (a task that never awaits wedged it) and one of
its tasks is past its timeout, the keeper extends no lease of the worker, so other workers
recover its tasks once their leases lapse; and a stop signal ends the process after the grace
period.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .backend import Backend
from .watchdog import LoopWatchdog

if TYPE_CHECKING:
    from .worker.leases import Lease, LeaseTable

#: Called on the worker's loop with the leases newly found lost.
LostCallback = Callable[["list[Lease]"], None]


class LeaseKeeper:
    """Keeps the leases held in ``leases`` alive while they are held there.

    :param backend: the worker's backend.
    :param leases: the worker's lease table.
    :param lease_seconds: the length of each extension.
    :param interval: seconds between heartbeats.
    :param on_lost: called on the worker's loop with the leases found lost.
    :param logger: where failures are logged.
    :param worker_id: the worker's name, for the watchdog's log lines.
    """

    def __init__(
        self,
        backend: Backend,
        leases: LeaseTable,
        *,
        lease_seconds: float,
        interval: float,
        on_lost: LostCallback,
        logger: logging.Logger,
        worker_id: str = "",
    ) -> None:
        self.backend = backend
        self.worker_id = worker_id
        self.leases = leases
        self.lease_seconds = lease_seconds
        self.interval = interval
        self.on_lost = on_lost
        self.logger = logger
        self._loop: asyncio.AbstractEventLoop | None = None  # the worker's
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = threading.Event()
        self._threaded = False
        self.beats = 0  # heartbeats done (for tests and metrics)
        #: watches the worker's loop from the keeper's thread (set by `start`)
        self.watchdog: LoopWatchdog | None = None

    @property
    def threaded(self) -> bool:
        """True when the keeper extends leases from a thread of its own."""
        return self._threaded

    def start(self) -> None:
        """Start beating; call on the worker's loop. Cheap: a thread that sleeps, with an event
        loop and a connection of its own opened only when there is a lease to extend."""
        self._loop = asyncio.get_running_loop()
        self._stopping.clear()
        self.watchdog = LoopWatchdog(
            self._loop,
            self.leases,
            interval=self.interval,
            logger=self.logger,
            worker_id=self.worker_id,
        )
        side = self.backend.heartbeat_backend()
        self._threaded = side is not None
        if side is None:  # the thread only watches; the beat runs on the worker's loop
            self._task = self._loop.create_task(self._run_on_worker_loop())
        self._thread = threading.Thread(
            target=self._thread_main, args=(side,), name="sitq-heartbeat", daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        """Stop beating and release the keeper's connection (waits up to 10 s for a beat in
        progress)."""
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(0.05)  # an idle keeper wakes and ends at once
            if thread.is_alive():  # in the middle of a beat: do not block the loop on it
                await asyncio.to_thread(thread.join, 10.0)

    # -- the beat ----------------------------------------------------------------------------

    def _thread_main(self, side: Backend | None) -> None:
        own = side is not self.backend
        loop: asyncio.AbstractEventLoop | None = None
        connected = False
        watchdog = self.watchdog
        assert watchdog is not None
        next_beat = time.monotonic() + self.interval
        try:
            while True:
                now = time.monotonic()
                if self._stopping.wait(max(0.0, min(next_beat - now, watchdog.next_check(now)))):
                    break
                now = time.monotonic()
                try:
                    watchdog.check(now)
                except Exception:  # never at the cost of the leases
                    self.logger.exception("the event loop watchdog failed")
                if now < next_beat:
                    continue
                next_beat = now + self.interval
                # a wedged loop runs none of its tasks: their leases are left to lapse
                if side is None or not self.leases or watchdog.holding_back:
                    continue
                if loop is None:
                    loop = asyncio.new_event_loop()
                try:
                    if own and not connected:
                        loop.run_until_complete(side.connect())
                        connected = True
                    loop.run_until_complete(self.beat(side))
                except Exception:
                    self.logger.exception("extending leases failed; retrying")
        finally:
            if loop is not None:
                try:
                    if connected and side is not None:
                        loop.run_until_complete(side.close())
                except Exception:
                    self.logger.exception("closing the heartbeat connection failed")
                finally:
                    loop.close()

    async def _run_on_worker_loop(self) -> None:
        while not self._stopping.is_set():
            await asyncio.sleep(self.interval)
            if not self.leases:
                continue
            try:
                await self.beat(self.backend)
            except Exception:
                self.logger.exception("extending leases failed; retrying")

    async def beat(self, backend: Backend) -> None:
        """Extend every held lease once; report the ones found lost."""
        wanted, overdue = self.leases.to_extend(time.monotonic())
        for task_id in overdue:
            self.logger.warning(
                "task %s ran past its timeout and the worker could not stop it (its event "
                "loop is blocked?); its lease is no longer extended",
                task_id,
            )
        held = await backend.extend_leases(wanted, self.lease_seconds) if wanted else set()
        self.beats += 1
        lost = self.leases.mark_lost({t: tok for t, tok in wanted.items() if t not in held})
        if not lost:
            return
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self.on_lost, lost)
        except RuntimeError:  # the worker's loop ended meanwhile
            pass


__all__ = ["LeaseKeeper", "LostCallback"]
