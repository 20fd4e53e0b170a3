"""The kit's cross-process claim test on PostgreSQL: three processes open the same tables
from the backend's URL and claim from them at once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres_support import PG_URL, drop_prefix, new_prefix

from sitq.backend import Backend
from sitq.conformance.kit import CrossProcessClaimTests
from sitq_postgres import PostgresBackend

pytestmark = [pytest.mark.needs_postgres, pytest.mark.postgres]


class TestPostgresAcrossProcesses(CrossProcessClaimTests):
    """Tables of their own (a fresh prefix), opened from a URL naming it."""

    prefix: str

    @pytest.fixture(autouse=True)
    def _own_tables(self) -> Iterator[None]:
        self.prefix = new_prefix("procs")
        yield
        asyncio.run(drop_prefix(self.prefix))

    async def make_backend(self, tmp_path: Path) -> Backend:
        return PostgresBackend.from_url(f"{PG_URL}?table_prefix={self.prefix}")
