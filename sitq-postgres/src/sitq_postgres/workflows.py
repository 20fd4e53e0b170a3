"""Workflows on PostgreSQL (`sitq.workflow_state`): what is stored, and how joins stay exact.

Each task row carries its ``workflow_id``, its ``parents`` (in order), ``allow_failure``,
``remaining`` (how many of its parents have not ended, while it waits) and ``has_children``;
``<prefix>task_edges`` holds one row per (child, position, parent), indexed both ways.

The joins live in two row triggers, so every statement that ends a task (`finish`, `cancel`,
`recover_expired`, `cancel_workflow`) or requeues one releases or cancels its children in its
own transaction, at no cost for tasks without children (the trigger's ``WHEN`` reads
``has_children`` before any function is called). A statement ending a task sets its
``available_at`` to now (the backend's clock), and the trigger dates what it moves by it:
released children are due then, cascaded ones cancelled then.

* ``parent_ended``: a task that ended unsuccessfully cancels its waiting children without
  ``allow_failure`` and their descendants (one recursive CTE); then every waiting child of it
  and of those counts down (``remaining = remaining - n``, on rows locked in id order, so two
  transactions ending two parents of one child never both miss nor double-release it), and
  those at zero become pending, with a NOTIFY.
* ``parent_requeued``: a requeued task takes back to waiting the descendants cancelled for it
  (their error names it), unless another parent still failed; counters are recomputed.

Statements run by a trigger do not fire them again (``pg_trigger_depth() < 1``): each trigger
handles the whole graph below its task. Its queries see rows committed after the statement
that fired it began, so a child enqueued meanwhile (which locks its parents first) is counted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from sitq.backend import TaskRecord
from sitq.rules import fold_counts
from sitq.task import TaskStatus
from sitq.workflow_state import PARENT_FAILED_PREFIX, WorkflowSummary, unknown_parent_error

if TYPE_CHECKING:  # schema registers this module's migration
    from .schema import Names

#: The workflow columns a record reads back, selected after the others.
READ_COLUMNS = ("workflow_id", "parents", "allow_failure")

#: The statuses of a task not ended yet, which hold its dedupe key.
ACTIVE = "('waiting', 'pending', 'running')"
_FINAL = "('succeeded', 'failed', 'dead', 'cancelled')"
_UNSUCCESSFUL = "('failed', 'dead', 'cancelled')"
_STATUSES = "('waiting', 'pending', 'running', 'succeeded', 'failed', 'dead', 'cancelled')"


def edges(n: Names) -> str:
    """The edges table of ``n``'s tasks."""
    return f"{n.prefix}task_edges"


# -- schema ------------------------------------------------------------------------------------


def migration(n: Names) -> str:
    """Workflows: the ``waiting`` status, the workflow columns, the edges table and the
    triggers of exact joins."""
    t, e = n.tasks, edges(n)
    return f"""
DO $$
DECLARE c text;
BEGIN
    FOR c IN SELECT conname FROM pg_constraint
             WHERE conrelid = '{t}'::regclass AND contype = 'c'
               AND pg_get_constraintdef(oid) LIKE '%status%'
    LOOP
        EXECUTE format('ALTER TABLE {t} DROP CONSTRAINT %I', c);
    END LOOP;
END $$;
ALTER TABLE {t}
    ADD CONSTRAINT {t}_status_known CHECK (status IN {_STATUSES}),
    ADD COLUMN workflow_id   text,
    ADD COLUMN parents       text[],
    ADD COLUMN allow_failure boolean NOT NULL DEFAULT false,
    ADD COLUMN remaining     integer NOT NULL DEFAULT 0,
    ADD COLUMN has_children  boolean NOT NULL DEFAULT false;
CREATE INDEX {t}_workflow ON {t} (workflow_id, seq) WHERE workflow_id IS NOT NULL;
DROP INDEX {t}_dedupe;
CREATE UNIQUE INDEX {t}_dedupe ON {t} (dedupe_key)
    WHERE dedupe_key IS NOT NULL AND status IN {ACTIVE};
CREATE TABLE {e} (
    child_id  text NOT NULL,
    position  integer NOT NULL,
    parent_id text NOT NULL,
    PRIMARY KEY (child_id, position)
);
CREATE INDEX {e}_parent ON {e} (parent_id, child_id);
{_ended_trigger(n)}
{_requeued_trigger(n)}
{_deleted_trigger(n)}
"""


def _failed_parent_error(n: Names, child: str, cancelled: str) -> str:
    """`sitq.workflow_state.parent_failed_error` of the first parent (by position) of
    ``child`` that did not succeed, counting those in the array ``cancelled`` as cancelled."""
    return (
        f"(SELECT '{PARENT_FAILED_PREFIX}: ' || p.id || ' ended ' || "
        f"CASE WHEN p.id = ANY({cancelled}) THEN 'cancelled' ELSE p.status END "
        f"FROM {edges(n)} AS e JOIN {n.tasks} AS p ON p.id = e.parent_id "
        f"WHERE e.child_id = {child}.id "
        f"AND (p.status IN {_UNSUCCESSFUL} OR p.id = ANY({cancelled})) "
        "ORDER BY e.position LIMIT 1)"
    )


