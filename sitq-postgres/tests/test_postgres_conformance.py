"""PostgresBackend passes the backend conformance kit unchanged."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pg_support import PG_URL, drop_tables, new_prefix

from sitq.backend import Backend
from sitq.conformance import BackendConformance
from sitq_postgres import PostgresBackend

pytestmark = pytest.mark.postgres


class TestPostgresConformance(BackendConformance):
    prefixes: list[str]

    @pytest.fixture(autouse=True)
    def _drop_tables_after(self) -> Iterator[None]:
        self.prefixes = []
        yield
        asyncio.run(drop_tables(self.prefixes))

    async def make_backend(self, tmp_path: Path) -> PostgresBackend:
        prefix = new_prefix("kit")
        self.prefixes.append(prefix)
        return PostgresBackend(PG_URL, table_prefix=prefix, pool_max_size=4)

    @contextlib.asynccontextmanager
    async def transaction(self, backend: Backend) -> AsyncIterator[Any]:
        conn = await asyncpg.connect(PG_URL)
        try:
            async with conn.transaction():
                yield conn
        finally:
            await conn.close()
