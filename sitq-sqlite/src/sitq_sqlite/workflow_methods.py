"""The workflow methods of `SQLiteBackend` (`Backend.workflow_tasks`, `cancel_workflow`,
`workflows`, `get_results`); the joins themselves are in `workflows`."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import aiosqlite

from sitq.backend import TaskRecord
from sitq.rules import check_list_args
from sitq.signals import AsyncMutex
from sitq.workflow_state import WorkflowSummary, summaries_from_rows

from .database import retry_locked, settled
from .joins import ACTIVE as _ACTIVE


class WorkflowStatements:
    """SQL text of the workflow methods for one tasks table."""

    def __init__(self, table: str, select: str) -> None:
        self.t = table
        self.select = select

    @property
    def members(self) -> str:
        """The records of workflow ``?``, in enqueue order."""
        return f"SELECT {self.select} FROM {self.t} WHERE workflow_id = ? ORDER BY rowid"

    @property
    def finished(self) -> str:
        """The records of the finished tasks among the ids in JSON array ``?``."""
        return (
            f"SELECT {self.select} FROM {self.t} WHERE id IN (SELECT value FROM json_each(?)) "
            "AND status IN ('succeeded', 'failed', 'dead', 'cancelled')"
        )

    @property
    def cancels(self) -> tuple[str, str]:
        """Cancel the members of workflow ``?2`` at ``?1``: the waiting ones, then the pending
        and running ones (a running one loses its lease)."""
        return (
            # a waiting task has no error of its own: one its parent's trigger gave it while
            # this statement ran is taken back (the rows are chosen before it runs)
            f"UPDATE {self.t} SET status = 'cancelled', finished_at = ?1, available_at = ?1, "
            "error = NULL WHERE workflow_id = ?2 AND status = 'waiting'",
            f"UPDATE {self.t} SET status = 'cancelled', finished_at = ?1, available_at = ?1, "
            "lease_token = NULL, lease_expires_at = NULL "
            "WHERE workflow_id = ?2 AND status IN ('pending', 'running')",
        )

    def newest(self, active_only: bool) -> str:
        """The newest ``?`` workflows (by their first member's ``created_at``, then enqueue
        order): ``(id, created_at)``, only those with a member not ended if ``active_only``."""
        having = f" HAVING sum(status IN {_ACTIVE}) > 0" if active_only else ""
        return (
            f"SELECT workflow_id, min(created_at) AS created FROM {self.t} "
            f"WHERE workflow_id IS NOT NULL GROUP BY workflow_id{having} "
            "ORDER BY created DESC, min(rowid) DESC LIMIT ?"
        )

    def summaries(self, count: int) -> str:
        """``(workflow_id, status, n, created_at, finished_at)`` of ``count`` workflows."""
        marks = ",".join("?" * count)
        return (
            "SELECT workflow_id, status, count(*), min(created_at), max(finished_at) "
            f"FROM {self.t} WHERE workflow_id IN ({marks}) GROUP BY workflow_id, status"
        )


class WorkflowMethods:
    """`Backend`'s workflow methods on SQLite, mixed into `SQLiteBackend` (which gives the
    connection, the statements and the wake-ups)."""

    _workflow_sql: WorkflowStatements

    if TYPE_CHECKING:
        _mutex: AsyncMutex

        clock: Callable[[], float]

        def notify_enqueued(self) -> None: ...
        def notify_finished(self) -> None: ...
        async def _db(self) -> aiosqlite.Connection: ...
        async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...
        def _read(self, row: Sequence[Any]) -> TaskRecord: ...

    async def workflow_tasks(self, workflow_id: str) -> list[TaskRecord]:
        """Every member of ``workflow_id`` in enqueue order (empty if unknown)."""
        rows = await self._fetchall(self._workflow_sql.members, (workflow_id,))
        return [self._read(row) for row in rows]

    async def get_results(self, task_ids: Sequence[str]) -> list[TaskRecord | None]:
        """`get_result` of each of ``task_ids``, in order, in one query."""
        if not task_ids:
            return []
        rows = await self._fetchall(self._workflow_sql.finished, (json.dumps(list(task_ids)),))
        found = {record.id: record for record in map(self._read, rows)}
        return [found.get(task_id) for task_id in task_ids]

    async def cancel_workflow(self, workflow_id: str) -> int:
        """Cancel every waiting, pending and running member of ``workflow_id`` as `cancel`
        does, in one transaction (none gets a parent's reason: requeueing one resumes no
        other); children outside the workflow are settled as for any ended parent. How many
        were cancelled."""
        now = self.clock()
        db = await self._db()
        async with self._mutex:
            await retry_locked(db.execute, "BEGIN IMMEDIATE")
            try:
                count = 0
                for statement in self._workflow_sql.cancels:
                    cursor = await settled(db.execute(statement, (now, workflow_id)))
                    count += cursor.rowcount
                    await settled(cursor.close())
                await settled(db.execute("COMMIT"))
            except BaseException:
                if db.in_transaction:
                    await settled(db.execute("ROLLBACK"))
                raise
        if count:
            self.notify_finished()
            self.notify_enqueued()  # a child outside the workflow may be released
        return count

    async def workflows(
        self, *, limit: int = 100, active_only: bool = False
    ) -> list[WorkflowSummary]:
        """The newest ``limit`` workflows (only those with a member not ended yet, if
        ``active_only``), newest first, with their members' counts."""
        check_list_args(None, limit, "newest")
        newest = await self._fetchall(self._workflow_sql.newest(active_only), (limit,))
        order = [row[0] for row in newest]
        if not order:
            return []
        rows = await self._fetchall(self._workflow_sql.summaries(len(order)), order)
        return summaries_from_rows(order, rows)
