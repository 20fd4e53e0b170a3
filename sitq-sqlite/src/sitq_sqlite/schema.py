"""The SQLite schema of sitq, versioned: the tasks table, its indexes, and the pragmas every
connection sets."""

from __future__ import annotations

from collections.abc import Callable

from . import workflows
from .joins import ACTIVE

#: The schema version this code creates and needs (stored in ``<table>_meta``).
SCHEMA_VERSION = 5

#: Columns of the tasks table, in the order `TaskRecord` rows are read.
COLUMNS = (
    "id",
    "function",
    "payload",
    "serializer",
    "queue",
    "priority",
    "available_at",
    "max_retries",
    "timeout",
    "dedupe_key",
    "status",
    "attempts",
    "created_at",
    "started_at",
    "finished_at",
    "worker_id",
    "lease_token",
    "lease_expires_at",
    "result",
    "error",
    "traceback",
    "meta",
    "progress",
    "progress_message",
    "progress_at",
    "limit_keys",
)

#: Columns written by an enqueue.
INSERT_COLUMNS = (
    *COLUMNS[:10],
    "status",
    "attempts",
    "created_at",
    "meta",
    "limit_keys",
    "unique_checked",
    *workflows.INSERT_COLUMNS,
)


#: Which stored tasks the dedupe index holds: active ones (waiting, pending, running) with a
#: key, unless their record chose its own uniqueness (``unique_for``/``unique_states``:
#: checked by a query instead, `inserts.unique_hits`).
DEDUPE_WHERE = f"dedupe_key IS NOT NULL AND status IN {ACTIVE} AND unique_checked IS NULL"


def ddl(table: str) -> str:
    """The statements creating the tasks table and its indexes (idempotent)."""
    return f"""
CREATE TABLE IF NOT EXISTS {table} (
    id               TEXT PRIMARY KEY,
    function         TEXT NOT NULL,
    payload          BLOB NOT NULL,
    serializer       TEXT NOT NULL,
    queue            TEXT NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,
    available_at     REAL NOT NULL,
    max_retries      INTEGER,
    timeout          REAL,
    dedupe_key       TEXT,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    created_at       REAL NOT NULL,
    started_at       REAL,
    finished_at      REAL,
    worker_id        TEXT,
    lease_token      TEXT,
    lease_expires_at REAL,
    result           BLOB,
    error            TEXT,
    traceback        TEXT,
    meta             TEXT NOT NULL DEFAULT '{{}}',
    progress         REAL,
    progress_message TEXT,
    progress_at      REAL,
    limit_keys       TEXT,
    unique_checked   INTEGER{workflows.column_ddl()}
);
CREATE INDEX IF NOT EXISTS {table}_pending
    ON {table} (priority DESC, available_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS {table}_leases
    ON {table} (lease_expires_at) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS {table}_status ON {table} (status, queue);
{dedupe_index_ddl(table)};
CREATE TABLE IF NOT EXISTS {table}_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
{";".join(schedule_ddl(table))};
{";".join(flow_tables_ddl(table))};
INSERT OR IGNORE INTO {table}_meta (key, value) VALUES ('schema_version', '{SCHEMA_VERSION}');
"""


def _v2(table: str) -> list[str]:
    """Version 1 → 2: task headers (``meta``, JSON text) and progress."""
    return [
        f"ALTER TABLE {table} ADD COLUMN meta TEXT NOT NULL DEFAULT '{{}}'",
        f"ALTER TABLE {table} ADD COLUMN progress REAL",
        f"ALTER TABLE {table} ADD COLUMN progress_message TEXT",
        f"ALTER TABLE {table} ADD COLUMN progress_at REAL",
    ]


def schedule_ddl(table: str) -> list[str]:
    """The tables of periodic schedules (idempotent): one state row per schedule, and one
    row per stored fire, unique per ``(schedule, fire_time)`` (`sitq.schedule_state`)."""
    return [
        f"""CREATE TABLE IF NOT EXISTS {table}_schedules (
    name          TEXT PRIMARY KEY,
    paused        INTEGER NOT NULL DEFAULT 0,
    decided_until REAL NOT NULL,
    last_fire     REAL,
    last_task_id  TEXT,
    definition    TEXT
)""",
        f"""CREATE TABLE IF NOT EXISTS {table}_schedule_fires (
    schedule  TEXT NOT NULL,
    fire_time REAL NOT NULL,
    task_id   TEXT NOT NULL,
    PRIMARY KEY (schedule, fire_time)
) WITHOUT ROWID""",
    ]


def _v3(table: str) -> list[str]:
    """Version 2 → 3: the tables of periodic schedules."""
    return schedule_ddl(table)


