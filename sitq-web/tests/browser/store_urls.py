"""The stores the browser tests run on: a fresh SQLite file, and fresh tables under their own
prefix on the PostgreSQL server at 127.0.0.1:5432 (skipped where it is down, failed in CI)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

PG_URL = os.environ.get("SITQ_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def sqlite_url(folder: Path) -> str:
    """A SQLite file in ``folder``."""
    return f"sqlite:///{folder / 'tasks.db'}"


@contextmanager
def postgres_url() -> Iterator[str]:
    """The PostgreSQL server with a table prefix no other test uses; its tables are dropped
    afterwards. Skips the test where the server is down (fails it in CI, where `.ci/run`
    starts one); skips it where sitq-postgres is not installed."""
    if importlib.util.find_spec("sitq_postgres") is None:
        pytest.skip("sitq-postgres is not installed")
    _run_aside(_require_server())
    prefix = f"sitqtest_web_{uuid.uuid4().hex[:10]}_"
    try:
        yield f"{PG_URL}?table_prefix={prefix}"
    finally:
        _run_aside(_drop_tables(prefix))


def _run_aside(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` to its end in a thread of its own: Playwright's sync API keeps an event
    loop running in the test's thread, where `asyncio.run` may not be called."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result()


async def _require_server() -> None:
    import asyncpg

    try:
        conn = await asyncpg.connect(PG_URL, timeout=5)
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
        message = f"PostgreSQL is not reachable at {PG_URL}: {type(exc).__name__}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    await conn.close()


async def _drop_tables(prefix: str) -> None:
    """Drop every table whose name starts with ``prefix``."""
    import asyncpg

    conn = await asyncpg.connect(PG_URL)
    try:
        names = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "AND starts_with(tablename, $1)",
            prefix,
        )
        for row in names:
            await conn.execute(f'DROP TABLE IF EXISTS "{row["tablename"]}" CASCADE')
    finally:
        await conn.close()
