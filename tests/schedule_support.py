"""What the schedule tests share: a clock they move by hand (backwards too), stores of every
backend that two schedulers can share, and reading back which fire times got a task."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import pytest

from sitq import TaskQueue
from sitq.backend import Backend
from sitq.plugins import get_plugin_manager
from sitq.schedules import FIRED_AT_HEADER, SCHEDULE_HEADER

PG_URL = os.environ.get("SITQ_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["memory", "sqlite", "postgres"]


class StepClock:
    """Epoch seconds set by hand, forwards or backwards (a wall clock that is stepped)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def _postgres_reachable() -> bool:
    import asyncpg

    try:
        conn = await asyncpg.connect(PG_URL, timeout=5)
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError):
        return False
    await conn.close()
    return True


async def drop_postgres(prefix: str) -> None:
    """Drop the tables sitq made under table prefix ``prefix``."""
    import asyncpg

    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(
            f"DROP TABLE IF EXISTS {prefix}tasks, {prefix}schema_version, "
            f"{prefix}schedules, {prefix}schedule_fires"
        )
    finally:
        await conn.close()


async def postgres_prefix() -> str:
    """A new table prefix on the test server (the test is skipped if PostgreSQL is down,
    and fails in CI)."""
    if not await _postgres_reachable():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_URL}")
        pytest.skip(f"PostgreSQL is not reachable at {PG_URL}")
    return f"sitqtest_sched_{uuid.uuid4().hex[:10]}_"


@asynccontextmanager
async def store_url(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a new empty store of backend ``kind`` (its PostgreSQL tables are dropped
    afterwards; the test is skipped if PostgreSQL is down, and fails in CI)."""
    if kind == "memory":
        yield f"memory://schedules-{uuid.uuid4().hex}"
    elif kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'schedules.db'}"
    else:
        prefix = await postgres_prefix()
        try:
            yield f"{PG_URL}?table_prefix={prefix}"
        finally:
            await drop_postgres(prefix)


@asynccontextmanager
async def store(kind: str, tmp_path: Path) -> AsyncIterator[Callable[[], Backend]]:
    """A new empty store of backend ``kind``; yields a function opening another backend
    object on it (what a second process would open)."""
    async with store_url(kind, tmp_path) as url:
        yield lambda: get_plugin_manager().backend_from_url(url)


async def fired(queue: TaskQueue, schedule: str) -> list[datetime]:
    """The fire times of ``schedule`` that got a task, from the tasks' headers, sorted (a
    fire stored twice shows twice)."""
    records = await queue.backend.list_tasks(limit=None)
    return sorted(
        datetime.fromisoformat(r.meta[FIRED_AT_HEADER])
        for r in records
        if r.meta.get(SCHEDULE_HEADER) == schedule
    )
