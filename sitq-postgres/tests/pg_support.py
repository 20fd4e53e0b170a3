"""What the sitq-postgres tests share: the server URL and throwaway table prefixes.

Kept out of ``conftest.py`` so test modules import it by a name no other folder's
``conftest`` can shadow (pytest keeps one module named ``conftest`` at a time).
"""

from __future__ import annotations

import os
import uuid

import asyncpg

PG_URL = os.environ.get("SITQ_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def new_prefix(tag: str = "t") -> str:
    """A table prefix no other test or run uses."""
    return f"sitqtest_{tag}_{uuid.uuid4().hex[:10]}_"


async def drop_tables(prefixes: list[str]) -> None:
    """Drop every table sitq created under ``prefixes``."""
    if not prefixes:
        return
    conn = await asyncpg.connect(PG_URL)
    try:
        for prefix in prefixes:
            await conn.execute(
                f"DROP TABLE IF EXISTS {prefix}tasks, {prefix}schema_version, "
                f"{prefix}schedules, {prefix}schedule_fires, {prefix}limits, "
                f"{prefix}limit_keys, {prefix}paused, {prefix}flow_version, {prefix}task_edges"
            )
            await conn.execute(
                f"DROP FUNCTION IF EXISTS {prefix}tasks_parent_ended(), "
                f"{prefix}tasks_parent_requeued(), {prefix}tasks_child_deleted()"
            )
    finally:
        await conn.close()
