"""Workflows in SQLite (`sitq.workflow_state`): what is stored, and how joins stay exact.

Each task row carries its ``workflow_id``, ``allow_failure``, ``remaining`` (how many of its
parents have not ended yet, while it waits) and ``has_children``. The edges table holds one row
per (child, position, parent), indexed both ways; a record reads its ``parents`` from there
(`read_expressions`), so that counting a chord's callback down never rewrites a row holding
its thousands of parent ids.

The joins live in two triggers, so every statement that ends a task (`finish`, `cancel`,
`recover_expired`, `cancel_workflow`) or requeues one releases or cancels its children in its
own transaction, whichever connection or process runs it, at no cost for tasks without children
(the trigger's ``WHEN`` reads ``has_children`` first). A statement ending a task sets its
``available_at`` to the backend's clock, and the trigger dates what it moves by it: released
children are due then, cascaded ones cancelled then.

* ``<table>_parent_ended``: a task that ended unsuccessfully cancels its waiting children that
  have no ``allow_failure``, and their descendants (one recursive CTE); then the waiting
  children of every task that just ended count it down, and those at zero become pending.
* ``<table>_parent_requeued``: a requeued task takes back to waiting the descendants cancelled
  for it (their error names it), unless another parent still failed; counters are recomputed.

Within a statement the rows a step changed are found again through ``remaining``: negative
values mark them (`MARK_DOOMED`, …) until the last step resets them, through a partial index
holding only negative values. Marks never outlive the statement or transaction that sets them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sitq.backend import TaskRecord
from sitq.workflow_state import PARENT_FAILED_PREFIX, unknown_parent_error

#: The workflow columns an enqueue writes, after the others.
INSERT_COLUMNS = ("workflow_id", "allow_failure", "remaining")

#: ``remaining`` of a task the enqueue just stored waiting (its count is not known yet).
MARK_NEW = -3
#: ``remaining`` of a task a parent's failure just cancelled.
MARK_DOOMED = -1
#: ``remaining`` of a task a requeue just took back to waiting.
MARK_REVIVED = -2
#: ``remaining`` of a revived task cancelled again (another parent still failed).
MARK_REDOOMED = -4

#: The statuses of a task not ended yet, which hold its dedupe key (`dedupe_index`).
ACTIVE = "('waiting', 'pending', 'running')"
_FINAL = "('succeeded', 'failed', 'dead', 'cancelled')"
_UNSUCCESSFUL = "('failed', 'dead', 'cancelled')"


# -- schema ------------------------------------------------------------------------------------


def column_ddl() -> str:
    """The workflow columns of a new tasks table (inside its ``CREATE TABLE``)."""
    return """,
    workflow_id      TEXT,
    allow_failure    INTEGER NOT NULL DEFAULT 0,
    remaining        INTEGER NOT NULL DEFAULT 0,
    has_children     INTEGER NOT NULL DEFAULT 0"""


def dedupe_index(table: str) -> str:
    """The unique index of dedupe keys over waiting, pending and running tasks (idempotent)."""
    return (
        f"CREATE UNIQUE INDEX IF NOT EXISTS {table}_dedupe ON {table} (dedupe_key) "
        f"WHERE dedupe_key IS NOT NULL AND status IN {ACTIVE}"
    )


def migration(table: str) -> list[str]:
    """Version 3 → 4: the workflow columns, and dedupe keys held by waiting tasks too (the
    rest is `ddl`, run after every migration)."""
    return [
        f"DROP INDEX IF EXISTS {table}_dedupe",
        dedupe_index(table),
        f"ALTER TABLE {table} ADD COLUMN workflow_id TEXT",
        f"ALTER TABLE {table} ADD COLUMN allow_failure INTEGER NOT NULL DEFAULT 0",
        f"ALTER TABLE {table} ADD COLUMN remaining INTEGER NOT NULL DEFAULT 0",
        f"ALTER TABLE {table} ADD COLUMN has_children INTEGER NOT NULL DEFAULT 0",
    ]


def ddl(table: str) -> list[str]:
    """The edges table, the indexes and the triggers of workflows (idempotent; run once the
    workflow columns exist)."""
    t, e = table, f"{table}_edges"
    return [
        f"""CREATE TABLE IF NOT EXISTS {e} (
    child_id  TEXT NOT NULL,
    position  INTEGER NOT NULL,
    parent_id TEXT NOT NULL,
    PRIMARY KEY (child_id, position)
) WITHOUT ROWID""",
        f"CREATE INDEX IF NOT EXISTS {e}_parent ON {e} (parent_id, child_id)",
        f"CREATE INDEX IF NOT EXISTS {t}_workflow ON {t} (workflow_id) "
        "WHERE workflow_id IS NOT NULL",
        f"CREATE INDEX IF NOT EXISTS {t}_waiting ON {t} (remaining) WHERE status = 'waiting'",
        f"CREATE INDEX IF NOT EXISTS {t}_marked ON {t} (remaining) WHERE remaining < 0",
        _ended_trigger(t),
        _requeued_trigger(t),
        # a deleted task (purge, prune) takes its edges to its parents along
        f"""CREATE TRIGGER IF NOT EXISTS {t}_child_deleted AFTER DELETE ON {t}
