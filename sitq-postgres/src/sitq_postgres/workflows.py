"""Workflows on PostgreSQL (`sitq.workflow_state`): what an enqueue stores, the statements of
the workflow methods, and what a record reads back. The joins themselves are in `joins`.

Each task row carries its ``workflow_id``, its ``parents`` (in order), ``allow_failure``,
``remaining`` (how many of its parents have not ended, while it waits) and ``has_children``;
``<prefix>task_edges`` holds one row per (child, position, parent), indexed both ways.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from sitq.backend import TaskRecord
from sitq.workflow_state import unknown_parent_error

from .joins import ACTIVE, FINAL, UNSUCCESSFUL, edges, failed_parent_error_sql

if TYPE_CHECKING:
    from .schema import Names

#: The workflow columns a record reads back, selected after the others.
READ_COLUMNS = ("workflow_id", "parents", "allow_failure")


# -- enqueue -----------------------------------------------------------------------------------


def enqueue_args(records: Sequence[TaskRecord]) -> list[Any]:
    """The workflow arrays of `Statements.enqueue`: status, workflow id, parents (JSON text),
    allow_failure, remaining and has_children of each record (a parent in the same batch
    is flagged at once)."""
    in_batch = {p for r in records for p in r.parents}
    return [
        ["waiting" if r.parents else "pending" for r in records],
        [r.workflow_id for r in records],
        [json.dumps(list(r.parents)) if r.parents else None for r in records],
        [r.allow_failure for r in records],
        [len(r.parents) for r in records],
        [r.id in in_batch for r in records],
    ]


class WorkflowStatements:
    """SQL text of the workflow steps and methods for one table prefix."""

    def __init__(self, names: Names, select: str) -> None:
        self.names = names
        self.t = names.tasks
        self.e = edges(names)
        self.select = select

    @property
    def lock_parents(self) -> str:
        """Lock the stored tasks among ids ``$1`` (in id order) and flag them as parents;
        returns the ids found."""
        return f"""
WITH locked AS (SELECT id FROM {self.t} WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE)
UPDATE {self.t} AS k SET has_children = true FROM locked WHERE k.id = locked.id
RETURNING k.id"""

    @property
    def insert_edges(self) -> str:
        """Store the edges ``$1`` (children), ``$2`` (positions), ``$3`` (parents) whose
        child ``$4`` stored (a dedupe hit stores no edges); the parents missing."""
        return f"""
