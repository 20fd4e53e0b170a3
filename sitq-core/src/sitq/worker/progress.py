"""`ProgressRelay`: carries what running tasks report with ``set_progress`` to the backend.

``set_progress`` may be called from the worker's loop or from a thread running a task, many
times a second. The relay keeps the latest value per task (what `Worker.get_status` shows) and
writes the changed ones in one `Backend.set_progress` batch at most once per ``interval``,
from the worker's loop: the caller never waits on I/O. Before a task's outcome is reported,
its last unwritten value is written (`settle`), so the stored progress is the final one.

Progress is accepted while the task's function runs under a lease the worker holds (its
`LeaseTable` says which), so a running task costs the relay nothing until it reports.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from ..backend import Backend, Capability
from ..progress import Progress
from .leases import LeaseTable

#: Seconds between two progress writes of one worker (the latest value wins).
PROGRESS_INTERVAL = 0.5


class ProgressRelay:
    """The progress of one worker's running tasks, on its way to ``backend``."""

    def __init__(
        self,
        backend: Backend,
        logger: logging.Logger,
        leases: LeaseTable,
        interval: float = PROGRESS_INTERVAL,
    ) -> None:
        self.backend = backend
        self.logger = logger
        self.leases = leases
        self.interval = interval
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[str, Progress]] = {}  # task id → (lease token, progress)
        self._unwritten: dict[str, tuple[str, Progress]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False
        self._last_write = 0.0  # monotonic
        self._writes: set[asyncio.Task[None]] = set()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Write from ``loop`` (the worker's; a worker may run again on another loop)."""
        self._loop = loop

    def forget(self, task_id: str, token: str) -> None:
        """Drop what this claim of ``task_id`` reported and was not written."""
        with self._lock:
            latest = self._latest.get(task_id)
            if latest is not None and latest[0] == token:
                del self._latest[task_id]
                unwritten = self._unwritten.get(task_id)
                if unwritten is not None and unwritten[0] == token:
                    del self._unwritten[task_id]

    def report(self, task_id: str, progress: Progress) -> None:
        """Record ``progress`` (from any thread) and make sure a write is coming; dropped if
        the task's function is not running here any more."""
        with self._lock:  # the lookup under this lock too, so `forget` never misses its entry
            token = self.leases.running_token(task_id)
            if token is None:
                return  # its execution is over: too late to store
            self._latest[task_id] = (token, progress)
            self._unwritten[task_id] = (token, progress)
            if self._scheduled or self._loop is None:
                return
            self._scheduled = True
            loop = self._loop
        try:
            loop.call_soon_threadsafe(self._schedule)
        except RuntimeError:  # the loop is closed: the worker stopped
            pass

    def running(self) -> dict[str, Progress]:
        """A snapshot: the latest progress of each running task that reported one."""
        with self._lock:
            return {task_id: progress for task_id, (_, progress) in self._latest.items()}

    def unsettled(self) -> bool:
        """True if a task's last progress may be unwritten (`settle` has work to do)."""
        return bool(self._writes or self._unwritten)

    async def settle(self, task_id: str) -> None:
        """Write ``task_id``'s last unwritten value now (before its outcome is reported), after
        any batch already on its way (which may hold an older value of it); callers skip it
        while nothing is `unsettled`."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        with self._lock:
            found = self._unwritten.pop(task_id, None)
        if found is not None:
            await self._write({task_id: found})

    # -- on the worker's loop ----------------------------------------------------------------

    def _schedule(self) -> None:
        assert self._loop is not None
        delay = max(0.0, self._last_write + self.interval - time.monotonic())
        self._loop.call_later(delay, self._start_write)

    def _start_write(self) -> None:
        with self._lock:
            batch, self._unwritten = self._unwritten, {}
            self._scheduled = False
        if batch:
            job = asyncio.ensure_future(self._write(batch))
            self._writes.add(job)
            job.add_done_callback(self._writes.discard)

    async def _write(self, batch: dict[str, tuple[str, Progress]]) -> None:
        self._last_write = time.monotonic()
        if not self.backend.supports(Capability.PROGRESS):
            return
        try:
            await self.backend.set_progress(batch)
        except Exception:
            self.logger.warning(
                "could not store the progress of %d task(s); the next report will try again",
                len(batch),
                exc_info=True,
            )


__all__ = ["PROGRESS_INTERVAL", "ProgressRelay"]
