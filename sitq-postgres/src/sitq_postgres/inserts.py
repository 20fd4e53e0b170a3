"""Enqueueing on PostgreSQL: a batch inserted in one statement, dedupe hits resolved to the
task holding their key, and a batch whose reply was lost recognized when it is retried."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import asyncpg

from sitq.backend import TaskRecord
from sitq.errors import ConfigurationError
from sitq.meta import encode_meta
from sitq.rules import first_repeated_id, repeated_id_error, taken_id_error
from sitq.workflow_state import unknown_parent_error

from .sql import Statements
from .workflows import enqueue_args as workflow_args
from .workflows import parents_to_find, store_edges

#: Where a unique violation on the primary key names the taken id.
_TAKEN_ID = re.compile(r"Key \(id\)=\((?P<id>.*)\) already exists")


def enqueue_args(records: Sequence[TaskRecord], clock_reading: float | None) -> list[Any]:
    """The parameters of `Statements.enqueue`: ``clock_reading`` (None when the database
    clock decides, see `sql`), then one array per column."""
    return [
        clock_reading,
        [r.id for r in records],
        [r.function for r in records],
        [r.payload for r in records],
        [r.serializer for r in records],
        [r.queue for r in records],
        [r.priority for r in records],
        [r.available_at for r in records],
        [r.max_retries for r in records],
        [r.timeout for r in records],
        [r.dedupe_key for r in records],
        [r.created_at for r in records],
        [encode_meta(r.meta) for r in records],
        *workflow_args(records),
    ]


async def insert(
    conn: asyncpg.Connection,
    sql: Statements,
    records: Sequence[TaskRecord],
    args: list[Any],
    *,
    retried: bool,
    now: float | None = None,
) -> tuple[list[str], bool]:
    """Insert ``records``; return their ids (dedupe resolved) and whether any was stored.

    Records with parents are stored in one transaction with their edges: the stored parents
    locked first (so a parent ending meanwhile is seen ended, or sees its new children), an
    unknown one refused (`ConfigurationError`, nothing stored), then each child counted, at
    ``now`` (None: the database clock) cancelled or released as its parents' outcomes decide.
    """
    repeated = first_repeated_id(r.id for r in records)
    if repeated is not None:
        raise repeated_id_error(repeated)
    pairs = parents_to_find(records)
    if not any(r.parents for r in records):
        ids, rows = await _insert(conn, sql, records, args, retried=retried, savepoint=False)
        return ids, bool(rows)
    async with conn.transaction():
        parents = sorted({parent for _, parent in pairs})  # the lock order
        found = {row[0] for row in await conn.fetch(sql.workflow.lock_parents, parents)}
        for task_id, parent in pairs:
            if parent not in found:
                raise unknown_parent_error(task_id, parent)
        ids, rows = await _insert(conn, sql, records, args, retried=retried, savepoint=True)
        await store_edges(conn, sql.workflow, records, {row[0] for row in rows}, now)
    return ids, bool(rows)


async def _insert(
    conn: asyncpg.Connection,
    sql: Statements,
    records: Sequence[TaskRecord],
    args: list[Any],
    *,
    retried: bool,
    savepoint: bool,
) -> tuple[list[str], list[Any]]:
    """`insert` of ``records``: their ids, and the rows the insert returned (those it
    stored now). With ``savepoint``, inside `insert`'s transaction, a taken id leaves that
    transaction usable for the lookups that follow."""
    try:
        if savepoint:
            async with conn.transaction():
                rows = await conn.fetch(sql.enqueue, *args)
        else:
            rows = await conn.fetch(sql.enqueue, *args)
    except asyncpg.UniqueViolationError as exc:
        if not (retried and await _committed_before(conn, sql, records)):
            raise _taken(exc) from None
        rows = []  # our lost first attempt stored the batch
    inserted = {row[0] for row in rows}
    if len(inserted) == len(records):
        return [r.id for r in records], rows
    stored = {row[0] for row in await conn.fetch(sql.stored_ids, [r.id for r in records])}
    inserted |= stored
    keys = sorted({r.dedupe_key for r in records if r.id not in inserted and r.dedupe_key})
    owners = dict(await conn.fetch(sql.dedupe_owners, keys)) if keys else {}
    ids = []
    for r in records:
        if r.id in inserted:
            ids.append(r.id)
        elif r.dedupe_key in owners:
            ids.append(owners[r.dedupe_key])
        else:  # its key's holder was purged in between: nothing to point to
            raise ConfigurationError(
                f"task {r.id} was not stored: dedupe key {r.dedupe_key!r} was taken, and the "
                "task holding it has since been purged; enqueue it again"
            )
    return ids, rows


async def _committed_before(
    conn: asyncpg.Connection, sql: Statements, records: Sequence[TaskRecord]
) -> bool:
    """After a lost reply: did our own earlier attempt store this batch?"""
    found = {
        row[0]: (row[1], row[2])
        for row in await conn.fetch(sql.stored_ids, [r.id for r in records])
    }
    return bool(found) and all(
        found[r.id] == (r.payload, r.created_at) for r in records if r.id in found
    )


def _taken(exc: asyncpg.UniqueViolationError) -> ConfigurationError:
    """The error of an insert that hit a stored task id (named by the server's detail)."""
    found = _TAKEN_ID.search(exc.detail or "")
    if found is not None:
        return taken_id_error(found["id"])
    return ConfigurationError(
        f"a task id is already stored ({exc.detail or exc}); let sitq choose task ids "
        "(nothing in this enqueue was stored)"
    )
