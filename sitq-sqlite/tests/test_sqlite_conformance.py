"""SQLiteBackend passes the backend conformance kit unchanged, on a file and in memory."""

from __future__ import annotations

from pathlib import Path

from sitq.conformance import BackendConformance
from sitq_sqlite import SQLiteBackend


class TestSQLiteFileConformance(BackendConformance):
    async def make_backend(self, tmp_path: Path) -> SQLiteBackend:
        return SQLiteBackend(tmp_path / "tasks.db")


class TestSQLiteMemoryConformance(BackendConformance):
    async def make_backend(self, tmp_path: Path) -> SQLiteBackend:
        return SQLiteBackend(":memory:")
