"""`Coalescer`: concurrent single writes become one batch write.

Every write to a store costs a round trip (a thread hop for SQLite, a network round trip for
PostgreSQL) that is worth more than the write itself. When many coroutines enqueue at once,
one ``enqueue_many`` of all their records beats one round trip each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    """Turns concurrent `submit` calls into calls of ``write_many(items) -> results``.

    A caller with nothing in flight writes its item at once, so a lone caller waits no longer
    than with a direct write; callers arriving while a write is in flight are written together
    (up to ``max_batch`` at a time) right after it. If a batch write raises, each of its items
    is written again on its own, so every caller gets its own result or error. A caller
    cancelled before its batch is written is left out of it.

    One coalescer belongs to one event loop.
    """

    def __init__(
        self, write_many: Callable[[Sequence[T]], Awaitable[Sequence[R]]], max_batch: int = 1000
    ) -> None:
        self._write_many = write_many
        self._max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._busy = False
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Write ``item`` (alone, or with the items submitted meanwhile); return its result."""
        if not self._busy:
            self._busy = True
            try:
                return (await self._write_many([item]))[0]
            finally:
                self._busy = False
                if self._pending:
                    self._start_drain()
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        entry = (item, future)
        self._pending.append(entry)
        try:
            return await future
        except asyncio.CancelledError:
            if entry in self._pending:
                self._pending.remove(entry)
            raise

    def _start_drain(self) -> None:
        self._busy = True
        self._drainer = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                if len(batch) == 1:
                    await self._write_one(*batch[0])
                    continue
                try:
                    results = await self._write_many([item for item, _ in batch])
                except Exception:
                    for item, future in batch:  # one by one: each caller gets its own outcome
                        await self._write_one(item, future)
                else:
                    for (_, future), result in zip(batch, results, strict=True):
                        if not future.done():
                            future.set_result(result)
            batch = []
        except BaseException:  # cancelled (the loop is closing): nobody waits in vain
            for _, future in batch + self._pending:
                future.cancel()
            self._pending.clear()
            raise
        finally:
            self._busy = False
            self._drainer = None

    async def _write_one(self, item: T, future: asyncio.Future[R]) -> None:
        try:
            (result,) = await self._write_many([item])
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(result)
