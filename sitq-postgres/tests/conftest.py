"""Shared set-up of the sitq-postgres tests: the server to use and throwaway table prefixes.

Every test works under its own table prefix and drops its tables afterwards, so runs in
parallel (or a crashed run) never collide. The server is ``$SITQ_TEST_POSTGRES_URL`` or
``postgresql://postgres@127.0.0.1:5432/test``; if it is down the tests are skipped locally and
fail in CI (``CI`` set), where ``.ci/run`` starts it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import asyncpg
import pytest
from pg_support import PG_URL, drop_tables, new_prefix


async def _reachable() -> str | None:
    try:
        conn = await asyncpg.connect(PG_URL, timeout=5)
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


@pytest.fixture(scope="session", autouse=True)
def postgres_server() -> str:
    """The URL of a reachable server (skip, or fail in CI, when there is none)."""
    problem = asyncio.run(_reachable())
    if problem is not None:
        message = f"PostgreSQL is not reachable at {PG_URL} ({problem}); .ci/run starts it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return PG_URL


@pytest.fixture
def prefix() -> Iterator[str]:
    """A fresh table prefix, its tables dropped after the test."""
    name = new_prefix()
    yield name
    asyncio.run(drop_tables([name]))


@pytest.fixture
def pg_url(prefix: str) -> str:
    """A backend URL under a fresh table prefix."""
    return f"{PG_URL}?table_prefix={prefix}"


def slow_requested(config: pytest.Config) -> bool:
    """True for ``pytest -m slow`` (or ``SITQ_PG_SLOW=1``)."""
    markexpr = str(config.getoption("markexpr") or "")
    return os.environ.get("SITQ_PG_SLOW") == "1" or (
        "slow" in markexpr and "not slow" not in markexpr
    )


@pytest.fixture(autouse=True)
def _slow_on_demand(request: pytest.FixtureRequest) -> None:
    """Tests marked slow (full size, server restart) run only when asked for."""
    if request.node.get_closest_marker("slow") and not slow_requested(request.config):
        pytest.skip("runs on demand: pytest -m slow, or SITQ_PG_SLOW=1")
