"""The SQLite schema of sitq, versioned: the tasks table, its indexes, and the pragmas every
connection sets."""

from __future__ import annotations

from collections.abc import Callable

from . import workflows

#: The schema version this code creates and needs (stored in ``<table>_meta``).
SCHEMA_VERSION = 4

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
)

#: Columns written by an enqueue.
INSERT_COLUMNS = (
    *COLUMNS[:10],
    "status",
    "attempts",
    "created_at",
    "meta",
    *workflows.INSERT_COLUMNS,
)


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
    progress_at      REAL{workflows.column_ddl()}
);
CREATE INDEX IF NOT EXISTS {table}_pending
    ON {table} (priority DESC, available_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS {table}_leases
    ON {table} (lease_expires_at) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS {table}_status ON {table} (status, queue);
{workflows.dedupe_index(table)};
CREATE TABLE IF NOT EXISTS {table}_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
{";".join(schedule_ddl(table))};
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


#: ``MIGRATIONS[v]`` brings a table from version ``v`` to ``v + 1``. Add, never edit: a new
#: column goes both into `ddl` (new databases) and into a new migration (existing ones).
MIGRATIONS: dict[int, Callable[[str], list[str]]] = {1: _v2, 2: _v3, 3: workflows.migration}


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
