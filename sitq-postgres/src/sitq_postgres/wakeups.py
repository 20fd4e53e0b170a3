"""In-process wake-ups of `PostgresBackend`, fed by its own writes and by the listener.

A waiter must not sleep through a wake-up that came while it was looking (its claim or read
was in flight). Each wake-up bumps a generation; a claim or a read notes the generation it
started at (per asyncio task, in a context variable), and a wait that finds it moved returns at
once.
"""

from __future__ import annotations

import contextvars

from sitq.signals import Signal

from .listener import Listener

#: Wake-up generations a task saw when it last looked for work or results.
_seen_work: contextvars.ContextVar[int] = contextvars.ContextVar("sitq_pg_seen_work")
_seen_finish: contextvars.ContextVar[int] = contextvars.ContextVar("sitq_pg_seen_finish")


class Wakeups:
    """Generations of the ``enqueued`` and ``finished`` signals, and waits on them that start
    the listener (if any) first."""

    def __init__(self, enqueued: Signal, finished: Signal) -> None:
        self.enqueued = enqueued
        self.finished = finished
        #: Set once the backend builds its listener (it needs these callbacks first).
        self.listener: Listener | None = None
        #: True once the backend closed: waits no longer start the listener.
        self.closed = False
        self._work_generation = 0
        self._finish_generation = 0

    def work(self) -> None:
        """New work may be pending."""
        self._work_generation += 1
        self.enqueued.notify()

    def finish(self) -> None:
        """Some task may have finished."""
        self._finish_generation += 1
        self.finished.notify()

    def all(self) -> None:
        """Both (the listener reconnected and may have missed notifications)."""
        self.work()
        self.finish()

    def looked_for_work(self) -> None:
        """Note, for this asyncio task, the work generation a claim starts at."""
        _seen_work.set(self._work_generation)

    def looked_for_finish(self) -> None:
        """Note, for this asyncio task, the finish generation a read starts at."""
        _seen_finish.set(self._finish_generation)

    async def wait_for_work(self, timeout: float) -> None:
        """Return on a wake-up for work since this task last looked, or after ``timeout``."""
        if await self._listening(timeout):
            return
        if _seen_work.get(self._work_generation) != self._work_generation:
            return
        await self.enqueued.wait(timeout)

    async def wait_for_finish(self, timeout: float) -> None:
        """Return on a wake-up for results since this task last looked, or after
        ``timeout``."""
        if await self._listening(timeout):
            return
        if _seen_finish.get(self._finish_generation) != self._finish_generation:
            return
        await self.finished.wait(timeout)

    async def _listening(self, timeout: float) -> bool:
        """Start the listener if needed; True if it just started (look once more)."""
        if self.listener is None or self.closed:
            return False
        return await self.listener.ensure(min(timeout, 5.0))
