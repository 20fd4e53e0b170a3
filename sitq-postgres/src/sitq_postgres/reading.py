"""The reading half of `PostgresBackend`: one record, counts and listings for monitoring."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from sitq import TaskStatus
from sitq.backend import TaskRecord, record_from_row
from sitq.rules import check_list_args, fold_counts, fold_queue_counts, status_texts
from sitq.search import TaskSearch, like_pattern

from .database import Operation
from .schema import COLUMNS
from .sql import Statements
from .wakeups import Wakeups
from .workflows import READ_COLUMNS, read_fields

#: Where the workflow columns start in a row selected as `sql.SELECT`.
_WORKFLOW_AT = 1 + len(COLUMNS) - len(READ_COLUMNS)

T = TypeVar("T")


#: Where a row selected as `sql.SELECT` (``seq`` first) has the task's limit keys.
_LIMIT_KEYS_AT = 1 + COLUMNS.index("limit_keys")


def record_of(row: Sequence[Any]) -> TaskRecord:
    """A `TaskRecord` from a row selected as `sql.SELECT` (``seq`` first, skipped)."""
    record = read_fields(record_from_row(row[1:]), row[_WORKFLOW_AT:])
    record.limits = tuple(row[_LIMIT_KEYS_AT] or ())
    return record


class Reading:
    """`Backend`'s reading methods on PostgreSQL, mixed into `PostgresBackend` (which gives
    the statements, the wake-ups and the retrying ``_run``)."""

    _sql: Statements
    _wakeups: Wakeups

    if TYPE_CHECKING:

        async def _run(self, operation: Operation[T]) -> T: ...

    async def get_task(self, task_id: str) -> TaskRecord | None:
        """The stored record, or None."""
        self._wakeups.looked_for_finish()

        async def op(conn: asyncpg.Connection, attempt: int) -> TaskRecord | None:
            row = await conn.fetchrow(self._sql.get_task, task_id)
            return None if row is None else record_of(row)

        return await self._run(op)

    async def counts(self, queue: str | None = None) -> dict[TaskStatus, int]:
        """Tasks per status."""

        async def op(conn: asyncpg.Connection, attempt: int) -> list[Any]:
            return list(await conn.fetch(self._sql.counts, queue))

        return fold_counts(await self._run(op))

    async def queue_counts(self) -> dict[str, dict[TaskStatus, int]]:
        """Tasks per queue and status, in one aggregate query."""

        async def op(conn: asyncpg.Connection, attempt: int) -> list[Any]:
            return list(await conn.fetch(self._sql.queue_counts))

        return fold_queue_counts(await self._run(op))

    async def search_tasks(self, search: TaskSearch) -> list[TaskRecord]:
        """One page of ``search``, newest first, in one query (see `Backend.search_tasks`)."""
        args = [
            None if search.statuses is None else status_texts(search.statuses),
            search.queue,
            None if search.function is None else like_pattern(search.function),
            None if search.text is None else like_pattern(search.text),
            None if search.text is None else search.text.encode(),
            search.before,
            search.limit,
        ]

        async def op(conn: asyncpg.Connection, attempt: int) -> list[TaskRecord]:
            return [record_of(row) for row in await conn.fetch(self._sql.search_tasks, *args)]

        return await self._run(op)

    async def list_tasks(
        self,
        *,
        statuses: Iterable[TaskStatus] | None = None,
        queue: str | None = None,
        limit: int | None = 100,
        order: str = "oldest",
    ) -> list[TaskRecord]:
        """Stored records for monitoring, oldest (or newest) first."""
        wanted = check_list_args(statuses, limit, order)
        args = [None if wanted is None else status_texts(wanted), queue, limit]
        sql = self._sql.list_tasks(newest=order == "newest")

        async def op(conn: asyncpg.Connection, attempt: int) -> list[TaskRecord]:
            return [record_of(row) for row in await conn.fetch(sql, *args)]

        return await self._run(op)
