"""Run in a child process by test_sqlite_backend: claim tasks from a shared file until none is
left, complete them, and report the ids it claimed."""

from __future__ import annotations

import asyncio
from typing import Any

from sitq import SyncTaskQueue, Task
from sitq.backend import Outcome
from sitq.conformance import make_record
from sitq_sqlite import SQLiteBackend


async def _drain(path: str, worker: str) -> list[str]:
    backend = SQLiteBackend(path)
    claimed: list[str] = []
    try:
        while batch := await backend.claim(worker_id=worker, limit=10, lease_seconds=300):
            claimed.extend(r.id for r in batch)
            done = [Outcome.succeeded(r.id, r.lease_token or "", None) for r in batch]
            assert all(await backend.finish(done)), "a freshly claimed task could not be finished"
    finally:
        await backend.close()
    return claimed


def claim_all(path: str, worker: str, start: Any, results: Any) -> None:
    """Wait at ``start`` (a barrier) with the other claimers, drain, put the ids on
    ``results``."""
    start.wait(60)
    results.put((worker, asyncio.run(_drain(path, worker))))


def open_new_files(folder: str, rounds: int, start: Any, results: Any) -> None:
    """For each round, wait at ``start`` (a barrier) with the other openers, then open and
    write to a file none of them has made yet, from async and from plain code; put the
    errors met on ``results``."""
    errors: list[str] = []
    for n in range(rounds):
        start.wait(60)
        path = f"{folder}/new-{n}.db"
        try:
            asyncio.run(_open_and_write(path))
            with SyncTaskQueue(SQLiteBackend(path)) as queue:
                queue.enqueue_many([Task("math:sqrt", args=(4,))])
        except Exception as exc:  # reported, not raised: the test names every failure
            errors.append(f"round {n}: {exc!r}")
    results.put(errors)


async def _open_and_write(path: str) -> None:
    backend = SQLiteBackend(path)
    try:
        await backend.enqueue_many([make_record()])
    finally:
        await backend.close()
