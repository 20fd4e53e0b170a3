"""`SQLiteBackend`: sitq on one SQLite file, through aiosqlite.

Every aiosqlite call is a hop to the connection's thread (~100 µs), more than a SQLite write
itself, so each operation is one statement over a whole batch: a claim is one
``UPDATE … RETURNING`` over up to ``limit`` rows, a finish is one ``UPDATE … FROM (VALUES …)``
over every outcome reported since the last one. A single statement in autocommit mode is its own
transaction and takes the write lock up front, so claims are atomic across processes and the
busy timeout applies (no ``SQLITE_BUSY_SNAPSHOT`` surprises of deferred transactions).

The statement text is in `sql`, the table and the pragmas in `schema`, opening the connection
in `opening`, its care in `database`, storing new tasks in `inserts`, and wake-ups from other
processes in `wake` (sockets), or `watch` (polling the WAL) where sockets cannot be used.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aiosqlite

from sitq import TaskStatus
from sitq.backend import (
    Backend,
    Capability,
    Outcome,
    ScheduleState,
    TaskRecord,
    record_from_row,
)
from sitq.errors import ConfigurationError, QueueClosed
from sitq.flow_claim import states_of
from sitq.flow_control import LimitRule, LimitState, check_pattern
from sitq.progress import Progress
from sitq.retention import check_prune_args
from sitq.rules import (
    LOST_WORKER_ERROR,
    check_list_args,
    fold_counts,
    fold_queue_counts,
    purge_statuses,
    status_texts,
)
from sitq.search import TaskSearch
from sitq.signals import AsyncMutex
from sitq.throughput import THROUGHPUT_STATUSES, check_throughput_args, fold_throughput

from .blocking import ThreadConnections
from .database import create_private, retry_locked, retry_locked_blocking, settled
from .inserts import (
    answer,
    answer_blocking,
    enqueued_ids,
    insert,
    insert_blocking,
    refuse_repeated,
)
from .limits import (
    ClaimArgs,
    FlowCache,
    FlowStatements,
    claim_limited,
    count_keys,
    decode_keys,
    key_record,
    read_flow,
    rule_row,
    write_flow,
)
from .opening import open_connection
from .preflight import check_file, warn_if_shared
from .schedules import ScheduleStatements, state_from_row, store_fire
from .schema import COLUMNS, SYNCHRONOUS_MODES, incremental_vacuum, space_pragmas
from .sql import Statements
from .wakeups import FINISHED, WORK, Wakeups
from .workflow_methods import WorkflowMethods, WorkflowStatements
from .workflows import read_fields

_FINISH_CHUNK = 1000
#: Ids per statement of `SQLiteBackend.delete_tasks` (under SQLite's bound-parameter limit).
_DELETE_BATCH = 500
#: Rowids of claimed tasks remembered for their outcomes at most (see `SQLiteBackend.finish`).
_MAX_REMEMBERED = 100_000
#: Free pages (4 KiB each by default) a quick `reclaim_space` leaves in the file for the next
#: writes, instead of giving them back and growing the file again at once.
_SPARE_PAGES = 256


#: Where a row selected as `sql.select_list` has the task's limit keys, and where its
#: workflow fields start.
_LIMIT_KEYS_AT = COLUMNS.index("limit_keys")
_WORKFLOW_AT = len(COLUMNS)


def _record(row: Sequence[Any]) -> TaskRecord:
    """A `TaskRecord` from a row selected as `sql.select_list`."""
    record = read_fields(record_from_row(row), row[_WORKFLOW_AT:])
    record.limits = decode_keys(row[_LIMIT_KEYS_AT])
    return record


class SQLiteBackend(WorkflowMethods, Backend):
    """Tasks in one SQLite file (or in memory, for one process).

    :param path: the database file (created 0600 if missing), or ``":memory:"``.
    :param table: name of the tasks table.
    :param busy_timeout: seconds to wait for another process's write lock.
    :param synchronous: SQLite's ``synchronous`` setting; ``NORMAL`` survives process crashes,
        ``FULL`` also power loss, at a cost per commit.
    """

    url_schemes = ("sqlite",)

    def __init__(
        self,
        path: str | os.PathLike[str] = "sitq.db",
        *,
        table: str = "sitq_tasks",
        busy_timeout: float = 30.0,
        synchronous: str = "NORMAL",
    ) -> None:
        path = os.fspath(path)
        if not isinstance(path, str) or not path:
            raise ConfigurationError(f"SQLiteBackend needs a file path or ':memory:', got {path!r}")
        if not table.replace("_", "").isalnum():
            raise ConfigurationError(f"table name {table!r} must be letters, digits and '_'")
        if synchronous.upper() not in SYNCHRONOUS_MODES:
            raise ConfigurationError(
                f"synchronous={synchronous!r}; choose one of {', '.join(SYNCHRONOUS_MODES)}"
            )
        self.path = path
        self.table = table
        self.busy_timeout = busy_timeout
        self.synchronous = synchronous.upper()
        self._sql = Statements(table)
        self._schedule_sql = ScheduleStatements(table)
        self._flow_sql = FlowStatements(table)
        self._flow = FlowCache()
        self._workflow_sql = WorkflowStatements(table, self._sql.select)
        # ":memory:" cannot have a second connection, nor be seen by another process
        self.capabilities = (
            frozenset(
                {
                    Capability.EXPIRE_RESULTS,
                    Capability.PROGRESS,
                    Capability.PRUNE,
                    Capability.SCHEDULES,
                    Capability.FLOW_CONTROL,
                    Capability.WORKFLOWS,
                }
            )
            if self.in_memory
            else frozenset(
                {
                    Capability.EXPIRE_RESULTS,
                    Capability.PROGRESS,
                    Capability.PRUNE,
                    Capability.SCHEDULES,
                    Capability.HEARTBEAT_BACKEND,
                    Capability.CROSS_PROCESS_WAKEUPS,
                    Capability.BLOCKING_ENQUEUE,
                    Capability.FLOW_CONTROL,
                    Capability.WORKFLOWS,
                }
            )
        )
        self._conn: aiosqlite.Connection | None = None
        self._mutex = AsyncMutex()
        self._closed = False
        self._threads = ThreadConnections(
            path, synchronous=self.synchronous, busy_timeout=busy_timeout
        )
        self._wakeups = None if self.in_memory else Wakeups(path, table, lambda: self.clock())
        self._claimed_rowids: dict[str, int] = {}  # task id -> rowid, until its outcome
        self._key = (
            f"sqlite-memory:{id(self)}" if self.in_memory else f"sqlite:{Path(path).resolve()}"
        )

    @classmethod
    def from_url(cls, url: str) -> SQLiteBackend:
        """``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``sqlite://:memory:``."""
        parts = urlsplit(url)
        if parts.scheme.split("+", 1)[0].lower() != "sqlite":
            raise ConfigurationError(
                f"{url!r} is not a sqlite URL; write e.g. sqlite:///tasks.db or sqlite://:memory:"
            )
        if parts.query or parts.fragment:
            raise ConfigurationError(
                f"{url!r}: options in a sqlite URL are not supported; pass them as arguments, "
                "e.g. SQLiteBackend('tasks.db', busy_timeout=60)"
            )
        if parts.netloc and parts.netloc != ":memory:":
            raise ConfigurationError(
                f"{url!r}: write sqlite:///relative/path.db or sqlite:////absolute/path.db "
                "(three or four slashes)"
            )
        path = parts.netloc or unquote(parts.path)[1:]
        if not path:
            raise ConfigurationError(f"{url!r} names no file; write e.g. sqlite:///tasks.db")
        return cls(path)

    @property
    def in_memory(self) -> bool:
        """True for a ``:memory:`` database (one connection, one process)."""
        return self.path == ":memory:"

    @property
    def notify_key(self) -> str:
        """Backends opened on the same file share in-process wake-ups."""
        return self._key

    def __repr__(self) -> str:
        return f"SQLiteBackend({self.path!r})"

    def heartbeat_backend(self) -> SQLiteBackend | None:
        """A second connection to the same file, so that a worker's heartbeat never waits
        behind this one (None for ``:memory:``, which cannot have a second connection)."""
        if self.in_memory:
            return None
        side = SQLiteBackend(
            self.path, table=self.table, busy_timeout=self.busy_timeout,
            synchronous=self.synchronous,
        )  # fmt: skip
        side.clock = self.clock
        return side

    # -- wake-ups from other processes --------------------------------------------------------

    async def wait_for_work(self, timeout: float) -> None:
        """Return on an enqueue in this process or another (a datagram: see
        `sitq_sqlite.wakeups`; where sockets cannot be used, within ~50 ms of another
        process committing due work), or after ``timeout``."""
        if self._wakeups is None:
            return await super().wait_for_work(timeout)
        await self._wakeups.wait(WORK, self.enqueued_signal, timeout)

    async def wait_for_finish(self, timeout: float) -> None:
        """Return on a finish in this process or another (as `wait_for_work`), or after
        ``timeout``."""
        if self._wakeups is None:
            return await super().wait_for_finish(timeout)
        await self._wakeups.wait(FINISHED, self.finished_signal, timeout)

    def notify_enqueued(self) -> None:
        """Wake the waiters for work of this process and of the others."""
        super().notify_enqueued()
        if self._wakeups is not None:
            self._wakeups.send(WORK)

    def notify_finished(self) -> None:
        """Wake the waiters for results of this process and of the others."""
        super().notify_finished()
        if self._wakeups is not None:
            self._wakeups.send(FINISHED)

    # -- connection --------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the connection, set WAL and create the schema (idempotent)."""
        if self._closed:
            raise QueueClosed(f"{self!r} was closed")
        if self._conn is not None:
            return
        async with self._mutex:
            if self._conn is not None:  # another coroutine connected while this one waited
                # mypy narrowed _conn to None above; the tests' run checks without
                # warn_unreachable, where this ignore is unused
                return  # type: ignore[unreachable, unused-ignore]
            if not self.in_memory:
                check_file(self.path, self.table, self.busy_timeout)  # before any write
                warn_if_shared(self.path)
                create_private(self.path)
            self._conn = await open_connection(
                self.path,
                self.table,
                in_memory=self.in_memory,
                synchronous=self.synchronous,
                busy_timeout=self.busy_timeout,
            )

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        self._closed = True
        self._threads.close()
        if self._wakeups is not None:
            self._wakeups.close()
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def _db(self) -> aiosqlite.Connection:
        if self._conn is None:
            await self.connect()
        assert self._conn is not None
        return self._conn

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        db = await self._db()
        async with self._mutex:
            return list(await retry_locked(db.execute_fetchall, sql, params))

    def _read(self, row: Sequence[Any]) -> TaskRecord:
        """A `TaskRecord` from a row selected as `sql.select_list`."""
        return _record(row)

    async def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        db = await self._db()
        async with self._mutex:
            cursor = await retry_locked(db.execute, sql, params)
            count = cursor.rowcount
            await settled(cursor.close())
            return int(count)

    # -- enqueue -----------------------------------------------------------------------------

    async def enqueue_many(self, records: Sequence[TaskRecord]) -> list[str]:
        """Insert records in one transaction; dedupe keys map to the existing active task."""
        if not records:
            return []
        refuse_repeated(records)
        db = await self._db()
        inserted: set[str] | None = None
        hits: dict[str, str] = {}
        try:
            async with self._mutex:
                inserted, hits = await insert(db, self._sql, records, self.clock())
        except sqlite3.IntegrityError:  # nothing of the batch was stored
            pass
        ids = await answer(enqueued_ids(self._sql, records, inserted, hits), self._fetchall)
        if inserted:
            self.notify_enqueued()
        return ids

    def enqueue_many_blocking(self, records: Sequence[TaskRecord]) -> list[str]:
        """`enqueue_many` on the calling thread's own connection (`sitq_sqlite.blocking`);
        the backend must be connected (its schema exists). Not for ``:memory:``, which
        cannot have a second connection."""
        if self.in_memory:
            return super().enqueue_many_blocking(records)
        if self._conn is None and not self._closed:
            raise ConfigurationError(
                f"{self!r} is not connected; call await backend.connect() before "
                "enqueue_many_blocking (SyncTaskQueue does)"
            )
        if not records:
            return []
        refuse_repeated(records)
        return self._threads.run(lambda conn: self._enqueue_on(conn, records))

    def _enqueue_on(self, conn: sqlite3.Connection, records: Sequence[TaskRecord]) -> list[str]:
        inserted: set[str] | None = None
        hits: dict[str, str] = {}
        try:
            inserted, hits = insert_blocking(conn, self._sql, records, self.clock())
        except sqlite3.IntegrityError:  # nothing of the batch was stored
            pass

        def fetchall(sql: str, params: Sequence[Any]) -> list[Any]:
            return retry_locked_blocking(lambda: conn.execute(sql, params).fetchall())

        ids = answer_blocking(enqueued_ids(self._sql, records, inserted, hits), fetchall)
        if inserted:
            self.notify_enqueued()
        return ids

    # -- periodic schedules (`schedules`) -------------------------------------------------------

    async def add_schedules(self, definitions: Mapping[str, str]) -> None:
        """Create the missing schedule states, decided up to now; store the definitions."""
        now = self.clock()
        for name, definition in definitions.items():
            await self._execute(self._schedule_sql.define, (name, now, definition))

    async def enqueue_fire(self, schedule: str, fire_time: float, record: TaskRecord) -> str | None:
        """Store ``record`` for this fire in one write transaction (see `schedules`)."""
        db = await self._db()
        async with self._mutex:
            task_id = await store_fire(
                db, self._sql, self._schedule_sql, schedule, fire_time, record
            )
        if task_id is not None:
            self.notify_enqueued()
        return task_id

    async def skip_fires(self, schedule: str, until: float) -> None:
        """Fires of ``schedule`` up to ``until`` are decided."""
        await self._execute(self._schedule_sql.skip, (schedule, until))

    async def schedule_states(self) -> list[ScheduleState]:
        """Every stored schedule state, by name."""
        return [state_from_row(row) for row in await self._fetchall(self._schedule_sql.read)]

    async def pause_schedule(self, schedule: str, paused: bool) -> bool:
        """Pause or resume ``schedule``; False if it has no state."""
        return bool(await self._execute(self._schedule_sql.pause, (schedule, paused, self.clock())))

    # -- flow control (`limits`) ---------------------------------------------------------------

    async def set_limits(self, rules: Sequence[LimitRule]) -> None:
        """Store each rule, replacing the one of its pattern, in one transaction."""
        await self._write_flow([(self._flow_sql.set_rule, rule_row(r)) for r in rules])

    async def delete_limits(self, patterns: Sequence[str]) -> int:
        """Remove the rules of ``patterns``; how many were stored."""
        for pattern in patterns:
            check_pattern(pattern)
        unique = list(dict.fromkeys(patterns))
        return await self._write_flow([(self._flow_sql.delete_rule, (p,)) for p in unique])

    async def limits(self) -> list[LimitRule]:
        """Every stored rule, by pattern."""
        return list((await self._read_flow()).rules.rules)

    async def limit_states(self) -> list[LimitState]:
        """The keys under a stored rule with their tokens now, running and waiting tasks."""
        fs = self._flow_sql
        rules = (await self._read_flow()).rules
        records = dict(key_record(row) for row in await self._fetchall(fs.all_keys))
        running = count_keys(await self._fetchall(fs.held))
        waiting = count_keys(await self._fetchall(fs.waiting))
        return states_of(rules, records, running, waiting, self.clock())

    async def pause_queue(self, queue: str, paused: bool) -> None:
        """Pause or resume ``queue`` for every worker on this file."""
        if not isinstance(queue, str) or not queue:
            raise ConfigurationError(f"pause_queue needs a queue name, got {queue!r}")
        statement = self._flow_sql.pause if paused else self._flow_sql.resume
        await self._write_flow([(statement, (queue,))])
        if not paused:
            self.notify_enqueued()

    async def paused_queues(self) -> set[str]:
        """The queues paused now."""
        return {row[0] for row in await self._fetchall(self._flow_sql.paused)}

    async def _write_flow(self, queries: list[Any]) -> int:
        db = await self._db()
        async with self._mutex:
            return await write_flow(db, self._flow_sql, queries)

    # -- claim and leases --------------------------------------------------------------------

    async def claim(
        self,
        *,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        queues: Sequence[str] | None = None,
        exclude: Iterable[str] = (),
    ) -> list[TaskRecord]:
        """Claim up to ``limit`` due tasks: one statement while no limit is stored; with
        limits, that statement takes the keyless tasks among the first due and
        `limits.claim_limited` the rest (see `sitq_sqlite.limits`)."""
        if limit < 1:
            return []
        now = self.clock()
        if queues is not None:
            queues = list(queues)
            if not queues:  # also: INDEXED BY fails on a WHERE that is always false
                return []
        args = ClaimArgs(
            worker_id, now, uuid.uuid4().hex, now + lease_seconds, queues, list(exclude)
        )
        if self._flow.version is None:
            await self._read_flow()
        rows = await self._claim_plain(args, limit)
        # with rules, the limited claim checks the version itself (and takes keyless tasks)
        if not rows and not self._flow.rules and await self._flow_changed():
            await self._read_flow()
            rows = await self._claim_plain(args, limit)
        if self._flow.rules and len(rows) < limit:
            rows += await self._claim_limited(args, limit - len(rows), [row[1] for row in rows])
        rows.sort(key=lambda row: (-row[6], row[7], row[0]))
        rowids = self._claimed_rowids
        if len(rowids) > _MAX_REMEMBERED:  # outcomes that never came (leases lost at exit)
            rowids.clear()
        rowids.update((row[1], row[0]) for row in rows)
        return [_record(row[1:]) for row in rows]

    async def _claim_plain(self, args: ClaimArgs, limit: int) -> list[Any]:
        """The one-statement claim (`Statements.claim`) under the cached flow copy."""
        flow = self._flow
        sql = self._sql.claim(
            None if args.queues is None else len(args.queues),
            len(args.excluded),
            len(flow.paused),
            keyless=bool(flow.rules),
        )
        params = [args.worker_id, args.now, args.token, args.expires, args.now]
        params += [*(args.queues or ()), *args.excluded, *flow.paused, flow.version, limit]
        return await self._fetchall(sql, params)

    async def _claim_limited(self, args: ClaimArgs, want: int, taken: list[str]) -> list[Any]:
        """Up to ``want`` more tasks under the limits, besides the ids in ``taken``."""
        args = ClaimArgs(
            args.worker_id, args.now, args.token, args.expires, args.queues,
            [*args.excluded, *taken],
        )  # fmt: skip
        db = await self._db()
        async with self._mutex:
            rows, self._flow = await claim_limited(
                db, self._sql, self._flow_sql, self._flow, args, want
            )
        return rows

    async def _flow_changed(self) -> bool:
        """True if the stored rules or pauses changed since the cached copy was read."""
        rows = await self._fetchall(self._flow_sql.version)
        return not rows or str(rows[0][0]) != self._flow.version

    async def _read_flow(self) -> FlowCache:
        """The stored rules and pauses, read now (and kept as the cached copy)."""
        db = await self._db()
        async with self._mutex:
            self._flow = await read_flow(db, self._flow_sql)
        return self._flow

    async def claim_by_id(
        self, task_id: str, *, worker_id: str, lease_seconds: float
    ) -> TaskRecord | None:
        """Claim one pending task by id, due or not."""
        now = self.clock()
        rows = await self._fetchall(
            self._sql.claim_by_id,
            (worker_id, now, uuid.uuid4().hex, now + lease_seconds, task_id),
        )
        return _record(rows[0]) if rows else None

    async def extend_leases(self, leases: Mapping[str, str], lease_seconds: float) -> set[str]:
        """Push back the leases still held, in one statement."""
        if not leases:
            return set()
        held: set[str] = set()
        items = list(leases.items())
        expires = self.clock() + lease_seconds
        for i in range(0, len(items), _FINISH_CHUNK):
            chunk = items[i : i + _FINISH_CHUNK]
            rows = await self._fetchall(
                self._sql.extend_leases(len(chunk)),
                [v for pair in chunk for v in pair] + [expires],
            )
            held.update(row[0] for row in rows)
        return held

    async def set_progress(self, updates: Mapping[str, tuple[str, Progress]]) -> set[str]:
        """Store the progress of tasks still running under the given leases (batched)."""
        stored: set[str] = set()
        items = list(updates.items())
        for i in range(0, len(items), _FINISH_CHUNK):
            chunk = items[i : i + _FINISH_CHUNK]
            rows = await self._fetchall(
                self._sql.set_progress(len(chunk)),
                [v for task_id, (token, p) in chunk
                 for v in (task_id, token, p.fraction, p.message, p.updated_at)],
            )  # fmt: skip
            stored.update(row[0] for row in rows)
        return stored

    async def finish(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Apply outcomes in as few statements as possible, fenced by lease token."""
        if len({o.task_id for o in outcomes}) != len(outcomes):
            # A task named twice: the first outcome clears its lease, so apply them in order.
            return [(await self.finish([o]))[0] for o in outcomes]
        done = [o for o in outcomes if o.status is not TaskStatus.PENDING]
        again = [o for o in outcomes if o.status is TaskStatus.PENDING]
        now = self.clock()

        def final(o: Outcome) -> tuple[Any, ...]:
            return (o.status.value, o.result, o.error, o.traceback, o.finished_at, now)

        def pending(o: Outcome) -> tuple[Any, ...]:
            available_at = now if o.available_at is None else o.available_at
            return (available_at, o.error, o.traceback, 0 if o.count_attempt else 1)

        parents: set[str] = set()
        applied = await self._apply(self._sql.finish_final, done, final, parents)
        applied |= await self._apply(self._sql.finish_pending, again, pending, parents)
        if done:
            self.notify_finished()
        if again or parents or (applied and self._flow.rules):  # children, or a freed slot
            self.notify_enqueued()
        return [o.task_id in applied for o in outcomes]

    async def _apply(
        self,
        statement: Callable[[int, bool], str],
        outcomes: Sequence[Outcome],
        values: Callable[[Outcome], tuple[Any, ...]],
        parents: set[str],
    ) -> set[str]:
        """Run ``statement`` over ``outcomes`` in chunks (each row: [rowid,] id, lease token,
        then ``values``); the ids applied (those with children also added to ``parents``).
        Tasks this backend claimed are found by rowid; the others, and any a rowid missed, by
        id."""
        rowids = self._claimed_rowids
        known = [(o, rowids.pop(o.task_id, None)) for o in outcomes]
        by_rowid = [(o, rowid) for o, rowid in known if rowid is not None]
        by_id = [o for o, rowid in known if rowid is None]
        applied: set[str] = set()
        for i in range(0, len(by_rowid), _FINISH_CHUNK):
            chunk = by_rowid[i : i + _FINISH_CHUNK]
            params = [
                v for o, rowid in chunk for v in (rowid, o.task_id, o.lease_token, *values(o))
            ]
            rows = await self._fetchall(statement(len(chunk), True), params)
            applied.update(row[0] for row in rows)
            parents.update(row[0] for row in rows if row[1])
        by_id.extend(o for o, _ in by_rowid if o.task_id not in applied)  # lost, or vacuumed
        for i in range(0, len(by_id), _FINISH_CHUNK):
            rest = by_id[i : i + _FINISH_CHUNK]
            params = [v for o in rest for v in (o.task_id, o.lease_token, *values(o))]
            rows = await self._fetchall(statement(len(rest), False), params)
            applied.update(row[0] for row in rows)
            parents.update(row[0] for row in rows if row[1])
        return applied

    async def recover_expired(self, *, max_attempts: int) -> list[str]:
        """Requeue (or kill, past the attempt limit) running tasks whose lease lapsed."""
        now = self.clock()
        rows = await self._fetchall(
            self._sql.recover_expired, (max_attempts, LOST_WORKER_ERROR, now)
        )
        recovered = [row[0] for row in rows if row[1] == "pending"]
        if recovered or any(row[2] for row in rows):  # a dead parent may release children
            self.notify_enqueued()
        if len(recovered) != len(rows):
            self.notify_finished()
        return recovered

    # -- control -----------------------------------------------------------------------------

    async def cancel(self, task_id: str) -> bool:
        """Cancel a waiting, pending or running task (a running one loses its lease)."""
        count = await self._execute(self._sql.cancel, (self.clock(), task_id))
        if count:
            self.notify_finished()
            self.notify_enqueued()  # children released, or a cancelled run's slot freed
        return count > 0

    async def requeue(self, task_id: str) -> bool:
        """Put a failed, dead or cancelled task back to pending, attempts reset."""
        try:
            count = await self._execute(self._sql.requeue, (self.clock(), task_id))
        except sqlite3.IntegrityError:  # its dedupe key is taken by an active task
            return False
        if count:
            self.notify_enqueued()
        return count > 0

    async def expire_results(self, finished_before: float) -> int:
        """Make tombstones of tasks finished before ``finished_before`` (one statement)."""
        return await self._execute(self._sql.expire_results, (finished_before,))

    # -- reading -----------------------------------------------------------------------------

    async def get_task(self, task_id: str) -> TaskRecord | None:
        """The stored record, or None."""
        rows = await self._fetchall(self._sql.get_task, (task_id,))
        return _record(rows[0]) if rows else None

    async def counts(self, queue: str | None = None) -> dict[TaskStatus, int]:
        """Tasks per status."""
        params = () if queue is None else (queue,)
        return fold_counts(await self._fetchall(self._sql.counts(queue is not None), params))

    async def list_tasks(
        self,
        *,
        statuses: Iterable[TaskStatus] | None = None,
        queue: str | None = None,
        limit: int | None = 100,
        order: str = "oldest",
    ) -> list[TaskRecord]:
        """Records by enqueue time (see `Backend.list_tasks`)."""
        wanted = check_list_args(statuses, limit, order)
        params: list[Any] = []
        if wanted is not None:
            if not wanted:
                return []
            params.extend(status_texts(wanted))
        if queue is not None:
            params.append(queue)
        if limit is not None:
            params.append(limit)
        sql = self._sql.list_tasks(
            None if wanted is None else len(wanted),
            by_queue=queue is not None,
            newest=order == "newest",
            limited=limit is not None,
        )
        return [_record(row) for row in await self._fetchall(sql, params)]

    async def queue_counts(self) -> dict[str, dict[TaskStatus, int]]:
        """Tasks per status, per queue, in one query."""
        return fold_queue_counts(await self._fetchall(self._sql.queue_counts))

    async def search_tasks(self, search: TaskSearch) -> list[TaskRecord]:
        """One page of ``search``, newest first, in one query (see `Backend.search_tasks`)."""
        sql, params = self._sql.search_tasks(search)
        return [_record(row) for row in await self._fetchall(sql, params)]

    async def throughput(
        self, since: float, bucket_seconds: float
    ) -> dict[float, dict[TaskStatus, int]]:
        """Finished tasks per bucket and status, in one aggregate query (see
        `Backend.throughput`)."""
        check_throughput_args(since, bucket_seconds, self.clock())
        statuses = status_texts(THROUGHPUT_STATUSES)
        sql = self._sql.throughput(len(statuses))
        rows = await self._fetchall(sql, [since, bucket_seconds, *statuses, since])
        return fold_throughput(rows, since, bucket_seconds)

    async def delete_tasks(self, task_ids: Sequence[str]) -> int:
        """Delete the finished tasks among ``task_ids`` (see `Backend.delete_tasks`)."""
        ids = list(dict.fromkeys(task_ids))
        deleted = 0
        for start in range(0, len(ids), _DELETE_BATCH):
            batch = ids[start : start + _DELETE_BATCH]
            deleted += await self._execute(self._sql.delete_final(len(batch)), batch)
        return deleted

    async def purge(
        self, statuses: Iterable[TaskStatus] | None = None, older_than: float | None = None
    ) -> int:
        """Delete tasks in ``statuses`` (default: final ones) finished before ``older_than``."""
        wanted: list[Any] = status_texts(purge_statuses(statuses))
        if not wanted:
            return 0
        sql = self._sql.purge(len(wanted), older=older_than is not None)
        params = wanted if older_than is None else [*wanted, older_than]
        deleted = await self._execute(sql, params)
        if deleted:
            await self._give_back_space(spare=0)
        return deleted

    async def prune(self, finished_before: Mapping[TaskStatus, float] | float, limit: int) -> int:
        """Delete up to ``limit`` tasks finished before their status's cutoff: one statement
        per distinct cutoff (two with the worker's settings), each walking the index of
        finished tasks."""
        cutoffs = check_prune_args(finished_before, limit)
        by_cutoff: dict[float, list[TaskStatus]] = {}
        for status, cutoff in cutoffs.items():
            by_cutoff.setdefault(cutoff, []).append(status)
        deleted = 0
        for cutoff, statuses in sorted(by_cutoff.items()):
            if deleted >= limit:
                break
            params = [*status_texts(statuses), cutoff, limit - deleted]
            deleted += await self._execute(self._sql.prune(len(statuses)), params)
        return deleted

    async def reclaim_space(self, *, full: bool = False) -> None:
        """Shrink the file: give the free pages of deleted tasks back, keeping a few for the
        next writes. ``full=True`` runs ``VACUUM``: it rewrites the whole file (holding the
        write lock meanwhile, and needing as much free disk as the file takes) and turns on
        incremental auto-vacuum for a file made before sitq-sqlite set it, so that quick
        reclaims work on it from then on."""
        if full:
            db = await self._db()
            async with self._mutex:
                await retry_locked(db.execute, space_pragmas()[0])
                await retry_locked(db.execute, "VACUUM")
            return
        await self._give_back_space(spare=_SPARE_PAGES)

    async def _give_back_space(self, *, spare: int) -> None:
        """Give back the free pages beyond ``spare`` (a no-op on a file without incremental
        auto-vacuum: see `reclaim_space`)."""
        free = int((await self._fetchall("PRAGMA freelist_count"))[0][0])
        if free <= spare:
            return
        db = await self._db()
        async with self._mutex:
            await retry_locked(db.executescript, incremental_vacuum(free - spare))
