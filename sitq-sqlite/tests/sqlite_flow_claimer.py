"""Run in a child process by test_sqlite_flow_control: claim from a shared file, never
finishing, until claims come back empty, and report the ids claimed."""

from __future__ import annotations

import asyncio
from typing import Any

from sitq_sqlite import SQLiteBackend


async def _claim_until_empty(path: str, worker: str) -> list[str]:
    backend = SQLiteBackend(path)
    claimed: list[str] = []
    try:
        empty = 0
        while empty < 3:  # three empty claims in a row: the others have taken the rest
            batch = await backend.claim(worker_id=worker, limit=3, lease_seconds=300)
            claimed.extend(r.id for r in batch)
            empty = 0 if batch else empty + 1
    finally:
        await backend.close()
    return claimed


def claim_held(path: str, worker: str, start: Any, results: Any) -> None:
    """Wait at ``start`` (a barrier) with the other claimers, claim, put the ids on
    ``results``."""
    start.wait(60)
    results.put((worker, asyncio.run(_claim_until_empty(path, worker))))
