"""Enqueueing on PostgreSQL: a batch inserted in one statement, dedupe hits resolved to the
task holding their key, and a batch whose reply was lost recognized when it is retried.

Records with parents (workflows) are stored with their edges in one transaction, their stored
parents locked first (`sitq_postgres.workflows`).

A record with its own ``unique_for`` or ``unique_states`` (`sitq.flow_claim.chooses_uniqueness`)
is looked for by a query, under a transaction-scoped advisory lock on its dedupe key (taken in
sorted order), in the insert's transaction: two processes enqueueing the same key wait for each
other, and the second sees the first's task. The others are deduplicated by the dedupe index.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import asyncpg

from sitq.backend import TaskRecord
from sitq.errors import ConfigurationError
from sitq.flow_claim import batch_duplicate, chooses_uniqueness, unique_scope
from sitq.meta import encode_meta
from sitq.rules import first_repeated_id, repeated_id_error, taken_id_error
from sitq.workflow_state import parents_to_find, unknown_parent_error

from .sql import Statements
from .workflows import enqueue_args as workflow_args
from .workflows import store_edges

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
        [json.dumps(list(dict.fromkeys(r.limits))) if r.limits else None for r in records],
        [True if chooses_uniqueness(r) else None for r in records],
    ]


async def insert(
    conn: asyncpg.Connection,
    sql: Statements,
    records: Sequence[TaskRecord],
    args: list[Any],
    *,
    retried: bool,
    now: float,
    joined_at: float | None = None,
) -> tuple[list[str], bool]:
    """Insert ``records``; return their ids (dedupe resolved) and whether any was stored.

    ``now`` is the time ``unique_for`` counts back from. Records with parents are stored in
    one transaction with their edges: the stored parents locked first (so a parent ending
    meanwhile is seen ended, or sees its new children), an unknown one refused
    (`ConfigurationError`, nothing stored), then each child counted, at ``joined_at`` (None:
    the database clock) cancelled or released as its parents' outcomes decide.
    """
    repeated = first_repeated_id(r.id for r in records)
    if repeated is not None:
        raise repeated_id_error(repeated)
    pairs = parents_to_find(records)
    has_parents = any(r.parents for r in records)
    unique = any(chooses_uniqueness(r) for r in records)
    if not has_parents and not unique:
        ids, rows = await _insert(conn, sql, records, args, retried=retried, savepoint=False)
        return ids, bool(rows)
    async with conn.transaction():
        if pairs:
            parents = sorted({parent for _, parent in pairs})  # the lock order
            found = {row[0] for row in await conn.fetch(sql.workflow.lock_parents, parents)}
            for task_id, parent in pairs:
                if parent not in found:
                    raise unknown_parent_error(task_id, parent)
        hits: dict[str, str] = {}
        if unique:
            keys = sorted({r.dedupe_key for r in records if r.dedupe_key and chooses_uniqueness(r)})
            for key in keys:
                await conn.execute("SELECT pg_advisory_xact_lock($1)", sql.names.unique_lock(key))
            hits = await _unique_hits(conn, sql, records, now)
        rest = [r for r in records if r.id not in hits]
        ids, rows = [], []
        if rest:
            rest_args = enqueue_args(rest, args[0]) if hits else args
            ids, rows = await _insert(conn, sql, rest, rest_args, retried=retried, savepoint=True)
        if has_parents:
            await store_edges(conn, sql.workflow, rest, {row[0] for row in rows}, joined_at)
    stored_ids = iter(ids)
    return [hits[r.id] if r.id in hits else next(stored_ids) for r in records], bool(rows)


async def _unique_hits(
    conn: asyncpg.Connection, sql: Statements, records: Sequence[TaskRecord], now: float
) -> dict[str, str]:
    """The records with their own uniqueness that are duplicates, as record id → the id of
    the task they duplicate: the latest stored task with their key, in their
    ``unique_states``, created since ``now - unique_for``, or an earlier record of the batch
    (`sitq.flow_claim.batch_duplicate`)."""
    hits: dict[str, str] = {}
    earlier: dict[str, list[TaskRecord]] = {}
    for r in records:
        key = r.dedupe_key
        if key is None:
            continue
        if chooses_uniqueness(r):
            found = batch_duplicate(r, earlier.get(key, ()), now)
            if found is None:
                states, since = unique_scope(r, now)
                args: list[Any] = [key, states] + ([] if since is None else [since])
                found = await conn.fetchval(sql.unique_owner(since is not None), *args)
            if found is not None:
                hits[r.id] = found
                continue
        earlier.setdefault(key, []).append(r)
    return hits


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
