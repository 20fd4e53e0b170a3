"""The schema of sitq on PostgreSQL: table names, versioned migrations and how they run.

Every backend runs `migrate` when it connects. It takes a transaction-scoped advisory lock, so
many workers starting at once migrate the database exactly once, reads ``<prefix>schema_version``
and applies the migrations it has not seen, each recorded in that table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from sitq.errors import ForeignDatabase

from . import joins, workflows


def _lock_key(text: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_*`` functions."""
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass(frozen=True)
class Names:
    """Names of everything sitq creates for one table prefix."""

    prefix: str

    @property
    def tasks(self) -> str:
        """The tasks table."""
        return f"{self.prefix}tasks"

    @property
    def schema_version(self) -> str:
        """The table recording applied migrations."""
        return f"{self.prefix}schema_version"

    @property
    def enqueued_channel(self) -> str:
        """The NOTIFY channel for new work; the payload is the queue name."""
        return f"{self.prefix}enqueued"

    @property
    def finished_channel(self) -> str:
        """The NOTIFY channel for finished tasks (wakes result waiters)."""
        return f"{self.prefix}finished"

    @property
    def schedules(self) -> str:
        """The table of periodic schedules' states."""
        return f"{self.prefix}schedules"

    @property
    def schedule_fires(self) -> str:
        """The table of stored fires, unique per ``(schedule, fire_time)``."""
        return f"{self.prefix}schedule_fires"

    @property
    def limits(self) -> str:
        """The table of limit rules, one per key pattern."""
        return f"{self.prefix}limits"

    @property
    def limit_keys(self) -> str:
        """The table of limit keys' states: token bucket, last served."""
        return f"{self.prefix}limit_keys"

    @property
    def paused(self) -> str:
        """The table of paused queues."""
        return f"{self.prefix}paused"

    @property
    def flow_version(self) -> str:
        """The one-row table whose version every change of rules or pauses bumps."""
        return f"{self.prefix}flow_version"

    def unique_lock(self, key: str) -> int:
        """Advisory lock key held while an enqueue looks for a duplicate of dedupe key
        ``key`` (records with their own ``unique_for``/``unique_states``)."""
        return _lock_key(f"sitq:{self.prefix}:unique:{key}")

    @property
    def migrate_lock(self) -> int:
        """Advisory lock key held while migrating."""
        return _lock_key(f"sitq:{self.prefix}:migrate")

    @property
    def recover_lock(self) -> int:
        """Advisory lock key held by the one worker recovering expired leases."""
        return _lock_key(f"sitq:{self.prefix}:recover")


#: Columns of the tasks table in `sitq.backend.TaskRecord` field order.
COLUMNS = (
    "id", "function", "payload", "serializer", "queue", "priority", "available_at",
    "max_retries", "timeout", "dedupe_key", "status", "attempts", "created_at", "started_at",
    "finished_at", "worker_id", "lease_token", "lease_expires_at", "result", "error", "traceback",
    "meta", "progress", "progress_message", "progress_at", "limit_keys",
    *workflows.READ_COLUMNS,
)  # fmt: skip


def _v1(n: Names) -> str:
    t = n.tasks
    return f"""
CREATE TABLE {t} (
    seq              bigint GENERATED ALWAYS AS IDENTITY,
    id               text PRIMARY KEY,
    function         text NOT NULL,
    payload          bytea NOT NULL,
    serializer       text NOT NULL,
    queue            text NOT NULL,
    priority         bigint NOT NULL DEFAULT 0,
    available_at     double precision NOT NULL,
    max_retries      integer,
    timeout          double precision,
    dedupe_key       text,
    status           text NOT NULL CHECK (status IN
                         ('pending', 'running', 'succeeded', 'failed', 'dead', 'cancelled')),
    attempts         integer NOT NULL DEFAULT 0,
    created_at       double precision NOT NULL,
    started_at       double precision,
    finished_at      double precision,
    worker_id        text,
    lease_token      text,
    lease_expires_at double precision,
    result           bytea,
    error            text,
    traceback        text
);
CREATE INDEX {t}_pending ON {t} (priority DESC, available_at, seq) WHERE status = 'pending';
CREATE INDEX {t}_leases ON {t} (lease_expires_at) WHERE status = 'running';
CREATE UNIQUE INDEX {t}_dedupe ON {t} (dedupe_key)
    WHERE dedupe_key IS NOT NULL AND status IN ('pending', 'running');
"""


def _v2(n: Names) -> str:
    """Task headers (``meta``, jsonb) and progress."""
    t = n.tasks
    return f"""
ALTER TABLE {t}
    ADD COLUMN meta             jsonb NOT NULL DEFAULT '{{}}'::jsonb,
    ADD COLUMN progress         double precision,
    ADD COLUMN progress_message text,
    ADD COLUMN progress_at      double precision;
"""


def _v3(n: Names) -> str:
    """The index pruning walks (``retention``): finished tasks by status and finish time;
    only finished tasks have a ``finished_at``, so pending and running ones cost it nothing."""
    t = n.tasks
    return f"""
CREATE INDEX IF NOT EXISTS {t}_finished ON {t} (status, finished_at)
    WHERE finished_at IS NOT NULL;
"""


def _v4(n: Names) -> str:
    """Periodic schedules (`sitq.schedule_state`): one state row per schedule, and one row per
    stored fire, unique per ``(schedule, fire_time)``."""
    return f"""
CREATE TABLE {n.schedules} (
    name          text PRIMARY KEY,
    paused        boolean NOT NULL DEFAULT false,
    decided_until double precision NOT NULL,
    last_fire     double precision,
    last_task_id  text,
    definition    text
);
CREATE TABLE {n.schedule_fires} (
    schedule  text NOT NULL,
    fire_time double precision NOT NULL,
    task_id   text NOT NULL,
    PRIMARY KEY (schedule, fire_time)
);
"""