BEGIN DELETE FROM {e} WHERE child_id = old.id; END""",
    ]


def _failed_parent_error(table: str, child: str) -> str:
    """`sitq.workflow_state.parent_failed_error` of the first parent (by position) of
    ``child`` that did not succeed."""
    return (
        f"(SELECT '{PARENT_FAILED_PREFIX}: ' || p.id || ' ended ' || p.status "
        f"FROM {table}_edges AS e JOIN {table} AS p ON p.id = e.parent_id "
        f"WHERE e.child_id = {child}.id AND p.status IN {_UNSUCCESSFUL} "
        "ORDER BY e.position LIMIT 1)"
    )


def _unended_parents(table: str, child: str) -> str:
    """How many parents of ``child`` have not ended."""
    return (
        f"(SELECT count(*) FROM {table}_edges AS e JOIN {table} AS p ON p.id = e.parent_id "
        f"WHERE e.child_id = {child}.id AND p.status IN {ACTIVE})"
    )


def _ended_trigger(t: str) -> str:
    """The trigger releasing or cancelling the children of a task that ended."""
    e = f"{t}_edges"
    doomed = (
        f"WITH RECURSIVE doomed(id) AS ("
        f"SELECT c.id FROM {e} AS e JOIN {t} AS c ON c.id = e.child_id "
        "WHERE e.parent_id = new.id AND c.status = 'waiting' AND NOT c.allow_failure "
        f"UNION SELECT c.id FROM doomed JOIN {e} AS e ON e.parent_id = doomed.id "
        f"JOIN {t} AS c ON c.id = e.child_id "
        "WHERE c.status = 'waiting' AND NOT c.allow_failure) SELECT id FROM doomed"
    )
    return f"""CREATE TRIGGER IF NOT EXISTS {t}_parent_ended AFTER UPDATE OF status ON {t}
WHEN new.has_children AND new.remaining >= 0 AND old.status IN {ACTIVE}
    AND new.status IN {_FINAL}
