"""Schema migration: tables made by sitq-postgres's schema version 1 (frozen below, as it
shipped) are migrated when the current backend connects; their tasks read with no headers and
no progress, and new tasks store both; their dedupe keys still hold, and flow control (version
5) works on them. Each test works under a throwaway table prefix."""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg
from pg_support import PG_URL

from sitq import TaskStatus
from sitq.flow_control import LimitRule
from sitq.progress import Progress
from sitq.testing import make_record
from sitq_postgres import PostgresBackend
from sitq_postgres.schema import SCHEMA_VERSION

#: Schema version 1, frozen as it shipped; ``{t}`` is the tasks table, ``{v}`` the table of
#: applied versions (what `migrate` created and recorded).
V1_DDL = """
CREATE TABLE {v} (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
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
INSERT INTO {v} (version) VALUES (1);
"""

#: How version 1 enqueued a task (its 13 insert columns).
V1_INSERT = (
    "INSERT INTO {t} (id, function, payload, serializer, queue, priority, available_at, "
    "max_retries, timeout, dedupe_key, status, attempts, created_at) "
    "VALUES ($1, 'tests.tasks:work', '\\x5b305d'::bytea, 'json', 'default', 0, 0, NULL, "
    "NULL, $2, 'pending', 0, 0)"
)


async def make_v1_tables(prefix: str) -> None:
    conn = await asyncpg.connect(PG_URL)
    try:
        names = {"t": f"{prefix}tasks", "v": f"{prefix}schema_version"}
        await conn.execute(V1_DDL.format(**names))
        await conn.execute(V1_INSERT.format(**names), "old", None)
        await conn.execute(V1_INSERT.format(**names), "keyed", "report")
    finally:
        await conn.close()


async def versions(prefix: str) -> list[int]:
    conn = await asyncpg.connect(PG_URL)
    try:
        rows = await conn.fetch(f"SELECT version FROM {prefix}schema_version ORDER BY version")
        return [row[0] for row in rows]
    finally:
        await conn.close()


async def status_of(backend: PostgresBackend, task_id: str) -> TaskStatus | None:
    """The stored status of ``task_id`` (None: not stored)."""
    record = await backend.get_task(task_id)
    return None if record is None else record.status


async def use_migrated(pg_url: str) -> None:
    backend = PostgresBackend.from_url(pg_url)
    try:
        old = await backend.get_task("old")
        assert old is not None and old.meta == {} and old.progress is None
        meta = {"tenant": "ünï", "nested": {"list": [1, None, True]}}
        new_id = await backend.enqueue(make_record(meta=meta))
        assert (await backend.get_task(new_id)).meta == meta  # type: ignore[union-attr]
        claimed = await backend.claim_by_id("old", worker_id="w", lease_seconds=30)
        assert claimed is not None and claimed.lease_token is not None
        progress = Progress(0.5, "half", 1.0)
        assert await backend.set_progress({"old": (claimed.lease_token, progress)}) == {"old"}
        assert await backend.complete("old", claimed.lease_token, None)
        done = await backend.get_task("old")
        assert done is not None and done.status is TaskStatus.SUCCEEDED
        assert done.progress == progress
        fire = make_record()  # version 4: the tables of periodic schedules
        assert await backend.enqueue_fire("sweep", 60.0, fire) == fire.id
        assert [s.name for s in await backend.schedule_states()] == ["sweep"]
        # version 6: workflows; the old task (ended) counts at once, the new one on its end
        child = dataclasses.replace(make_record(), parents=("old", new_id), workflow_id="wf")
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


async def use_flow_control(backend: PostgresBackend) -> None:
    """Version 5: a task stored before still holds its dedupe key; limits and pauses work."""
    assert await backend.enqueue(make_record(dedupe_key="report")) == "keyed"
    await backend.set_limits([LimitRule("api", concurrency=1)])
    limited = [dataclasses.replace(make_record(queue="flow"), limits=("api",)) for _ in range(2)]
    await backend.enqueue_many(limited)
    await backend.pause_queue("flow", True)
    assert await backend.claim(worker_id="w", limit=10, lease_seconds=30, queues=["flow"]) == []
    await backend.pause_queue("flow", False)
    claimed = await backend.claim(worker_id="w", limit=10, lease_seconds=30, queues=["flow"])
    assert [r.id for r in claimed] == [limited[0].id]


def test_version_1_tables_are_migrated(prefix: str, pg_url: str) -> None:
    asyncio.run(make_v1_tables(prefix))
    asyncio.run(use_migrated(pg_url))
    assert (
        asyncio.run(versions(prefix)) == list(range(1, SCHEMA_VERSION + 1)) == [1, 2, 3, 4, 5, 6, 7]
    )
    asyncio.run(use_again(pg_url))
    assert asyncio.run(versions(prefix)) == [
        1,
        2,
        3,
        4,
        5,
        6,
        7,
    ]  # connecting again migrates nothing


async def use_again(pg_url: str) -> None:
    backend = PostgresBackend.from_url(pg_url)
    try:
        await backend.connect()
    finally:
        await backend.close()