#: The dedupe index of flow control's migration (before workflows added ``waiting`` to it).
_V5_DEDUPE_WHERE = (
    "dedupe_key IS NOT NULL AND status IN ('pending', 'running') AND unique_checked IS NULL"
)


def _v5(n: Names) -> str:
    """Flow control (`sitq.flow_control`): each task's limit keys, the rules, one state row
    per key (its token bucket, NULL tokens meaning full, and when it was last served), the
    paused queues, and a version bumped by every change of rules or pauses; the dedupe index
    leaves out tasks that chose their own uniqueness. A key's running count is not stored:
    it is counted from the running tasks holding it (``_held``). Its own tables are made only if
    missing: tasks tables dropped by hand (and made again) find them still there."""
    t = n.tasks
    return f"""
ALTER TABLE {t}
    ADD COLUMN limit_keys     text[],
    ADD COLUMN unique_checked boolean;
DROP INDEX IF EXISTS {t}_dedupe;
CREATE UNIQUE INDEX {t}_dedupe ON {t} (dedupe_key) WHERE {_V5_DEDUPE_WHERE};
CREATE INDEX {t}_keyed ON {t} (dedupe_key, seq) WHERE dedupe_key IS NOT NULL;
CREATE INDEX {t}_held ON {t} (seq) WHERE status = 'running' AND limit_keys IS NOT NULL;
CREATE TABLE IF NOT EXISTS {n.limits} (
    pattern     text PRIMARY KEY,
    rate        double precision,
    burst       double precision,
    concurrency integer
);
CREATE TABLE IF NOT EXISTS {n.limit_keys} (
    key            text PRIMARY KEY,
    tokens         double precision,
    refilled_at    double precision,
    last_served_at double precision
);
CREATE TABLE IF NOT EXISTS {n.paused} (queue text PRIMARY KEY);
CREATE TABLE IF NOT EXISTS {n.flow_version} (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),
    version bigint NOT NULL
);
INSERT INTO {n.flow_version} (version) VALUES (0) ON CONFLICT DO NOTHING;
"""


def _v7(n: Names) -> str:
    """Every task by enqueue order, newest first: what a dashboard's task list reads a page
    of (`Backend.search_tasks`); without it a page at a million tasks sorts them all."""
    return f"CREATE INDEX IF NOT EXISTS {n.tasks}_seq ON {n.tasks} (seq);"


#: Migration ``i`` brings the schema from version ``i`` to ``i + 1``. Append, never edit.
MIGRATIONS: tuple[Callable[[Names], str], ...] = (
    _v1,
    _v2,
    _v3,
    _v4,
    _v5,
    joins.migration,
    _v7,
)

#: The schema version this code needs.
SCHEMA_VERSION = len(MIGRATIONS)


async def check_tables(conn: asyncpg.Connection, names: Names) -> None:
    """Raise `ForeignDatabase`, before anything is written, if the tables under ``names`` are
    not ones this code may use: a tasks table sitq did not create (no schema version table
    beside it), a version table of another shape, or a schema newer than `SCHEMA_VERSION`."""
    tasks, versions = await conn.fetchrow(
        "SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL",
        names.tasks,
        names.schema_version,
    )
    where = f"prefix {names.prefix!r} in {await conn.fetchval('SELECT current_database()')!r}"
    if tasks and not versions:
        raise _foreign(
            names,
            f"a table {names.tasks!r} exists with no {names.schema_version!r} beside it: sitq "
            f"did not create it ({where})",
            "give sitq another table_prefix, or drop or rename that table",
        )
    if not versions:
        return
    version_type = await conn.fetchval(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = to_regclass($1) AND attname = 'version' AND NOT attisdropped",
        names.schema_version,
    )
    if version_type != "integer":
        raise _foreign(
            names,
            f"a table {names.schema_version!r} that sitq did not create ({where})",
            "give sitq another table_prefix, or drop or rename that table",
        )
    found = await conn.fetchval(f"SELECT coalesce(max(version), 0) FROM {names.schema_version}")
    if tasks and found == 0:
        raise _foreign(
            names,
            f"a table {names.tasks!r} exists but {names.schema_version!r} records no version: "
            f"sitq did not create them ({where})",
            "give sitq another table_prefix, or drop or rename those tables",
        )
    if found > SCHEMA_VERSION:
        raise _foreign(
            names,
            f"tables at schema version {found}, newer than this sitq-postgres knows "
            f"({SCHEMA_VERSION}) ({where})",
            "upgrade sitq-postgres (pip install -U sitq-postgres) wherever these tables are used",
        )


def _foreign(names: Names, found: str, fix: str) -> ForeignDatabase:
    return ForeignDatabase(
        f"PostgreSQL: {found}; sitq left them untouched. Fix: {fix}.", location=names.prefix
    )


async def migrate(conn: asyncpg.Connection, names: Names) -> int:
    """Bring the schema up to `SCHEMA_VERSION` (idempotent); return the version found before.

    `check_tables` runs first, under the lock: tables that are not ours are refused unchanged.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", names.migrate_lock)
        await check_tables(conn, names)
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {names.schema_version} ("
            "version integer PRIMARY KEY, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        found = await conn.fetchval(f"SELECT coalesce(max(version), 0) FROM {names.schema_version}")
        for version in range(found, SCHEMA_VERSION):
            await conn.execute(MIGRATIONS[version](names))
            await conn.execute(
                f"INSERT INTO {names.schema_version} (version) VALUES ($1)", version + 1
            )
        return int(found)