BEGIN
    UPDATE {t} SET status = 'cancelled', finished_at = new.available_at,
        available_at = new.available_at, remaining = {MARK_DOOMED}
    WHERE new.status <> 'succeeded' AND id IN ({doomed});
    UPDATE {t} SET error = {_failed_parent_error(t, t)} WHERE remaining < 0;
    UPDATE {t} SET remaining = remaining
        - (SELECT count(*) FROM {e} AS e WHERE e.parent_id = new.id AND e.child_id = {t}.id)
        - (SELECT count(*) FROM {t} AS p CROSS JOIN {e} AS e
           WHERE p.remaining < 0 AND e.parent_id = p.id AND e.child_id = {t}.id)
    WHERE status = 'waiting' AND id IN (
        SELECT child_id FROM {e} WHERE parent_id = new.id
        UNION SELECT e.child_id FROM {t} AS p JOIN {e} AS e ON e.parent_id = p.id
        WHERE p.remaining < 0);
    UPDATE {t} SET status = 'pending', available_at = new.available_at
    WHERE status = 'waiting' AND remaining <= 0;
    UPDATE {t} SET remaining = 0 WHERE remaining < 0;
END"""


def _requeued_trigger(t: str) -> str:
    """The trigger taking back to waiting the descendants cancelled for a requeued task."""
    e = f"{t}_edges"
    named = f"'{PARENT_FAILED_PREFIX}: '"
    revived = (
        f"WITH RECURSIVE revived(id) AS ("
        f"SELECT c.id FROM {e} AS e JOIN {t} AS c ON c.id = e.child_id "
        "WHERE e.parent_id = new.id AND c.status = 'cancelled' "
        f"AND c.error = {named} || new.id || ' ended ' || old.status "
        f"UNION SELECT c.id FROM revived JOIN {e} AS e ON e.parent_id = revived.id "
        f"JOIN {t} AS c ON c.id = e.child_id "
        f"WHERE c.status = 'cancelled' AND c.error = {named} || revived.id || ' ended cancelled'"
        ") SELECT id FROM revived"
    )
    redoomed = (
        f"WITH RECURSIVE again(id) AS ("
        f"SELECT c.id FROM {t} AS c WHERE c.remaining < 0 AND c.remaining = {MARK_REVIVED} "
        f"AND EXISTS (SELECT 1 FROM {e} AS e JOIN {t} AS p ON p.id = e.parent_id "
        f"WHERE e.child_id = c.id AND p.status IN {_UNSUCCESSFUL}) "
        f"UNION SELECT c.id FROM again JOIN {e} AS e ON e.parent_id = again.id "
        f"JOIN {t} AS c ON c.id = e.child_id WHERE c.remaining = {MARK_REVIVED}"
        ") SELECT id FROM again"
    )
    return f"""CREATE TRIGGER IF NOT EXISTS {t}_parent_requeued AFTER UPDATE OF status ON {t}
WHEN new.has_children AND new.remaining >= 0 AND old.status IN {_UNSUCCESSFUL}
    AND new.status IN {ACTIVE}
BEGIN
    UPDATE {t} SET status = 'waiting', remaining = {MARK_REVIVED} WHERE id IN ({revived});
    UPDATE {t} SET status = 'cancelled', remaining = {MARK_REDOOMED} WHERE id IN ({redoomed});
    UPDATE {t} SET error = {_failed_parent_error(t, t)}
    WHERE remaining < 0 AND remaining = {MARK_REDOOMED};
    UPDATE {t} SET remaining = {_unended_parents(t, t)}
    WHERE status = 'waiting' AND remaining >= 0 AND id IN (
        SELECT child_id FROM {e} WHERE parent_id = new.id
        UNION SELECT e.child_id FROM {t} AS p JOIN {e} AS e ON e.parent_id = p.id
        WHERE p.remaining < 0 AND p.remaining = {MARK_REVIVED});
    UPDATE {t} SET error = NULL, finished_at = NULL, remaining = {_unended_parents(t, t)}
    WHERE remaining < 0 AND remaining = {MARK_REVIVED};
    UPDATE {t} SET remaining = 0 WHERE remaining < 0;
