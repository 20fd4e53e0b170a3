"""`PostgresBackend`: sitq on a PostgreSQL server, for workers on as many machines as you like.

Every operation is one statement over a whole batch (see `sql`): a claim picks up to ``limit``
due tasks with ``FOR UPDATE SKIP LOCKED`` and marks them running, attempt counted and lease
token set, in the same statement; a finish applies every outcome a worker gathered since its
last write. Statements run on pooled connections (`database`) and are retried on a fresh
connection after the server restarts or a connection is killed; the few operations that cannot
simply run twice first look for what a lost attempt committed. Wake-ups travel by
LISTEN/NOTIFY (`listener`), backed by polling. The reading methods (records, counts,
listings) are in `reading`.

Time: in production the database clock decides due times and leases (``statement_timestamp()``
in each statement), and `PostgresBackend.clock` — which the core uses for ``available_at`` and
retry times — is this machine's clock corrected by its offset to the database clock, measured
at connect. Replace ``clock`` (as tests do) and every statement takes its time from it instead.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import asyncpg

from sitq import TaskStatus
from sitq.backend import Backend, Capability, Outcome, ScheduleState, TaskRecord
from sitq.errors import ConfigurationError, QueueClosed
from sitq.flow_claim import states_of
from sitq.flow_control import LimitRule, LimitState, check_pattern
from sitq.progress import Progress
from sitq.retention import check_prune_args
from sitq.rules import (
    LOST_WORKER_ERROR,
    purge_statuses,
    status_texts,
)
from sitq.signals import AsyncMutex
from sitq.throughput import THROUGHPUT_STATUSES, check_throughput_args, fold_throughput

from .blocking import ThreadLoops
from .database import Database, Operation
from .finishes import apply_round, recognize_applied, rounds_of
from .inserts import enqueue_args, insert
from .limits import (
    ClaimArgs,
    FlowCache,
    FlowStatements,
    claim_limited,
    key_records,
    read_flow,
)
from .listener import Listener
from .options import Options, options_from_url
from .reading import Reading, record_of
from .schedules import ScheduleStatements, state_from_row, store_fire
from .schema import Names, migrate
from .sql import Statements
from .wakeups import Wakeups
from .workflow_methods import WorkflowMethods

T = TypeVar("T")


def _claimed(rows: Iterable[Sequence[Any]]) -> list[TaskRecord]:
    """Claimed rows in claim order: priority, due time, enqueue order."""
    ordered = sorted(rows, key=lambda row: (-row[6], row[7], row[0]))
    return [record_of(row) for row in ordered]


class PostgresBackend(WorkflowMethods, Reading, Backend):
    """Tasks in a PostgreSQL database, shared by workers on any number of machines.

    :param dsn: ``postgresql://user:password@host:5432/dbname``; sitq's own options below may
        also be given as query parameters (``?table_prefix=app_&pgbouncer=true``), other
        parameters go to asyncpg (``sslmode``, ``application_name``, …).
    :param table_prefix: prefix of every table sitq creates (default ``sitq_``), so several
        applications can share one database.
    :param pgbouncer: True when ``dsn`` goes through PgBouncer in transaction mode: no named
        prepared statements, and LISTEN only over ``listen_dsn``.
    :param listen_dsn: a direct (or session-mode) URL for the LISTEN connection.
    :param pool_min_size: connections each event loop's pool keeps open even when idle
        (default 0: connections open on demand and close after 5 idle minutes).
    :param pool_max_size: connections each event loop's pool may open.
    :param retry_timeout: seconds an operation keeps retrying while the server is unreachable
        before raising `PostgresUnavailable`.
    :param connect_timeout: seconds one connection attempt may take.
    """

    url_schemes = ("postgresql", "postgres")
    capabilities = frozenset(
        {
            Capability.SCHEDULES,
            Capability.EXPIRE_RESULTS,
            Capability.HEARTBEAT_BACKEND,
            Capability.ENQUEUE_IN,
            Capability.CROSS_PROCESS_WAKEUPS,
            Capability.PROGRESS,
            Capability.PRUNE,
            Capability.BLOCKING_ENQUEUE,
            Capability.FLOW_CONTROL,
            Capability.WORKFLOWS,
        }
    )

    def __init__(
        self,
        dsn: str,
        *,
        table_prefix: str | None = None,
        pgbouncer: bool | None = None,
        listen_dsn: str | None = None,
        pool_min_size: int | None = None,
        pool_max_size: int | None = None,
        retry_timeout: float | None = None,
        connect_timeout: float | None = None,
    ) -> None:
        given = {
            "table_prefix": table_prefix,
            "pgbouncer": pgbouncer,
            "listen_dsn": listen_dsn,
            "pool_min_size": pool_min_size,
            "pool_max_size": pool_max_size,
            "retry_timeout": retry_timeout,
            "connect_timeout": connect_timeout,
        }
        if not isinstance(dsn, str):
            raise ConfigurationError(
                f"PostgresBackend needs a URL like 'postgresql://user@host:5432/dbname', "
                f"got {dsn!r}"
            )
        self.options: Options = options_from_url(
            dsn, **{k: v for k, v in given.items() if v is not None}
        )
        self.names = Names(self.options.table_prefix)
        self._sql = Statements(self.names)
        self._schedule_sql = ScheduleStatements(self.names)
        self._flow_sql = FlowStatements(self.names)
        self._flow = FlowCache()
        # True while the claims find only tasks holding keys: the plain statement (the
        # keyless tasks among the first due) is left out, the limited claim takes every kind
        self._keyed_only = False
        self._db = Database(self.options)
        self._threads = ThreadLoops(on_new=self._db.serial_loop)
        self._wakeups = Wakeups(self.enqueued_signal, self.finished_signal)
        if self.options.listens:
            self._wakeups.listener = Listener(
                self.options.listen_dsn or self.options.dsn,
                self._db.connect_kwargs(),
                {
                    self.names.enqueued_channel: lambda _queue: self._wakeups.work(),
                    self.names.finished_channel: lambda _queue: self._wakeups.finish(),
                },
                on_connect=self._wakeups.all,
            )
        self._clock_offset = 0.0
        self._connect_mutex = AsyncMutex()
        self._connected = False
        self._closed = False

    @classmethod
    def from_url(cls, url: str) -> PostgresBackend:
        """``postgresql://user@host:5432/db?table_prefix=app_`` (``postgres://`` works too)."""
        return cls(url)

    @property
    def notify_key(self) -> str:
        """Backends on the same database and table prefix share in-process wake-ups."""
        return f"postgresql://{self.options.location}#{self.names.prefix}"

    def __repr__(self) -> str:
        where = f"postgresql://{self.options.location}"
        return f"PostgresBackend({where!r}, table_prefix={self.names.prefix!r})"

    # -- time --------------------------------------------------------------------------------

    def clock(self) -> float:
        """Epoch seconds on the database server's clock (this machine's clock plus the offset
        measured at connect). Assign another callable to take time from it instead."""
        return time.time() + self._clock_offset

    def _now(self) -> float | None:
        """The ``$1`` of time-dependent statements: None lets the database clock decide."""
        clock = self.clock
        if getattr(clock, "__func__", None) is PostgresBackend.clock:
            return None
        return clock()

    # -- connection --------------------------------------------------------------------------

    async def connect(self) -> None:
        """Create or migrate the schema and measure the clock offset (idempotent)."""
        if self._closed:
            raise QueueClosed(f"{self!r} was closed")
        if self._connected:
            return
        async with self._connect_mutex:
            if not self._connected:
                await self._db.run(self._setup)
                self._connected = True

    async def _setup(self, conn: asyncpg.Connection, attempt: int) -> None:
        await migrate(conn, self.names)
        best = None
        for _ in range(3):
            before = time.time()
            server = await conn.fetchval(self._sql.db_clock)
            after = time.time()
            if best is None or after - before < best[0]:
                best = (after - before, server - (before + after) / 2)
        assert best is not None
        self._clock_offset = best[1]

    async def close(self) -> None:
        """Stop listening and close every pool (idempotent)."""
        self._closed = self._wakeups.closed = True
        self._threads.stop()
        if self._wakeups.listener is not None:
            await self._wakeups.listener.close()
        await self._db.close()
        self._threads.close()

    async def _run(self, operation: Operation[T]) -> T:
        if not self._connected:
            await self.connect()
        return await self._db.run(operation)

    # -- enqueue -----------------------------------------------------------------------------

    async def enqueue_many(self, records: Sequence[TaskRecord]) -> list[str]:
        """Store records in one statement; dedupe keys map to the task holding them.

        Retried after a lost connection: a batch that did commit is recognized by its ids.
        """
        if not records:
            return []
        args = self._enqueue_args(records)
        now, clock = self._now(), self.clock()

        async def op(conn: asyncpg.Connection, attempt: int) -> tuple[list[str], bool]:
            return await insert(
                conn, self._sql, records, args, retried=attempt > 0, now=clock, joined_at=now
            )

        ids, stored_any = await self._run(op)
        if stored_any:
            self.notify_enqueued()
        return ids

    def enqueue_many_blocking(self, records: Sequence[TaskRecord]) -> list[str]:
        """`enqueue_many` on the calling thread's own event loop (`sitq_postgres.blocking`)."""
        return self._threads.run(lambda: self.enqueue_many(records))

    async def enqueue_in(self, connection: Any, records: Sequence[TaskRecord]) -> list[str]:
        """Store records through ``connection``, an asyncpg connection of the caller, inside
        whatever transaction it has open: they exist once it commits, never if it rolls back.
        The workers' NOTIFY goes out with the commit."""
        if not isinstance(connection, (asyncpg.Connection, asyncpg.pool.PoolConnectionProxy)):
            raise ConfigurationError(
                f"PostgresBackend enqueues in your transaction through an asyncpg connection "
                f"(asyncpg.Connection or one acquired from an asyncpg pool), got "
                f"{type(connection).__name__}"
            )
        if not records:
            return []
        await self.connect()
        args = self._enqueue_args(records)
        ids, _stored = await insert(
            connection,
            self._sql,
            records,
            args,
            retried=False,
            now=self.clock(),
            joined_at=self._now(),
        )
        return ids

    def _enqueue_args(self, records: Sequence[TaskRecord]) -> list[Any]:
        """`inserts.enqueue_args` with this machine's clock reading in production."""
        return enqueue_args(records, None if self._now() is not None else self.clock())

    # -- periodic schedules (`schedules`) -------------------------------------------------------

    async def add_schedules(self, definitions: Mapping[str, str]) -> None:
        """Create the missing schedule states, decided up to now; store the definitions."""
        now = self.clock()
        names, texts = list(definitions), list(definitions.values())

        async def op(conn: asyncpg.Connection, attempt: int) -> None:
            await conn.execute(self._schedule_sql.define, names, now, texts)

        await self._run(op)

    async def enqueue_fire(self, schedule: str, fire_time: float, record: TaskRecord) -> str | None:
        """Store ``record`` for this fire in one transaction (see `schedules`)."""
        args = self._enqueue_args([record])

        async def op(conn: asyncpg.Connection, attempt: int) -> str | None:
            return await store_fire(
                conn,
                self._sql,
                self._schedule_sql,
                schedule,
                fire_time,
                record,
                args,
                retried=attempt > 0,
            )

        task_id = await self._run(op)
        if task_id is not None:
            self.notify_enqueued()
        return task_id

    async def skip_fires(self, schedule: str, until: float) -> None:
        """Fires of ``schedule`` up to ``until`` are decided."""

        async def op(conn: asyncpg.Connection, attempt: int) -> None:
            await conn.execute(self._schedule_sql.skip, schedule, until)

        await self._run(op)

    async def schedule_states(self) -> list[ScheduleState]:
        """Every stored schedule state, by name."""

        async def op(conn: asyncpg.Connection, attempt: int) -> list[ScheduleState]:
            return [state_from_row(row) for row in await conn.fetch(self._schedule_sql.read)]

        return await self._run(op)

    async def pause_schedule(self, schedule: str, paused: bool) -> bool:
        """Pause or resume ``schedule``; False if it has no state."""
        now = self.clock()

        async def op(conn: asyncpg.Connection, attempt: int) -> bool:
            status = await conn.execute(self._schedule_sql.pause, schedule, paused, now)
            return bool(status != "UPDATE 0")

        return await self._run(op)

    # -- flow control (`limits`) ---------------------------------------------------------------

    async def set_limits(self, rules: Sequence[LimitRule]) -> None:
        """Store each rule, replacing the one of its pattern, in one transaction."""
        fs = self._flow_sql
        columns = [
            [r.pattern for r in rules],
            [r.rate for r in rules],
            [r.burst for r in rules],
            [r.concurrency for r in rules],
        ]

        async def op(conn: asyncpg.Connection, attempt: int) -> None:
            async with conn.transaction():
                await conn.execute(fs.set_rules, *columns)
                await conn.execute(fs.bump)

        await self._run(op)

    async def delete_limits(self, patterns: Sequence[str]) -> int:
        """Remove the rules of ``patterns``; how many were stored."""
        for pattern in patterns:
            check_pattern(pattern)
        fs = self._flow_sql

        async def op(conn: asyncpg.Connection, attempt: int) -> int:
            async with conn.transaction():
                status = await conn.execute(fs.delete_rules, list(patterns))
                await conn.execute(fs.bump)
            return int(status.split()[-1])

        return await self._run(op)

    async def limits(self) -> list[LimitRule]:
        """Every stored rule, by pattern."""

        async def op(conn: asyncpg.Connection, attempt: int) -> FlowCache:
            return await read_flow(conn, self._flow_sql)

        return list((await self._run(op)).rules.rules)

    async def limit_states(self) -> list[LimitState]:
        """The keys under a stored rule with their tokens now, running and waiting tasks."""
        fs = self._flow_sql
        now = self.clock()

        async def op(conn: asyncpg.Connection, attempt: int) -> list[LimitState]:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                flow = await read_flow(conn, fs)
                records = key_records(await conn.fetch(fs.all_keys))
                counts = await conn.fetch(fs.counts)
            running = {k: n for status, k, n in counts if status == "running"}
            waiting = {k: n for status, k, n in counts if status == "pending"}
            return states_of(flow.rules, records, running, waiting, now)

        return await self._run(op)

    async def pause_queue(self, queue: str, paused: bool) -> None:
        """Pause or resume ``queue`` for every worker on this database (a resume notifies
        the workers)."""
        if not isinstance(queue, str) or not queue:
            raise ConfigurationError(f"pause_queue needs a queue name, got {queue!r}")
        fs = self._flow_sql

        async def op(conn: asyncpg.Connection, attempt: int) -> None:
            async with conn.transaction():
                await conn.execute(fs.pause if paused else fs.resume, queue)
                await conn.execute(fs.bump)
                if not paused:
                    await conn.execute(
                        "SELECT pg_notify($1, left($2, 200))", self.names.enqueued_channel, queue
                    )

        await self._run(op)
        if not paused:
            self.notify_enqueued()

    async def paused_queues(self) -> set[str]:
        """The queues paused now."""

        async def op(conn: asyncpg.Connection, attempt: int) -> set[str]:
            return {row[0] for row in await conn.fetch(self._flow_sql.paused)}

        return await self._run(op)

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
        `limits.claim_limited` the rest (see `sitq_postgres.limits`)."""
        self._wakeups.looked_for_work()
        if limit < 1:
            return []
        if queues is not None:
            queues = list(queues)
            if not queues:
                return []
        args = ClaimArgs(
            self._now(), worker_id, uuid.uuid4().hex, float(lease_seconds), queues,
            list(exclude),
        )  # fmt: skip

        async def op(conn: asyncpg.Connection, attempt: int) -> list[TaskRecord]:
            if attempt:  # the reply of an earlier attempt may have been lost after its commit
                rows = await conn.fetch(self._sql.claimed_with, args.token)
                if rows:
                    return _claimed(rows)
            if self._flow.version is None:
                self._flow = await read_flow(conn, self._flow_sql)
            rows = []
            if not (self._flow.rules and self._keyed_only):
                rows = await self._claim_plain(conn, args, limit)
            # with rules, the limited claim checks the version itself (and takes keyless tasks)
            if (
                not rows
                and not self._flow.rules
                and await conn.fetchval(self._flow_sql.version) != self._flow.version
            ):
                self._flow = await read_flow(conn, self._flow_sql)
                rows = await self._claim_plain(conn, args, limit)
            if self._flow.rules and len(rows) < limit:
                more = replace(args, excluded=[*args.excluded, *(row["id"] for row in rows)])
                extra, self._flow = await claim_limited(
                    conn, self._sql, self._flow_sql, self._flow, more, limit - len(rows)
                )
                if rows or extra:
                    self._keyed_only = not rows and all(r["limit_keys"] for r in extra)
                rows += extra
            return _claimed(rows)

        return await self._run(op)

    async def _claim_plain(
        self, conn: asyncpg.Connection, args: ClaimArgs, limit: int
    ) -> list[Any]:
        """The one-statement claim (`Statements.claim`) under the cached flow copy."""
        flow = self._flow
        sql = self._sql.claim(
            args.queues is not None, bool(args.excluded), bool(flow.paused), bool(flow.rules)
        )
        params: list[Any] = [args.now, limit, args.worker_id, args.token, args.lease_seconds]
        params.append(flow.version)
        if args.queues is not None:
            params.append(args.queues)
        if args.excluded:
            params.append(args.excluded)
        if flow.paused:
            params.append(flow.paused)
        return list(await conn.fetch(sql, *params))

    async def claim_by_id(
        self, task_id: str, *, worker_id: str, lease_seconds: float
    ) -> TaskRecord | None:
        """Claim one pending task by id, due or not."""
        token = uuid.uuid4().hex
        args = [self._now(), task_id, worker_id, token, float(lease_seconds)]

        async def op(conn: asyncpg.Connection, attempt: int) -> TaskRecord | None:
            rows = await conn.fetch(self._sql.claimed_with, token) if attempt else []
            if not rows:
                rows = await conn.fetch(self._sql.claim_by_id, *args)
            return record_of(rows[0]) if rows else None

        return await self._run(op)

    async def extend_leases(self, leases: Mapping[str, str], lease_seconds: float) -> set[str]:
        """Push back the leases still held, in one statement."""
        if not leases:
            return set()
        args = [self._now(), list(leases), list(leases.values()), float(lease_seconds)]

        async def op(conn: asyncpg.Connection, attempt: int) -> set[str]:
            return {row[0] for row in await conn.fetch(self._sql.extend_leases, *args)}

        return await self._run(op)

    async def set_progress(self, updates: Mapping[str, tuple[str, Progress]]) -> set[str]:
        """Store the progress of tasks still running under the given leases, in one
        statement (idempotent: safe to retry)."""
        if not updates:
            return set()
        values = list(updates.values())
        args = [
            list(updates),
            [token for token, _ in values],
            [p.fraction for _, p in values],
            [p.message for _, p in values],
            [p.updated_at for _, p in values],
        ]

        async def op(conn: asyncpg.Connection, attempt: int) -> set[str]:
            return {row[0] for row in await conn.fetch(self._sql.set_progress, *args)}

        return await self._run(op)

    async def finish(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Apply outcomes in one transaction, fenced by lease token.

        Usually one statement; outcomes naming the same task twice go in later rounds, so they
        apply in order. Retried after a lost connection: an outcome whose reply was lost is
        recognized by the state it left.
        """
        if not outcomes:
            return []
        rounds = rounds_of(outcomes)
        now = self._now()

        async def op(conn: asyncpg.Connection, attempt: int) -> list[bool]:
            applied = [False] * len(outcomes)
            if len(rounds) == 1:
                await apply_round(conn, self._sql, outcomes, rounds[0], now, applied)
            else:
                async with conn.transaction():
                    for indexes in rounds:
                        await apply_round(conn, self._sql, outcomes, indexes, now, applied)
            if attempt:
                await recognize_applied(conn, self._sql, outcomes, applied)
            return applied

        applied = await self._run(op)
        pairs = zip(outcomes, applied, strict=True)
        kinds = {o.status is TaskStatus.PENDING for o, ok in pairs if ok}
        if False in kinds:
            self.notify_finished()
        if True in kinds or (kinds and self._flow.rules):  # an ended run may free a slot
            self.notify_enqueued()
        return applied

    async def recover_expired(self, *, max_attempts: int) -> list[str]:
        """Requeue (or kill, past the attempt limit) running tasks whose lease lapsed.

        One worker at a time does it: the others find the advisory lock taken and return [].
        """
        args = [self._now(), max_attempts, LOST_WORKER_ERROR, self.names.recover_lock]

        async def op(conn: asyncpg.Connection, attempt: int) -> list[Any]:
            return list(await conn.fetch(self._sql.recover_expired, *args))

        rows = await self._run(op)
        recovered = [row[0] for row in rows if row[1] == "pending"]
        if recovered:
            self.notify_enqueued()
        if len(recovered) != len(rows):
            self.notify_finished()
        return recovered

    # -- control -----------------------------------------------------------------------------

    async def cancel(self, task_id: str) -> bool:
        """Cancel a waiting, pending or running task (a running one loses its lease)."""
        args = [self._now(), task_id]

        async def op(conn: asyncpg.Connection, attempt: int) -> bool:
            if await conn.fetch(self._sql.cancel, *args):
                return True
            # a lost reply of an earlier attempt: the task is cancelled already
            return bool(attempt) and await conn.fetchval(self._sql.status_of, task_id) == (
                "cancelled"
            )

        cancelled = await self._run(op)
        if cancelled:
            self.notify_finished()
        return cancelled

    async def requeue(self, task_id: str) -> bool:
        """Put a failed, dead or cancelled task back to pending, attempts reset (never a
        tombstone)."""
        args = [self._now(), task_id]

        async def op(conn: asyncpg.Connection, attempt: int) -> bool:
            try:
                return bool(await conn.fetch(self._sql.requeue, *args))
            except asyncpg.UniqueViolationError:  # its dedupe key is held by an active task
                return False

        requeued = await self._run(op)
        if requeued:
            self.notify_enqueued()
        return requeued

    async def expire_results(self, finished_before: float) -> int:
        """Turn tasks finished before ``finished_before`` into tombstones; return how many."""

        async def op(conn: asyncpg.Connection, attempt: int) -> int:
            status = await conn.execute(self._sql.expire_results, float(finished_before))
            return int(status.split()[-1])

        return await self._run(op)

    def heartbeat_backend(self) -> PostgresBackend:
        """A backend with one connection of its own, for the worker's heartbeat thread (so a
        busy pool or a blocked worker loop cannot delay lease extensions)."""
        options = {k: v for k, v in vars(self.options).items() if k != "dsn"}
        side = PostgresBackend(
            self.options.dsn, **{**options, "pool_min_size": 1, "pool_max_size": 1}
        )
        if "clock" in vars(self):
            side.clock = self.clock  # type: ignore[method-assign]
        return side

    # -- retention ---------------------------------------------------------------------------

    async def throughput(
        self, since: float, bucket_seconds: float
    ) -> dict[float, dict[TaskStatus, int]]:
        """Finished tasks per bucket and status, in one aggregate query (see
        `Backend.throughput`)."""
        check_throughput_args(since, bucket_seconds, self.clock())
        statuses = status_texts(THROUGHPUT_STATUSES)

        async def op(conn: asyncpg.Connection, attempt: int) -> list[Any]:
            return list(await conn.fetch(self._sql.throughput, since, bucket_seconds, statuses))

        return fold_throughput(await self._run(op), since, bucket_seconds)

    async def delete_tasks(self, task_ids: Sequence[str]) -> int:
        """Delete the finished tasks among ``task_ids`` (see `Backend.delete_tasks`)."""
        ids = list(dict.fromkeys(task_ids))
        if not ids:
            return 0

        async def op(conn: asyncpg.Connection, attempt: int) -> int:
            status = await conn.execute(self._sql.delete_final, ids)
            return int(status.split()[-1])

        return await self._run(op)

    async def purge(
        self, statuses: Iterable[TaskStatus] | None = None, older_than: float | None = None
    ) -> int:
        """Delete tasks in ``statuses`` (default: final ones) finished before ``older_than``."""
        wanted = status_texts(purge_statuses(statuses))
        if not wanted:
            return 0

        async def op(conn: asyncpg.Connection, attempt: int) -> int:
            status = await conn.execute(self._sql.purge, wanted, older_than)
            return int(status.split()[-1])

        return await self._run(op)

    async def prune(self, finished_before: Mapping[TaskStatus, float] | float, limit: int) -> int:
        """Delete up to ``limit`` tasks finished before their status's cutoff, in one
        statement; rows locked by another pruner are skipped (``FOR UPDATE SKIP LOCKED``)."""
        cutoffs = check_prune_args(finished_before, limit)
        statuses = sorted(cutoffs, key=lambda s: s.value)
        texts = [s.value for s in statuses]
        befores = [cutoffs[s] for s in statuses]

        async def op(conn: asyncpg.Connection, attempt: int) -> int:
            status = await conn.execute(self._sql.prune, texts, befores, limit)
            return int(status.split()[-1])

        return await self._run(op)

    # -- wake-ups (see `wakeups`) -------------------------------------------------------------

    def notify_enqueued(self) -> None:
        """Wake in-process waiters for work (other processes hear the NOTIFY)."""
        self._wakeups.work()

    def notify_finished(self) -> None:
        """Wake in-process waiters for results (other processes hear the NOTIFY)."""
        self._wakeups.finish()

    async def wait_for_work(self, timeout: float) -> None:
        """Return on a NOTIFY of new work, an enqueue in this process, or after ``timeout``."""
        await self._wakeups.wait_for_work(timeout)

    async def wait_for_finish(self, timeout: float) -> None:
        """Return on a NOTIFY of a finished task, a finish in this process, or after
        ``timeout``."""
        await self._wakeups.wait_for_finish(timeout)


__all__ = ["PostgresBackend"]
