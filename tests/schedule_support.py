"""What the schedule tests share: a clock they move by hand (backwards too), stores of every
backend that two schedulers can share, and reading back which fire times got a task."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

from postgres_support import PG_URL, drop_prefix, new_prefix, require_postgres

from sitq import TaskQueue
from sitq.backend import Backend
from sitq.plugins import get_plugin_manager
from sitq.schedules import FIRED_AT_HEADER, SCHEDULE_HEADER

BACKENDS = ["memory", "sqlite", "postgres"]


class StepClock:
    """Epoch seconds set by hand, forwards or backwards (a wall clock that is stepped)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def store_url(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a new empty store of backend ``kind`` (its PostgreSQL tables are dropped
    afterwards; the test is skipped if PostgreSQL is down, and fails in CI)."""
    if kind == "memory":
        yield f"memory://schedules-{uuid.uuid4().hex}"
    elif kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'schedules.db'}"
    else:
        await require_postgres()
        prefix = new_prefix("sched")
        try:
            yield f"{PG_URL}?table_prefix={prefix}"
        finally:
            await drop_prefix(prefix)


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