WITH ins AS (
    INSERT INTO {self.e} (child_id, position, parent_id)
    SELECT x.c, x.i, x.p FROM unnest($1::text[], $2::int[], $3::text[]) AS x(c, i, p)
    WHERE x.c = ANY($4::text[])
    RETURNING parent_id
)
SELECT DISTINCT ins.parent_id FROM ins
WHERE NOT EXISTS (SELECT 1 FROM {self.t} AS k WHERE k.id = ins.parent_id)"""

    @property
    def settle_new(self) -> tuple[str, str, str]:
        """Count the parents not ended of new waiting tasks ``$1``, cancel at ``$2`` those a
        parent's failure dooms (which cascades through the trigger), release those at zero."""
        t, e = self.t, self.e
        n = self.names
        return (
            f"""
WITH counted AS (
    UPDATE {t} AS k SET remaining = (
        SELECT count(*) FROM {e} AS e JOIN {t} AS p ON p.id = e.parent_id
        WHERE e.child_id = k.id AND p.status IN {ACTIVE})
    WHERE k.id = ANY($1::text[]) AND k.status = 'waiting'
    RETURNING k.id
) SELECT count(*) FROM counted""",
            f"""
UPDATE {t} AS k SET status = 'cancelled', finished_at = coalesce($2::float8,
        extract(epoch FROM statement_timestamp())::float8),
    error = {failed_parent_error_sql(n, "k", "'{}'::text[]")}
WHERE k.id = ANY($1::text[]) AND k.status = 'waiting' AND NOT k.allow_failure
  AND EXISTS (SELECT 1 FROM {e} AS e JOIN {t} AS p ON p.id = e.parent_id
              WHERE e.child_id = k.id AND p.status IN {UNSUCCESSFUL})""",
            f"""
UPDATE {t} SET status = 'pending'
WHERE id = ANY($1::text[]) AND status = 'waiting' AND remaining <= 0""",
        )

    @property
    def finished(self) -> str:
        """The records of the finished tasks among ids ``$1``."""
        return (
            f"SELECT {self.select} FROM {self.t} WHERE id = ANY($1::text[]) AND status IN {FINAL}"
        )

    @property
    def members(self) -> str:
        """The records of workflow ``$1``, in enqueue order."""
        return f"SELECT {self.select} FROM {self.t} WHERE workflow_id = $1 ORDER BY seq"

    @property
    def cancel(self) -> str:
        """Cancel at ``$1`` (NULL: the database clock) the waiting, pending and running
        members of workflow ``$2`` (a running one loses its lease); the queues of those
        cancelled."""
        return f"""
UPDATE {self.t} SET status = 'cancelled',
    finished_at = coalesce($1::float8, extract(epoch FROM statement_timestamp())::float8),
    available_at = coalesce($1::float8, extract(epoch FROM statement_timestamp())::float8),
    lease_token = NULL, lease_expires_at = NULL
WHERE workflow_id = $2 AND status IN {ACTIVE}
RETURNING queue"""

    @property
    def newest(self) -> str:
        """The newest ``$1`` workflows (by their first member's ``created_at``, then enqueue
        order; only those with a member not ended if ``$2``)."""
        return f"""
SELECT workflow_id FROM {self.t} WHERE workflow_id IS NOT NULL GROUP BY workflow_id
HAVING NOT $2::bool OR bool_or(status IN {ACTIVE})
ORDER BY min(created_at) DESC, min(seq) DESC LIMIT $1"""

    @property
    def summaries(self) -> str:
        """``(workflow_id, status, n, created_at, finished_at)`` of workflows ``$1``."""
        return f"""
SELECT workflow_id, status, count(*), min(created_at), max(finished_at) FROM {self.t}
WHERE workflow_id = ANY($1::text[]) GROUP BY workflow_id, status"""


async def store_edges(
    conn: asyncpg.Connection,
    sql: WorkflowStatements,
    records: Sequence[TaskRecord],
    inserted: set[str],
    now: float | None,
) -> None:
    """In the enqueue's transaction, after its insert: store the edges of the ``inserted``
    records with parents and settle them as their parents' outcomes decide. An unknown
    parent raises `ConfigurationError` (the caller's transaction then stores nothing)."""
    waiting = [r for r in records if r.parents and r.id in inserted]
    if not waiting:
        return
    pairs = [(r.id, i, p) for r in waiting for i, p in enumerate(r.parents)]
    missing = await conn.fetch(
        sql.insert_edges,
        [c for c, _, _ in pairs],
        [i for _, i, _ in pairs],
        [p for _, _, p in pairs],
        [r.id for r in waiting],
    )
    if missing:  # a parent in the batch skipped as a dedupe hit, or purged meanwhile
        parent = missing[0][0]
        raise unknown_parent_error(next(c for c, _, p in pairs if p == parent), parent)
    ids = [r.id for r in waiting]
    count, cancel, release = sql.settle_new
    await conn.fetchval(count, ids)
    await conn.execute(cancel, ids, now)
    await conn.execute(release, ids)


# -- reading -----------------------------------------------------------------------------------


def read_fields(record: TaskRecord, values: Sequence[Any]) -> TaskRecord:
    """``record`` with its workflow fields set from ``values`` (`READ_COLUMNS`)."""
    workflow_id, parents, allow_failure = values
    record.workflow_id = workflow_id
    record.parents = tuple(parents) if parents else ()
    record.allow_failure = bool(allow_failure)
    return record
