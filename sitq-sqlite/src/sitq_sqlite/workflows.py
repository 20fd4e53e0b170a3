"""Workflows in SQLite (`sitq.workflow_state`): the columns, what an enqueue stores, and what a
record reads back. The joins themselves are in `joins`.

Each task row carries its ``workflow_id``, ``allow_failure``, ``remaining`` (how many of its
parents have not ended yet, while it waits) and ``has_children``. The edges table holds one row
per (child, position, parent), indexed both ways; a record reads its ``parents`` from there
(`read_expressions`), so that counting a chord's callback down never rewrites a row holding
its thousands of parent ids.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sitq.backend import TaskRecord

from .joins import (
    MARK_DOOMED,
    MARK_NEW,
    UNSUCCESSFUL,
    failed_parent_error_sql,
    unended_parents_sql,
)

#: The workflow columns an enqueue writes, after the others.
INSERT_COLUMNS = ("workflow_id", "allow_failure", "remaining")


# -- schema ------------------------------------------------------------------------------------


def column_ddl() -> str:
    """The workflow columns of a new tasks table (inside its ``CREATE TABLE``)."""
    return """,
    workflow_id      TEXT,
    allow_failure    INTEGER NOT NULL DEFAULT 0,
    remaining        INTEGER NOT NULL DEFAULT 0,
    has_children     INTEGER NOT NULL DEFAULT 0"""


def migration(table: str) -> list[str]:
    """Version 4 → 5: the workflow columns (the rest is `ddl` and `workflow_ddl`, run after
    every migration; the dedupe index of version 4 already holds waiting tasks' keys)."""
    return [
        f"ALTER TABLE {table} ADD COLUMN workflow_id TEXT",
        f"ALTER TABLE {table} ADD COLUMN allow_failure INTEGER NOT NULL DEFAULT 0",
        f"ALTER TABLE {table} ADD COLUMN remaining INTEGER NOT NULL DEFAULT 0",
        f"ALTER TABLE {table} ADD COLUMN has_children INTEGER NOT NULL DEFAULT 0",
    ]


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
        f"WHERE e.child_id = c.id AND p.status IN {UNSUCCESSFUL}) "
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
        (f"UPDATE {t} SET error = {failed_parent_error_sql(t, t)} WHERE remaining < 0 "
         f"AND remaining = {MARK_DOOMED}", ()),
        (f"UPDATE {t} SET remaining = {unended_parents_sql(t, t)} WHERE remaining < 0 "
         f"AND remaining = {MARK_NEW}", ()),
        (f"UPDATE {t} SET status = 'pending' WHERE status = 'waiting' AND remaining <= 0", ()),
        (f"UPDATE {t} SET remaining = 0 WHERE remaining < 0", ()),
    ]  # fmt: skip


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
    # most tasks have no parents: SQLite's empty json_group_array is "[]", no decode needed
    record.parents = tuple(json.loads(parents)) if parents and parents != "[]" else ()
    record.allow_failure = bool(allow_failure)
    return record
