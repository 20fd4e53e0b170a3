"""One batching core, `Batcher`: items gathered while a write is in flight go out in one call.

Every write to a store costs a round trip (a thread hop for SQLite, a network round trip for
PostgreSQL) worth more than the write itself, so both the enqueues of a queue
(`sitq.coalesce.Coalescer`) and the outcomes of a worker (`sitq.outcomes.OutcomeWriter`) are
written in batches: while one write is in flight, the items that arrive wait, then go out
together in one call of ``write_many(items) -> results``, and each waiting caller gets its own
result.

What a failed batch write does is the batcher's ``on_failure`` policy:

* ``"split"``: each item of the batch is written again on its own, once, so every caller gets
  its own result or error (one bad item does not fail the others);
* ``"retry"``: the whole batch is written again, backing off, until it succeeds (nothing is
  ever dropped), unless the error is permanent.

Either way a *permanent* error (`is_permanent`: the store was closed, or the write is one that
no retry can fix) ends the retries at once and fails every waiting caller with it. Retrying
those would never end: a worker would wait forever for outcomes a closed store cannot take.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, Literal, TypeVar, overload

from .errors import QueueClosed

T = TypeVar("T")
R = TypeVar("R")

#: ``write_many(items) -> results``: one result per item, in order.
WriteMany = Callable[[Sequence[T]], Awaitable[Sequence[R]]]

#: ``then(result, error)``: told an item's fate once its batch is written (`Batcher.hand_over`);
#: ``error`` is None on success (then ``result`` is the item's result), else what failed it
#: (`asyncio.CancelledError` if the flush was cancelled).
Then = Callable[[R | None, BaseException | None], None]

#: Errors that another attempt of the same write cannot fix: a closed store, or a write that
#: is wrong in itself (bad arguments, a bug), as opposed to a locked database or a lost
#: connection, which pass.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    QueueClosed,
    TypeError,
    ValueError,
    AttributeError,
    NotImplementedError,
)

#: Seconds before the first retry of a failed batch (``on_failure="retry"``), and the most
#: between two retries; the wait doubles after each failure.
FIRST_RETRY_DELAY = 0.05
MAX_RETRY_DELAY = 2.0


def is_permanent(exc: BaseException) -> bool:
    """True if retrying the write that raised ``exc`` cannot succeed (`PERMANENT_ERRORS`)."""
    return isinstance(exc, PERMANENT_ERRORS)


def fails_every_write(exc: BaseException) -> bool:
    """True if ``exc`` says the store takes no write any more (it was closed), whatever the
    items: a split batch then fails all its items at once instead of trying each."""
    return isinstance(exc, QueueClosed)


class Batcher(Generic[T, R]):
    """Turns concurrent single writes into calls of ``write_many(items) -> results``.

    Two ways in, for two kinds of callers:

    * `write`: a caller with nothing in flight writes its item at once (so a lone caller
      waits no longer than with a direct write); a caller cancelled while its item waits is
      left out of the batch;
    * `hand_over`: the item always goes out in a background flush that starts on the next
      turn of the event loop, so items handed over in the same turn share it, and it is
      written even if its caller is cancelled meanwhile (`wait_flushed` waits for it). Its
      result comes as a future, or through a ``then`` callback: a caller that need not wait
      for the write then costs no future and no wake-up of its own.

    :param write_many: writes a batch; returns one result per item, in order.
    :param on_failure: ``"split"`` or ``"retry"``, see the module docstring.
    :param max_batch: most items per call (None: no limit).
    :param logger: where failed attempts of ``on_failure="retry"`` are logged.
    :param what: what the items are, plural, for those log lines (``"task outcomes"``).

    One batcher serves one event loop at a time.
    """

    def __init__(
        self,
        write_many: WriteMany[T, R],
        *,
        on_failure: Literal["split", "retry"],
        max_batch: int | None = None,
        logger: logging.Logger | None = None,
        what: str = "items",
    ) -> None:
        if on_failure not in ("split", "retry"):
            raise ValueError(f"on_failure must be 'split' or 'retry', got {on_failure!r}")
        self._write_many = write_many
        self._retry = on_failure == "retry"
        self._max_batch = max_batch
        self._logger = logger if logger is not None else logging.getLogger("sitq.batching")
        self._what = what
        self._pending: list[tuple[T, asyncio.Future[R] | Then[R]]] = []
        self._busy = False  # a write is in flight, or a flush is on its way
        self._flushes: set[asyncio.Task[None]] = set()

    async def write(self, item: T) -> R:
        """Write ``item`` (alone, or with the items that arrive meanwhile); return its result
        or raise its error."""
        if not self._busy:
            self._busy = True
            try:
                return (await self._attempt([item]))[0]
            finally:
                self._busy = False
                if self._pending:
                    self._start_flush()
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        entry = (item, future)
        self._pending.append(entry)
        try:
            return await future
        except asyncio.CancelledError:
            if entry in self._pending:
                self._pending.remove(entry)
            raise

    @overload
    def hand_over(self, item: T) -> asyncio.Future[R]: ...
    @overload
    def hand_over(self, item: T, then: Then[R]) -> None: ...
    def hand_over(self, item: T, then: Then[R] | None = None) -> asyncio.Future[R] | None:
        """Have ``item`` written by the next flush. Without ``then``, await the returned
        future for its result or error; with it, ``then(result, error)`` is called on this
        loop once the batch is written (it must not raise; what it raises is logged).

        Cancelling that future (or the task awaiting it) does not take the item back: the
        flush writes it all the same. A future, not a coroutine, so the per-item cost stays
        one future (or none, with ``then``).
        """
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[R] | Then[R] = loop.create_future() if then is None else then
        self._pending.append((item, waiter))
        if not self._busy:
            self._busy = True
            loop.call_soon(self._start_flush)
        return waiter if then is None else None  # type: ignore[return-value]

    async def wait_flushed(self) -> None:
        """Wait for the flushes under way on this loop (items of cancelled callers included),
        and for items handed over whose flush has not started yet."""
        loop = asyncio.get_running_loop()
        while True:
            flushes = [t for t in self._flushes if t.get_loop() is loop]
            if flushes:
                await asyncio.gather(*flushes, return_exceptions=True)
            elif self._pending and self._busy:  # its flush starts on the next turn of the loop
                await asyncio.sleep(0)
            else:
                return

    def _start_flush(self) -> None:
        self._busy = True
        task = asyncio.ensure_future(self._flush())
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self) -> None:
        batch: list[tuple[T, asyncio.Future[R] | Then[R]]] = []
        try:
            while self._pending:
                if self._max_batch is None:
                    batch, self._pending = self._pending, []
                else:
                    batch = self._pending[: self._max_batch]
                    del self._pending[: self._max_batch]
                try:
                    results = await self._attempt([item for item, _ in batch])
                except Exception as exc:
                    if self._retry or len(batch) == 1 or fails_every_write(exc):
                        for _, waiter in batch:
                            self._deliver(waiter, None, exc)
                    else:  # one by one: each caller gets its own result or error
                        for entry in batch:
                            await self._write_alone(entry)
                else:
                    for (_, waiter), result in zip(batch, results, strict=True):
                        self._deliver(waiter, result, None)
            batch = []
        except BaseException:  # cancelled (the loop is closing): nobody waits in vain
            for _, waiter in batch + self._pending:
                self._deliver(waiter, None, asyncio.CancelledError())
            self._pending.clear()
            raise
        finally:
            self._busy = False

    async def _attempt(self, items: list[T]) -> Sequence[R]:
        """Write ``items`` in one call; with ``on_failure="retry"``, again and again (backing
        off) until that succeeds or fails permanently."""
        if not self._retry:
            return await self._write_many(items)
        delay = FIRST_RETRY_DELAY
        while True:
            try:
                return await self._write_many(items)
            except Exception as exc:
                if is_permanent(exc):
                    raise
                self._logger.exception("storing %d %s failed; retrying", len(items), self._what)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_DELAY)

    async def _write_alone(self, entry: tuple[T, asyncio.Future[R] | Then[R]]) -> None:
        item, waiter = entry
        try:
            (result,) = await self._write_many([item])
        except Exception as exc:
            self._deliver(waiter, None, exc)
        else:
            self._deliver(waiter, result, None)

    def _deliver(
        self, waiter: asyncio.Future[R] | Then[R], result: R | None, error: BaseException | None
    ) -> None:
        """Give one waiter its result or error (a cancelled flush cancels a future)."""
        if isinstance(waiter, asyncio.Future):
            if waiter.done():
                return
            if error is None:
                waiter.set_result(result)  # type: ignore[arg-type]
            elif isinstance(error, asyncio.CancelledError):
                waiter.cancel()
            else:
                waiter.set_exception(error)
            return
        try:
            waiter(result, error)
        except Exception:
            self._logger.exception("a callback of the write of %s raised; ignored", self._what)
