"""`Coalescer`: concurrent enqueues become one ``enqueue_many`` call.

Every write to a store costs a round trip (a thread hop for SQLite, a network round trip for
PostgreSQL) that is worth more than the write itself. When many coroutines enqueue at once,
one ``enqueue_many`` of all their records beats one round trip each. The batching itself is
`sitq.batching.Batcher`'s; this module fixes how enqueues use it.
"""

from __future__ import annotations

from typing import TypeVar

from .batching import Batcher, WriteMany

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Batcher[T, R]):
    """Turns concurrent `submit` calls into calls of ``write_many(items) -> results``.

    A caller with nothing in flight writes its item at once, so a lone caller waits no longer
    than with a direct write; callers arriving while a write is in flight are written together
    (up to ``max_batch`` at a time) right after it. If a batch write raises, each of its items
    is written again on its own, so every caller gets its own result or error; if it raises
    `QueueClosed`, every caller gets that error at once. A caller cancelled before its batch
    is written is left out of it.

    One coalescer belongs to one event loop.
    """

    def __init__(self, write_many: WriteMany[T, R], max_batch: int = 1000) -> None:
        super().__init__(write_many, on_failure="split", max_batch=max_batch)

    #: ``await submit(item)``: write ``item`` (alone, or with the items submitted meanwhile)
    #: and return its result.
    submit = Batcher.write
