"""Schema migration: a database made by sitq-sqlite's version 1 schema (frozen below, as it
shipped) opens with the current backend, its tasks read with no headers and no progress, and
new tasks store both; its dedupe keys still hold, and flow control (version 4) and workflows
(version 5) work on it."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from sitq import TaskStatus
from sitq.errors import ConfigurationError
from sitq.flow_control import LimitRule
from sitq.progress import Progress
from sitq.testing import make_record
from sitq_sqlite import SQLiteBackend
from sitq_sqlite.schema import SCHEMA_VERSION

#: The DDL of schema version 1, frozen as it shipped (table ``sitq_tasks``).
V1_DDL = """
CREATE TABLE IF NOT EXISTS sitq_tasks (
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
    traceback        TEXT
);
CREATE INDEX IF NOT EXISTS sitq_tasks_pending
    ON sitq_tasks (priority DESC, available_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS sitq_tasks_leases
    ON sitq_tasks (lease_expires_at) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS sitq_tasks_status ON sitq_tasks (status, queue);
CREATE UNIQUE INDEX IF NOT EXISTS sitq_tasks_dedupe
    ON sitq_tasks (dedupe_key) WHERE dedupe_key IS NOT NULL AND status IN ('pending', 'running');
CREATE TABLE IF NOT EXISTS sitq_tasks_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO sitq_tasks_meta (key, value) VALUES ('schema_version', '1');
"""

#: How version 1 enqueued a task (its 13 insert columns).
V1_INSERT = (
    "INSERT INTO sitq_tasks (id, function, payload, serializer, queue, priority, available_at, "
    "max_retries, timeout, dedupe_key, status, attempts, created_at) "
    "VALUES (?, 'tests.tasks:work', x'5b305d', 'json', 'default', 0, 0, NULL, NULL, ?, "
    "'pending', 0, 0)"
)


def make_v1_database(path: Path) -> None:
    """A database as sitq-sqlite version 1 left it, holding two pending tasks: ``old``, and
    ``keyed`` with the dedupe key ``report``."""
    conn = sqlite3.connect(path)
    try:
        conn.executescript(V1_DDL)
        conn.execute(V1_INSERT, ("old", None))
        conn.execute(V1_INSERT, ("keyed", "report"))
        conn.commit()
    finally:
        conn.close()


def stored_version(path: Path) -> int:
    """The schema version recorded in the file."""
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT value FROM sitq_tasks_meta WHERE key = 'schema_version'")
        return int(row.fetchone()[0])
    finally:
        conn.close()


async def status_of(backend: SQLiteBackend, task_id: str) -> TaskStatus | None:
    """The stored status of ``task_id`` (None: not stored)."""
    record = await backend.get_task(task_id)
    return None if record is None else record.status


async def use_migrated(path: Path) -> None:
    backend = SQLiteBackend(path)
    try:
        old = await backend.get_task("old")
        assert old is not None and old.meta == {} and old.progress is None
        new_id = await backend.enqueue(make_record(meta={"tenant": "ünï"}))
        assert (await backend.get_task(new_id)).meta == {"tenant": "ünï"}  # type: ignore[union-attr]
        claimed = await backend.claim_by_id("old", worker_id="w", lease_seconds=30)
        assert claimed is not None and claimed.lease_token is not None
        progress = Progress(0.5, "half", 1.0)
        assert await backend.set_progress({"old": (claimed.lease_token, progress)}) == {"old"}
        assert await backend.complete("old", claimed.lease_token, None)
        done = await backend.get_task("old")
        assert done is not None and done.status is TaskStatus.SUCCEEDED
        assert done.progress == progress
        fire = make_record()  # version 3: the tables of periodic schedules
        assert await backend.enqueue_fire("sweep", 60.0, fire) == fire.id
        assert [s.name for s in await backend.schedule_states()] == ["sweep"]
        # version 5: workflows; a child of the old task (ended) is pending at once
        child = replace(make_record(), parents=("old", new_id), workflow_id="wf")
        await backend.enqueue(child)
        assert await status_of(backend, child.id) is TaskStatus.WAITING
        claimed = await backend.claim_by_id(new_id, worker_id="w", lease_seconds=30)
        assert claimed is not None and claimed.lease_token is not None
        assert await backend.complete(new_id, claimed.lease_token, None)
        assert await status_of(backend, child.id) is TaskStatus.PENDING
        assert [t.id for t in await backend.workflow_tasks("wf")] == [child.id]
        await use_flow_control(backend)
    finally:
        await backend.close()


async def use_flow_control(backend: SQLiteBackend) -> None:
    """Version 4: a task stored before still holds its dedupe key; limits and pauses work."""
    assert await backend.enqueue(make_record(dedupe_key="report")) == "keyed"
    await backend.set_limits([LimitRule("api", concurrency=1)])
    limited = [dataclasses.replace(make_record(queue="flow"), limits=("api",)) for _ in range(2)]
    await backend.enqueue_many(limited)
    await backend.pause_queue("flow", True)
    assert await backend.claim(worker_id="w", limit=10, lease_seconds=30, queues=["flow"]) == []
    await backend.pause_queue("flow", False)
    claimed = await backend.claim(worker_id="w", limit=10, lease_seconds=30, queues=["flow"])
    assert [r.id for r in claimed] == [limited[0].id]


def test_a_version_1_database_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    make_v1_database(path)
    asyncio.run(use_migrated(path))
    assert stored_version(path) == SCHEMA_VERSION == 5
    asyncio.run(SQLiteBackend(path).connect())  # opening again changes nothing
    assert stored_version(path) == SCHEMA_VERSION


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    make_v1_database(path)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE sitq_tasks_meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(ConfigurationError, match="upgrade sitq-sqlite"):
        asyncio.run(SQLiteBackend(path).connect())
