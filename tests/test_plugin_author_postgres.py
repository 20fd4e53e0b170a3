"""The kit's cross-process claim test on PostgreSQL: three processes open the same tables
from the backend's URL and claim from them at once."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from sitq.backend import Backend
from sitq.conformance.kit import CrossProcessClaimTests
from sitq_postgres import PostgresBackend

pytestmark = [pytest.mark.needs_postgres, pytest.mark.postgres]

PG_URL = os.environ.get("SITQ_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


async def drop_tables(prefix: str) -> None:
    """Drop the tables sitq created under ``prefix``."""
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {prefix}tasks, {prefix}schema_version")
    finally:
        await conn.close()


class TestPostgresAcrossProcesses(CrossProcessClaimTests):
    """Tables of their own (a fresh prefix), opened from a URL naming it."""

    prefix: str

    @pytest.fixture(autouse=True)
    def _own_tables(self) -> Iterator[None]:
        self.prefix = f"sitqtest_procs_{uuid.uuid4().hex[:10]}_"
        yield
        asyncio.run(drop_tables(self.prefix))

    async def make_backend(self, tmp_path: Path) -> Backend:
        return PostgresBackend.from_url(f"{PG_URL}?table_prefix={self.prefix}")