def _count_down(n: Names, ended: str) -> str:
    """The loop counting down the waiting children of the tasks ``parent_id`` matches
    with condition ``ended`` (``= NEW.id``, ``= ANY(…)``), one
    primary-key update per child in id order (no lock-order deadlock between two of them),
    releasing those at zero with a NOTIFY."""
    t, e = n.tasks, edges(n)
    return f"""
    FOR child IN
        SELECT child_id AS id, count(*) AS n FROM {e} WHERE parent_id {ended}
        GROUP BY child_id ORDER BY child_id
    LOOP
        UPDATE {t} AS k SET remaining = k.remaining - child.n,
            status = CASE WHEN k.remaining - child.n <= 0 THEN 'pending' ELSE 'waiting' END,
            available_at = CASE WHEN k.remaining - child.n <= 0 THEN NEW.available_at
                                ELSE k.available_at END
        WHERE k.id = child.id AND k.status = 'waiting'
        RETURNING k.status, k.queue INTO released, released_queue;
        IF released = 'pending' THEN
            PERFORM pg_notify('{n.enqueued_channel}', left(released_queue, 200));
        END IF;
        released := NULL;
    END LOOP;"""


def _ended_trigger(n: Names) -> str:
    """The trigger releasing or cancelling the children of a task that ended."""
    t, e = n.tasks, edges(n)
    return f"""
CREATE FUNCTION {t}_parent_ended() RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE
    doomed text[] := '{{}}';
    child record;
    released text;
    released_queue text;
BEGIN
    IF NEW.status <> 'succeeded' THEN
        doomed := ARRAY(
            WITH RECURSIVE d(id) AS (
                SELECT c.id FROM {e} AS e JOIN {t} AS c ON c.id = e.child_id
                WHERE e.parent_id = NEW.id AND c.status = 'waiting' AND NOT c.allow_failure
                UNION
                SELECT c.id FROM d JOIN {e} AS e ON e.parent_id = d.id
                JOIN {t} AS c ON c.id = e.child_id
                WHERE c.status = 'waiting' AND NOT c.allow_failure
            ) SELECT id FROM d ORDER BY id);
        PERFORM 1 FROM {t} WHERE id = ANY(doomed) ORDER BY id FOR UPDATE;
        WITH x AS (
            UPDATE {t} AS k SET status = 'cancelled', finished_at = NEW.available_at,
                available_at = NEW.available_at,
                error = {_failed_parent_error(n, "k", "doomed")}
            WHERE k.id = ANY(doomed) AND k.status = 'waiting' RETURNING k.id
        ) SELECT coalesce(array_agg(id), '{{}}') INTO doomed FROM x;
    END IF;
    IF cardinality(doomed) = 0 THEN  -- the common case: no array to build
        {_count_down(n, "= NEW.id")}
    ELSE
        {_count_down(n, "= ANY(doomed || NEW.id)")}
    END IF;
    RETURN NULL;
END $f$;
CREATE TRIGGER {t}_parent_ended AFTER UPDATE OF status ON {t} FOR EACH ROW
WHEN (pg_trigger_depth() < 1 AND NEW.has_children AND OLD.status IN {ACTIVE}
      AND NEW.status IN {_FINAL})
EXECUTE FUNCTION {t}_parent_ended();"""


def _requeued_trigger(n: Names) -> str:
    """The trigger taking back to waiting the descendants cancelled for a requeued task."""
    t, e = n.tasks, edges(n)
    named = f"'{PARENT_FAILED_PREFIX}: '"
    return f"""
CREATE FUNCTION {t}_parent_requeued() RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE
    revived text[];
    again text[];
BEGIN
    revived := ARRAY(
        WITH RECURSIVE r(id) AS (
            SELECT c.id FROM {e} AS e JOIN {t} AS c ON c.id = e.child_id
            WHERE e.parent_id = NEW.id AND c.status = 'cancelled'
              AND c.error = {named} || NEW.id || ' ended ' || OLD.status
            UNION
            SELECT c.id FROM r JOIN {e} AS e ON e.parent_id = r.id
            JOIN {t} AS c ON c.id = e.child_id
            WHERE c.status = 'cancelled' AND c.error = {named} || r.id || ' ended cancelled'
        ) SELECT id FROM r ORDER BY id);
    PERFORM 1 FROM {t} WHERE id = ANY(revived) ORDER BY id FOR UPDATE;
    -- still doomed: a revived task with another parent that did not succeed, and below it
    again := ARRAY(
        WITH RECURSIVE a(id) AS (
            SELECT c.id FROM {t} AS c WHERE c.id = ANY(revived) AND NOT c.allow_failure
              AND EXISTS (SELECT 1 FROM {e} AS e JOIN {t} AS p ON p.id = e.parent_id
                          WHERE e.child_id = c.id AND p.status IN {_UNSUCCESSFUL}
                            AND NOT p.id = ANY(revived) AND p.id <> NEW.id)
            UNION
            SELECT e.child_id FROM a JOIN {e} AS e ON e.parent_id = a.id
            WHERE e.child_id = ANY(revived)
        ) SELECT id FROM a);
    revived := ARRAY(SELECT unnest(revived) EXCEPT SELECT unnest(again));
    UPDATE {t} AS k SET status = 'waiting', error = NULL, finished_at = NULL
    WHERE k.id = ANY(revived);
    UPDATE {t} AS k SET error = {_failed_parent_error(n, "k", "again")}
    WHERE k.id = ANY(again);
    UPDATE {t} AS k SET remaining = (
        SELECT count(*) FROM {e} AS e JOIN {t} AS p ON p.id = e.parent_id
        WHERE e.child_id = k.id AND p.status IN {ACTIVE})
    WHERE k.status = 'waiting' AND (k.id = ANY(revived) OR k.id IN (
        SELECT child_id FROM {e} WHERE parent_id = ANY(revived || NEW.id)));
    RETURN NULL;
END $f$;
CREATE TRIGGER {t}_parent_requeued AFTER UPDATE OF status ON {t} FOR EACH ROW
WHEN (pg_trigger_depth() < 1 AND NEW.has_children AND OLD.status IN {_UNSUCCESSFUL}
      AND NEW.status IN {ACTIVE})
EXECUTE FUNCTION {t}_parent_requeued();"""


