"""The PostgreSQL server of the tests in this folder: its URL, the check that it is up, and
tables under a fresh prefix per test, dropped afterwards (the sitq-postgres package has its
own, in sitq-postgres/tests/pg_support.py)."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

PG_URL = os.environ.get("SITQ_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


async def require_postgres() -> None:
    """Skip the test when the server is down; fail it in CI, where `.ci/run` starts one."""
    import asyncpg

    try:
        conn = await asyncpg.connect(PG_URL, timeout=5)
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
        message = f"PostgreSQL is not reachable at {PG_URL}: {type(exc).__name__}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    await conn.close()


def new_prefix(kind: str) -> str:
    """A table prefix no other test uses (``sitqtest_<kind>_<random>_``)."""
    return f"sitqtest_{kind}_{uuid.uuid4().hex[:10]}_"


async def drop_prefix(prefix: str) -> None:
    """Drop every table and function whose name starts with ``prefix``: the tasks, the schema
    version and whatever later schema versions add (schedules, workflow edges and triggers)."""
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
        functions = await conn.fetch(
            "SELECT proname FROM pg_proc WHERE pronamespace = current_schema()::regnamespace "
            "AND starts_with(proname, $1)",
            prefix,
        )
        for row in functions:
            await conn.execute(f'DROP FUNCTION IF EXISTS "{row["proname"]}"')
    finally:
        await conn.close()
