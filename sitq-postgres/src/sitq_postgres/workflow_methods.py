"""The workflow methods of `PostgresBackend` (`Backend.workflow_tasks`, `cancel_workflow`,
`workflows`); the joins themselves are in `workflows`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from sitq.backend import TaskRecord
from sitq.rules import check_list_args
from sitq.workflow_state import WorkflowSummary, summaries_from_rows

from .database import Operation
from .reading import record_of
from .sql import Statements

T = TypeVar("T")


class WorkflowMethods:
    """`Backend`'s workflow methods on PostgreSQL, mixed into `PostgresBackend` (which gives
    the statements, the clock and the retrying ``_run``)."""

    _sql: Statements

    if TYPE_CHECKING:

        async def _run(self, operation: Operation[T]) -> T: ...
        def _now(self) -> float | None: ...
        def notify_enqueued(self) -> None: ...
        def notify_finished(self) -> None: ...

    async def workflow_tasks(self, workflow_id: str) -> list[TaskRecord]:
        """Every member of ``workflow_id`` in enqueue order (empty if unknown)."""

        async def op(conn: asyncpg.Connection, attempt: int) -> list[TaskRecord]:
            rows = await conn.fetch(self._sql.workflow.members, workflow_id)
            return [record_of(row) for row in rows]

        return await self._run(op)

    async def get_results(self, task_ids: Sequence[str]) -> list[TaskRecord | None]:
        """`get_result` of each of ``task_ids``, in order, in one query."""
        if not task_ids:
            return []
        ids = list(task_ids)

        async def op(conn: asyncpg.Connection, attempt: int) -> dict[str, TaskRecord]:
            rows = await conn.fetch(self._sql.workflow.finished, ids)
            return {record.id: record for record in map(record_of, rows)}

        found = await self._run(op)
        return [found.get(task_id) for task_id in ids]

    async def cancel_workflow(self, workflow_id: str) -> int:
        """Cancel every waiting, pending and running member of ``workflow_id`` in one
        statement (running ones lose their lease); how many were cancelled."""
        args = [self._now(), workflow_id]

        async def op(conn: asyncpg.Connection, attempt: int) -> list[Any]:
            return list(await conn.fetch(self._sql.workflow.cancel, *args))

        rows = await self._run(op)
        if rows:
            self.notify_finished()
            self.notify_enqueued()  # a child outside the workflow may be released
        return len(rows)

    async def workflows(
        self, *, limit: int = 100, active_only: bool = False
    ) -> list[WorkflowSummary]:
        """The newest ``limit`` workflows (only those with a member not ended yet, if
        ``active_only``), newest first, with their members' counts."""
        check_list_args(None, limit, "newest")

        async def op(conn: asyncpg.Connection, attempt: int) -> list[WorkflowSummary]:
            newest = await conn.fetch(self._sql.workflow.newest, limit, active_only)
            order = [row[0] for row in newest]
            rows = await conn.fetch(self._sql.workflow.summaries, order) if order else []
            return summaries_from_rows(order, rows)

        return await self._run(op)