def flow_tables_ddl(table: str) -> list[str]:
    """The tables of flow control (idempotent): the rules, one state row per key seen (its
    bucket and when it was last served), the paused queues; and ``flow_version`` in
    ``<table>_meta``, bumped by every change of rules or pauses so that a claim knows its
    cached copy of them is current (`sitq_sqlite.limits`)."""
    return [
        f"""CREATE TABLE IF NOT EXISTS {table}_limits (
    pattern     TEXT PRIMARY KEY,
    rate        REAL,
    burst       REAL,
    concurrency INTEGER
) WITHOUT ROWID""",
        f"""CREATE TABLE IF NOT EXISTS {table}_limit_keys (
    key            TEXT PRIMARY KEY,
    tokens         REAL NOT NULL,
    refilled_at    REAL NOT NULL,
    last_served_at REAL
) WITHOUT ROWID""",
        f"CREATE TABLE IF NOT EXISTS {table}_paused (queue TEXT PRIMARY KEY) WITHOUT ROWID",
        f"INSERT OR IGNORE INTO {table}_meta (key, value) VALUES ('flow_version', '0')",
    ]


def dedupe_index_ddl(table: str) -> str:
    """The dedupe index (idempotent: in `ddl`, so a new table never exists without it; a
    table made before version 4 keeps its older index, of the same name, until `_v4`)."""
    return (
        f"CREATE UNIQUE INDEX IF NOT EXISTS {table}_dedupe ON {table} (dedupe_key) "
        f"WHERE {DEDUPE_WHERE}"
    )


def indexes_ddl(table: str) -> list[str]:
    """The indexes on columns added by migrations, created once the table is migrated
    (idempotent): every task by dedupe key (for the records that choose their own
    uniqueness: `sitq_sqlite.inserts.unique_hits`), and the running tasks that hold limit
    keys (read by every limited claim to count the slots taken)."""
    return [
        f"CREATE INDEX IF NOT EXISTS {table}_keyed ON {table} (dedupe_key) "
        "WHERE dedupe_key IS NOT NULL",
        f"CREATE INDEX IF NOT EXISTS {table}_held ON {table} (limit_keys) "
        "WHERE status = 'running' AND limit_keys IS NOT NULL",
    ]


def _v4(table: str) -> list[str]:
    """Version 3 → 4: flow control (limit keys, rules, key states, paused queues) and the
    dedupe index leaving out tasks that chose their own uniqueness."""
    return [
        f"ALTER TABLE {table} ADD COLUMN limit_keys TEXT",
        f"ALTER TABLE {table} ADD COLUMN unique_checked INTEGER",
        f"DROP INDEX IF EXISTS {table}_dedupe",
        dedupe_index_ddl(table),
        *flow_tables_ddl(table),
        *indexes_ddl(table),
    ]


#: ``MIGRATIONS[v]`` brings a table from version ``v`` to ``v + 1``. Add, never edit: a new
#: column goes both into `ddl` (new databases) and into a new migration (existing ones).
MIGRATIONS: dict[int, Callable[[str], list[str]]] = {
    1: _v2,
    2: _v3,
    3: _v4,
    4: workflows.migration,
}


def version_query(table: str) -> str:
    """The stored schema version of ``table``."""
    return f"SELECT value FROM {table}_meta WHERE key = 'schema_version'"


def set_version(table: str, version: int) -> str:
    """The statement recording ``version`` as ``table``'s schema version."""
    return f"UPDATE {table}_meta SET value = '{int(version)}' WHERE key = 'schema_version'"


#: The ``synchronous`` settings `SQLiteBackend` accepts.
SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")


def pragmas(*, in_memory: bool, synchronous: str, busy_timeout: float) -> list[str]:
    """The pragmas run on each new connection: WAL for a file (readers never block the
    writer, and its changes are what `sitq_sqlite.watch` looks at), durability and the lock
    wait."""
    found = [] if in_memory else ["PRAGMA journal_mode=WAL"]
    found.append(f"PRAGMA synchronous={synchronous}")
    found.append(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    return found


# -- giving space back (retention) -------------------------------------------------------------


def space_pragmas() -> list[str]:
    """The pragmas run on each new connection before any other: a new file is made with
    incremental auto-vacuum, so the pages of deleted tasks can be given back to the operating
    system (`incremental_vacuum`). It only takes before the first table exists (and before
    WAL is set); an older file keeps its mode until one full ``VACUUM`` (``sitq vacuum``)."""
    return ["PRAGMA auto_vacuum=INCREMENTAL"]


def prune_ddl(table: str) -> str:
    """The index pruning walks: finished tasks by status and finish time (idempotent; only
    finished tasks have a ``finished_at``, so pending and running ones cost it nothing)."""
    return (
        f"CREATE INDEX IF NOT EXISTS {table}_finished "
        f"ON {table} (status, finished_at) WHERE finished_at IS NOT NULL"
    )


def incremental_vacuum(pages: int) -> str:
    """The statement giving ``pages`` free pages back to the operating system (run with
    ``executescript``: it frees one page per step, and only a script runs every step)."""
    return f"PRAGMA incremental_vacuum({int(pages)})"
