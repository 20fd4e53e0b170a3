"""Group commit of task outcomes: `OutcomeWriter`.

Every aiosqlite call or database round trip costs more than the write itself, so a worker does
not store outcomes one by one. The first task to report while nothing is in flight starts a
flush; every outcome reported until that flush runs goes into the same `Backend.finish` call.
The batching itself is `sitq.batching.Batcher`'s; this module fixes how outcomes use it.
"""

from __future__ import annotations

import logging

from .backend import Backend, Outcome
from .batching import Batcher, Then


class OutcomeWriter:
    """Writes a worker's outcomes in batches and tells each reporter whether its outcome was
    applied (False: the worker had lost the task's lease).

    A failed write is retried, backing off, until it succeeds: an outcome is never dropped
    while the store can take it (the lease keeps the task safe meanwhile). A permanent error
    (`sitq.batching.is_permanent`, e.g. `QueueClosed`) is raised to every waiting reporter
    at once instead.
    """

    def __init__(self, backend: Backend, logger: logging.Logger) -> None:
        self.backend = backend
        self.logger = logger
        self._batcher: Batcher[Outcome, bool] = Batcher(
            backend.finish, on_failure="retry", logger=logger, what="task outcomes"
        )

    async def report(self, outcome: Outcome) -> bool:
        """Queue ``outcome`` for the next group commit and wait until it is written.

        If the reporter is cancelled, the outcome is written all the same.
        """
        return self.check_applied(outcome, await self._batcher.hand_over(outcome))

    def hand_over(self, outcome: Outcome, then: Then[bool]) -> None:
        """Queue ``outcome`` for the next group commit without waiting for it:
        ``then(applied, error)`` is called on this loop once it is written (``error``: what
        failed it for good, `asyncio.CancelledError` if the loop closed first). ``then``
        should pass ``applied`` through `check_applied`."""
        self._batcher.hand_over(outcome, then)

    def check_applied(self, outcome: Outcome, applied: bool) -> bool:
        """``applied``, logging a warning if the outcome was not stored (the lease was lost)."""
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
        await self._batcher.wait_flushed()
