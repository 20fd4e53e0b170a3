"""Group commit of task outcomes: `OutcomeWriter`.

Every aiosqlite call or database round trip costs more than the write itself, so a worker does
not store outcomes one by one. The first task to report while nothing is in flight starts a
flush; every outcome reported until that flush runs goes into the same `Backend.finish` call.
"""

from __future__ import annotations

import asyncio
import logging

from .backend import Backend, Outcome


class OutcomeWriter:
    """Writes a worker's outcomes in batches and tells each reporter whether its outcome was
    applied (False: the worker had lost the task's lease)."""

    def __init__(self, backend: Backend, logger: logging.Logger) -> None:
        self.backend = backend
        self.logger = logger
        self._waiting: list[tuple[Outcome, asyncio.Future[bool]]] = []
        self._flushes: set[asyncio.Task[None]] = set()

    async def report(self, outcome: Outcome) -> bool:
        """Queue ``outcome`` for the next group commit and wait until it is written."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._waiting.append((outcome, future))
        if len(self._waiting) == 1:
            loop.call_soon(self._start_flush)
        # no shield needed: if the reporter is cancelled its future is too, and the flush
        # skips it (the outcome is written all the same)
        applied = await future
        if not applied:
            self.logger.warning(
                "task %s: outcome %s not stored: this worker lost its lease (the task was "
                "recovered by another worker or cancelled)",
                outcome.task_id,
                outcome.status.value,
            )
        return applied

    async def wait_flushed(self) -> None:
        """Wait for flushes under way on this loop (outcomes of cancelled reporters included)."""
        loop = asyncio.get_running_loop()
        flushes = [t for t in self._flushes if t.get_loop() is loop]
        if flushes:
            await asyncio.gather(*flushes, return_exceptions=True)

    def _start_flush(self) -> None:
        task = asyncio.ensure_future(self._flush())
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            delay = 0.05
            while True:
                try:
                    applied = await self.backend.finish([o for o, _ in batch])
                    break
                except Exception:
                    # never drop an outcome: the lease keeps the task safe meanwhile
                    self.logger.exception("storing %d task outcomes failed; retrying", len(batch))
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
            for (_, future), ok in zip(batch, applied, strict=True):
                if not future.done():
                    future.set_result(ok)