def _deleted_trigger(n: Names) -> str:
    """The trigger deleting the edges of a deleted task (purge, prune) to its parents."""
    t, e = n.tasks, edges(n)
    return f"""
CREATE FUNCTION {t}_child_deleted() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    DELETE FROM {e} WHERE child_id = OLD.id;
    RETURN NULL;
END $f$;
CREATE TRIGGER {t}_child_deleted AFTER DELETE ON {t} FOR EACH ROW
WHEN (OLD.parents IS NOT NULL)
EXECUTE FUNCTION {t}_child_deleted();"""


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


def parents_to_find(records: Sequence[TaskRecord]) -> list[tuple[str, str]]:
    """The ``(task id, parent id)`` pairs of ``records`` whose parent must be stored already
    (it is not earlier in the batch); a parent later in the batch is refused at once
    (`sitq.workflow_state.unknown_parent_error`)."""
    batch = {r.id for r in records}
    earlier: set[str] = set()
    found = []
    for r in records:
        for parent in r.parents:
            if parent in batch and parent not in earlier:
                raise unknown_parent_error(r.id, parent)
            if parent not in earlier:
                found.append((r.id, parent))
        earlier.add(r.id)
    return found


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
    error = {_failed_parent_error(n, "k", "'{}'::text[]")}
WHERE k.id = ANY($1::text[]) AND k.status = 'waiting' AND NOT k.allow_failure
  AND EXISTS (SELECT 1 FROM {e} AS e JOIN {t} AS p ON p.id = e.parent_id
              WHERE e.child_id = k.id AND p.status IN {_UNSUCCESSFUL})""",
            f"""
UPDATE {t} SET status = 'pending'
WHERE id = ANY($1::text[]) AND status = 'waiting' AND remaining <= 0""",
        )

    @property
    def finished(self) -> str:
        """The records of the finished tasks among ids ``$1``."""
        return (
            f"SELECT {self.select} FROM {self.t} WHERE id = ANY($1::text[]) AND status IN {_FINAL}"
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
        """The newest ``$1`` workflows (only those with a member not ended if ``$2``)."""
        return f"""
SELECT workflow_id FROM {self.t} WHERE workflow_id IS NOT NULL GROUP BY workflow_id
HAVING NOT $2::bool OR bool_or(status IN {ACTIVE})
ORDER BY min(created_at) DESC, workflow_id DESC LIMIT $1"""

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
    if missing:  # stored when the enqueue began, and purged since
        raise unknown_parent_error(waiting[0].id, missing[0][0])
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


def fold_summaries(order: Iterable[str], rows: Iterable[Sequence[Any]]) -> list[WorkflowSummary]:
    """`WorkflowSummary` of each workflow in ``order`` from ``(workflow_id, status, n,
    created_at, finished_at)`` rows."""
    by_id: dict[str, list[Sequence[Any]]] = {}
    for row in rows:
        by_id.setdefault(row[0], []).append(row)
    found = []
    for workflow_id in order:
        group = by_id.get(workflow_id, [])
        counts = fold_counts((row[1], row[2]) for row in group)
        ended = all(TaskStatus(row[1]).is_final for row in group)
        finishes = [row[4] for row in group if row[4] is not None]
        found.append(
            WorkflowSummary(
                id=workflow_id,
                total=sum(counts.values()),
                counts={s: n for s, n in counts.items() if n},
                created_at=min((row[3] for row in group), default=0.0),
                finished_at=max(finishes) if ended and finishes else None,
            )
        )
    return found