END"""


# -- enqueue -----------------------------------------------------------------------------------


def insert_values(record: TaskRecord) -> tuple[Any, ...]:
    """The status then the `INSERT_COLUMNS` values of ``record``: a task with parents is
    stored waiting, its count to be settled (`settle_new`)."""
    return (
        "waiting" if record.parents else "pending",
        record.workflow_id,
        1 if record.allow_failure else 0,
        MARK_NEW if record.parents else 0,
    )


def settle_new(table: str, records: Sequence[TaskRecord], now: float) -> list[tuple[str, Any]]:
    """The statements (with parameters) that follow the insert of ``records`` in its
    transaction: their edges (an unknown parent fails the transaction with
    `sqlite3.IntegrityError`, as a taken id does), their parents flagged, then
    each new waiting task counted, released or cancelled as its parents' outcomes decide."""
    waiting = [r for r in records if r.parents]
    if not waiting:
        return []
    t, e = table, f"{table}_edges"
    edges = json.dumps([[r.id, i, p] for r in waiting for i, p in enumerate(r.parents)])
    parents = json.dumps(sorted({p for r in waiting for p in r.parents}))
    doomed = (
        f"WITH RECURSIVE doomed(id) AS ("
        f"SELECT c.id FROM {t} AS c WHERE c.remaining < 0 AND c.remaining = {MARK_NEW} "
        f"AND NOT c.allow_failure AND EXISTS (SELECT 1 FROM {e} AS e "
        f"JOIN {t} AS p ON p.id = e.parent_id "
        f"WHERE e.child_id = c.id AND p.status IN {_UNSUCCESSFUL}) "
        f"UNION SELECT c.id FROM doomed JOIN {e} AS e ON e.parent_id = doomed.id "
        f"JOIN {t} AS c ON c.id = e.child_id "
        f"WHERE c.remaining = {MARK_NEW} AND NOT c.allow_failure) SELECT id FROM doomed"
    )
    return [
        (
            # an unknown parent is stored as NULL, which fails the transaction; a child
            # skipped as a dedupe hit has no edges
            f"INSERT INTO {e} (child_id, position, parent_id) "
            "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), "
            f"(SELECT id FROM {t} WHERE id = json_extract(value, '$[2]')) FROM json_each(?) "
            f"WHERE json_extract(value, '$[0]') IN (SELECT id FROM {t} WHERE remaining < 0)",
            (edges,),
        ),
        (
            f"UPDATE {t} SET has_children = 1 WHERE id IN (SELECT value FROM json_each(?))",
            (parents,),
        ),
        (
            f"UPDATE {t} SET status = 'cancelled', finished_at = ?, remaining = {MARK_DOOMED} "
            f"WHERE id IN ({doomed})",
            (now,),
        ),
        (f"UPDATE {t} SET error = {_failed_parent_error(t, t)} WHERE remaining < 0 "
         f"AND remaining = {MARK_DOOMED}", ()),
        (f"UPDATE {t} SET remaining = {_unended_parents(t, t)} WHERE remaining < 0 "
         f"AND remaining = {MARK_NEW}", ()),
        (f"UPDATE {t} SET status = 'pending' WHERE status = 'waiting' AND remaining <= 0", ()),
        (f"UPDATE {t} SET remaining = 0 WHERE remaining < 0", ()),
    ]  # fmt: skip


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


# -- reading -----------------------------------------------------------------------------------


def read_expressions(table: str) -> tuple[str, str, str]:
    """What a record's workflow fields are read from, selected after the other columns:
    ``workflow_id``, the parents as a JSON array in order, ``allow_failure``."""
    parents = (
        "(SELECT json_group_array(parent_id) FROM "
        f"(SELECT parent_id FROM {table}_edges WHERE child_id = {table}.id ORDER BY position))"
    )
    return ("workflow_id", parents, "allow_failure")


def read_fields(record: TaskRecord, values: Sequence[Any]) -> TaskRecord:
    """``record`` with its workflow fields set from ``values`` (`read_expressions`)."""
    workflow_id, parents, allow_failure = values
    record.workflow_id = workflow_id
    record.parents = tuple(json.loads(parents)) if parents else ()
    record.allow_failure = bool(allow_failure)
    return record
