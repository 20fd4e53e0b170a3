"""Storing a batch of new tasks in SQLite: chunked inserts in one transaction, and what to
report when an id is taken or a dedupe key is held."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiosqlite

from sitq.backend import TaskRecord
from sitq.errors import ConfigurationError
from sitq.meta import encode_meta

from .database import retry_locked, settled
from .sql import Statements

_ENQUEUE_CHUNK = 2000  # rows per INSERT (14 parameters each; SQLite allows 32766)
_ID_CHUNK = 500

#: Runs one query and returns its rows (the backend's, under its mutex).
FetchAll = Callable[[str, Sequence[Any]], Awaitable[list[Any]]]


async def insert(
    db: aiosqlite.Connection, sql: Statements, records: Sequence[TaskRecord]
) -> set[str]:
    """Insert ``records`` (all of them or none: one transaction over several chunks) and
    return the ids stored; records skipped as dedupe hits are missing from it. The caller
    holds the connection's mutex; `sqlite3.IntegrityError` means an id is taken."""
    rows = [
        (r.id, r.function, r.payload, r.serializer, r.queue, r.priority, r.available_at,
         r.max_retries, r.timeout, r.dedupe_key, "pending", 0, r.created_at,
         encode_meta(r.meta))
        for r in records
    ]  # fmt: skip
    inserted: set[str] = set()
    chunks = [rows[i : i + _ENQUEUE_CHUNK] for i in range(0, len(rows), _ENQUEUE_CHUNK)]
    if len(chunks) > 1:
        await retry_locked(db.execute, "BEGIN IMMEDIATE")
    try:
        for chunk in chunks:
            statement = sql.enqueue(len(chunk))
            params = [v for row in chunk for v in row]
            found = await retry_locked(db.execute_fetchall, statement, params)
            inserted.update(row[0] for row in found)
        if len(chunks) > 1:
            await settled(db.execute("COMMIT"))
    except BaseException:
        if len(chunks) > 1 and db.in_transaction:
            await settled(db.execute("ROLLBACK"))
        raise
    return inserted


async def first_taken_id(fetchall: FetchAll, sql: Statements, records: Sequence[TaskRecord]) -> str:
    """The first id of ``records`` already stored (for the error of a refused batch)."""
    for i in range(0, len(records), _ID_CHUNK):
        chunk = [r.id for r in records[i : i + _ID_CHUNK]]
        found = await fetchall(sql.stored_ids(len(chunk)), chunk)
        if found:
            return str(found[0][0])
    return records[0].id


async def resolve_conflicts(
    fetchall: FetchAll, sql: Statements, records: Sequence[TaskRecord], inserted: set[str]
) -> list[str]:
    """Ids for the records skipped as dedupe hits: the task holding their key."""
    ids = []
    for r in records:
        if r.id in inserted:
            ids.append(r.id)
            continue
        found = await fetchall(sql.active_dedupe_owner, (r.dedupe_key,))
        if not found:  # it was active at insert time and has finished since
            found = await fetchall(sql.latest_dedupe_owner, (r.dedupe_key,))
        if not found:
            raise ConfigurationError(
                f"the task holding dedupe key {r.dedupe_key!r} was deleted while "
                f"enqueueing {r.id!r}; enqueue it again"
            )
        ids.append(found[0][0])
    return ids
