"""Storing a batch of new tasks in SQLite: chunked inserts in one transaction, and what to
report when an id is taken or a dedupe key is held.

Two drivers run the same statements: `insert` on the backend's aiosqlite connection, and
`insert_blocking` on a calling thread's own `sqlite3` connection (`sitq_sqlite.blocking`). The
queries around an insert (`unique_hits` before it, `taken_id` and `dedupe_owners` after it)
are written once, as steps that yield each query and receive its rows; `answer` and
`answer_blocking` run them.

A record with its own ``unique_for`` or ``unique_states`` (`sitq.flow_claim.chooses_uniqueness`)
is looked for by a query under the write lock, before the insert and in its transaction; the
others are deduplicated by the dedupe index, as always. Records with parents (workflows) are
stored with their edges and counted in the same transaction (`workflows.settle_new`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any, TypeVar

import aiosqlite

from sitq.backend import TaskRecord
from sitq.errors import ConfigurationError
from sitq.flow_claim import batch_duplicate, chooses_uniqueness, unique_scope
from sitq.meta import encode_meta
from sitq.rules import first_repeated_id, repeated_id_error, taken_id_error
from sitq.workflow_state import parents_to_find, unknown_parent_error

from .database import retry_locked, retry_locked_blocking, settled
from .limits import encode_keys
from .sql import Statements
from .workflows import insert_values, settle_new

T = TypeVar("T")

_ENQUEUE_CHUNK = 1500  # rows per INSERT (19 parameters each; SQLite allows 32766)
_ID_CHUNK = 500

#: One query and its parameters.
Query = tuple[str, Sequence[Any]]
#: Steps of a lookup: each query is yielded, its rows are sent back; the answer is returned.
Steps = Generator[Query, list[Any], T]
#: Runs one query and returns its rows (the backend's, under its mutex).
FetchAll = Callable[[str, Sequence[Any]], Awaitable[list[Any]]]
#: The same, blocking.
FetchAllBlocking = Callable[[str, Sequence[Any]], list[Any]]


def insert_plan(sql: Statements, records: Sequence[TaskRecord], now: float) -> list[Query]:
    """The statements storing ``records`` at ``now``, with their parameters: one INSERT per
    chunk, then the edges and counts of those with parents (`workflows.settle_new`); more
    than one must run in one transaction."""
    rows = [_row(r) for r in records]
    settle = settle_new(sql.t, records, now)
    if len(rows) == 1:
        return [(sql.enqueue_one, rows[0]), *settle]
    chunks = [rows[i : i + _ENQUEUE_CHUNK] for i in range(0, len(rows), _ENQUEUE_CHUNK)]
    inserts = [(sql.enqueue(len(chunk)), [v for row in chunk for v in row]) for chunk in chunks]
    return [*inserts, *settle]


def _row(r: TaskRecord) -> tuple[Any, ...]:
    """The `schema.INSERT_COLUMNS` values of ``r``."""
    status, *workflow = insert_values(r)
    return (
        r.id, r.function, r.payload, r.serializer, r.queue, r.priority, r.available_at,
        r.max_retries, r.timeout, r.dedupe_key, status, 0, r.created_at, encode_meta(r.meta),
        encode_keys(r.limits), 1 if chooses_uniqueness(r) else None, *workflow,
    )  # fmt: skip


async def insert(
    db: aiosqlite.Connection, sql: Statements, records: Sequence[TaskRecord], now: float
) -> tuple[set[str], dict[str, str]]:
    """Insert ``records`` (all of them or none: one transaction over several chunks) and
    return the ids stored and the duplicates found by `unique_hits` (record id → stored id);
    records skipped as dedupe hits are in neither. Inside the caller's transaction if it has
    one open. The caller holds the connection's mutex; `sqlite3.IntegrityError` means an id
    is taken."""
    checked = any(chooses_uniqueness(r) for r in records)
    inserted: set[str] = set()
    hits: dict[str, str] = {}
    plan = insert_plan(sql, records, now)
    alone = db.in_transaction or (len(plan) == 1 and not checked)  # else: a transaction
    if not alone:
        await retry_locked(db.execute, "BEGIN IMMEDIATE")
    try:
        if checked:

            async def fetchall(statement: str, params: Sequence[Any]) -> list[Any]:
                return list(await settled(db.execute_fetchall(statement, params)))

            hits = await answer(unique_hits(sql, records, now), fetchall)
            plan = insert_plan(sql, [r for r in records if r.id not in hits], now)
        for statement, params in plan:
            found = await retry_locked(db.execute_fetchall, statement, params)
            inserted.update(row[0] for row in found)
        if not alone:
            await settled(db.execute("COMMIT"))
    except BaseException:
        if not alone and db.in_transaction:
            await settled(db.execute("ROLLBACK"))
        raise
    return inserted, hits


def insert_blocking(
    conn: sqlite3.Connection, sql: Statements, records: Sequence[TaskRecord], now: float
) -> tuple[set[str], dict[str, str]]:
    """`insert` on a `sqlite3` connection in autocommit mode, in the calling thread."""
    checked = any(chooses_uniqueness(r) for r in records)
    inserted: set[str] = set()
    hits: dict[str, str] = {}
    plan = insert_plan(sql, records, now)
    alone = conn.in_transaction or (len(plan) == 1 and not checked)  # else: a transaction
    if not alone:
        retry_locked_blocking(conn.execute, "BEGIN IMMEDIATE")
    try:
        if checked:
            steps = unique_hits(sql, records, now)
            hits = answer_blocking(steps, lambda q, p: _fetchall(conn, q, p))
            plan = insert_plan(sql, [r for r in records if r.id not in hits], now)
        for statement, params in plan:
            found = retry_locked_blocking(_fetchall, conn, statement, params)
            inserted.update(row[0] for row in found)
        if not alone:
            conn.execute("COMMIT")
    except BaseException:
        if not alone and conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return inserted, hits


def unique_hits(
    sql: Statements, records: Sequence[TaskRecord], now: float
) -> Steps[dict[str, str]]:
    """The records with their own uniqueness that are duplicates, as record id → the id of
    the task they duplicate: the latest stored task with their key, in their
    ``unique_states``, created since ``now - unique_for``; or an earlier record of the batch
    with their key (stored pending, created at or after that time)."""
    hits: dict[str, str] = {}
    earlier: dict[str, list[TaskRecord]] = {}
    for r in records:
        key = r.dedupe_key
        if key is None:
            continue
        if chooses_uniqueness(r):
            mate = batch_duplicate(r, earlier.get(key, ()), now)
            if mate is not None:
                hits[r.id] = mate
                continue
            states, since = unique_scope(r, now)
            params: list[Any] = [key, *states] + ([] if since is None else [since])
            found = yield sql.unique_owner(len(states), since is not None), params
            if found:
                hits[r.id] = found[0][0]
                continue
        earlier.setdefault(key, []).append(r)
    return hits


def _fetchall(conn: sqlite3.Connection, statement: str, params: Sequence[Any]) -> list[Any]:
    return conn.execute(statement, params).fetchall()


def refuse_repeated(records: Sequence[TaskRecord]) -> None:
    """`ConfigurationError` if an id appears twice in ``records``, or a parent later than its
    child (checked before storing)."""
    repeated = first_repeated_id(r.id for r in records)
    if repeated is not None:
        raise repeated_id_error(repeated)
    parents_to_find(records)


def enqueued_ids(
    sql: Statements,
    records: Sequence[TaskRecord],
    inserted: set[str] | None,
    hits: dict[str, str] | None = None,
) -> Steps[list[str]]:
    """What an enqueue of ``records`` returns once its insert ran: their ids, a dedupe hit's
    being the id of the task holding its key (``hits`` has those `unique_hits` found).
    ``inserted`` is what the insert returned, None if it raised `sqlite3.IntegrityError` (an
    id is taken, or a parent is unknown: `ConfigurationError` naming it)."""
    if inserted is None:
        yield from refuse_unknown_parent(sql, parents_to_find(records))
        raise taken_id_error((yield from taken_id(sql, records)))
    if len(inserted) == len(records):
        return [r.id for r in records]
    return (yield from dedupe_owners(sql, records, inserted, hits or {}))


def refuse_unknown_parent(sql: Statements, pairs: Sequence[tuple[str, str]]) -> Steps[None]:
    """Raise `sitq.workflow_state.unknown_parent_error` for the first of the ``(task id,
    parent id)`` pairs whose parent is not stored."""
    for i in range(0, len(pairs), _ID_CHUNK):
        chunk = pairs[i : i + _ID_CHUNK]
        parents = sorted({parent for _, parent in chunk})
        found = {row[0] for row in (yield sql.stored_ids(len(parents)), parents)}
        for task_id, parent in chunk:
            if parent not in found:
                raise unknown_parent_error(task_id, parent)


def taken_id(sql: Statements, records: Sequence[TaskRecord]) -> Steps[str]:
    """The first id of ``records`` already stored (for the error of a refused batch)."""
    for i in range(0, len(records), _ID_CHUNK):
        chunk = [r.id for r in records[i : i + _ID_CHUNK]]
        found = yield sql.stored_ids(len(chunk)), chunk
        if found:
            return str(found[0][0])
    return records[0].id


def dedupe_owners(
    sql: Statements, records: Sequence[TaskRecord], inserted: set[str], hits: dict[str, str]
) -> Steps[list[str]]:
    """The ids to return for ``records``: their own if stored, else (a dedupe hit) the id of
    the task holding their key."""
    ids = []
    for r in records:
        if r.id in inserted:
            ids.append(r.id)
            continue
        if r.id in hits:
            ids.append(hits[r.id])
            continue
        found = yield sql.active_dedupe_owner, (r.dedupe_key,)
        if not found:  # it was active at insert time and has finished since
            found = yield sql.latest_dedupe_owner, (r.dedupe_key,)
        if not found:
            raise ConfigurationError(
                f"the task holding dedupe key {r.dedupe_key!r} was deleted while "
                f"enqueueing {r.id!r}; enqueue it again"
            )
        ids.append(found[0][0])
    return ids


async def answer(steps: Steps[T], fetchall: FetchAll) -> T:
    """Run ``steps`` with ``fetchall`` answering each query; return what they return."""
    try:
        query = next(steps)
        while True:
            query = steps.send(await fetchall(*query))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def answer_blocking(steps: Steps[T], fetchall: FetchAllBlocking) -> T:
    """`answer`, blocking."""
    try:
        query = next(steps)
        while True:
            query = steps.send(fetchall(*query))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
