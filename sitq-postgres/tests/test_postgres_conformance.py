"""PostgresBackend passes the backend conformance kit unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_support import PG_URL, drop_tables, new_prefix

from sitq.testing import BackendConformance
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
