"""What pruning costs: milliseconds per 1,000 deleted tasks, on SQLite and PostgreSQL.

    python bench/prune.py [--tasks 50000] [--url postgresql://postgres@127.0.0.1/test]
                          [--no-postgres]

The store is filled with ``--tasks`` succeeded tasks (200-byte payloads, 50-byte results) of
which half finished long ago; ``Backend.prune`` then deletes the old half 1,000 at a time, as a
worker's pass does. Reported: the mean and worst time of one 1,000-row batch, a pass that finds
nothing left to delete (the cost every worker pays every ``prune_interval``), and the
SQLite ``reclaim_space`` after the pass. PostgreSQL uses tables under a throwaway prefix,
dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid

from sitq import TaskStatus
from sitq.backend import Backend, Outcome
from sitq.conformance.records import make_record
from sitq.retention import PRUNE_BATCH

DAY = 86400.0


async def fill(backend: Backend, count: int) -> float:
    """``count`` succeeded tasks, the first half finished two days ago and the rest now;
    returns a cutoff between the halves."""
    now = time.time()
    for start in range(0, count, 1000):
        await backend.enqueue_many([make_record(payload=os.urandom(200)) for _ in range(1000)])
        tasks = await backend.claim(worker_id="bench", limit=1000, lease_seconds=60)
        finished_at = now - 2 * DAY if start < count // 2 else now
        await backend.finish(
            [
                Outcome(
                    t.id,
                    t.lease_token or "",
                    TaskStatus.SUCCEEDED,
                    b"r" * 50,
                    finished_at=finished_at,
                )
                for t in tasks
            ]
        )
    return now - DAY


async def measure(name: str, backend: Backend, count: int) -> None:
    """Fill, prune the old half in batches, and print the costs."""
    await backend.connect()
    try:
        cutoff = await fill(backend, count)
        batches: list[float] = []
        while True:
            started = time.perf_counter()
            deleted = await backend.prune({TaskStatus.SUCCEEDED: cutoff}, PRUNE_BATCH)
            if deleted < PRUNE_BATCH:
                break
            batches.append(time.perf_counter() - started)
        started = time.perf_counter()
        await backend.reclaim_space()
        reclaim = time.perf_counter() - started
        started = time.perf_counter()
        assert await backend.prune({TaskStatus.SUCCEEDED: cutoff}, PRUNE_BATCH) == 0
        empty = time.perf_counter() - started
        print(
            f"{name:<10} {len(batches) * PRUNE_BATCH:>7} pruned of {count}: "
            f"{1000 * statistics.mean(batches):6.1f} ms per {PRUNE_BATCH} "
            f"(worst {1000 * max(batches):6.1f}); empty pass {1000 * empty:5.2f} ms; "
            f"reclaim_space {1000 * reclaim:6.1f} ms"
        )
    finally:
        await backend.close()


async def main() -> None:
    """Run the SQLite measure, then PostgreSQL's if a server answers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=50_000)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1/test")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    from sitq_sqlite import SQLiteBackend

    with tempfile.TemporaryDirectory() as folder:
        await measure("sqlite", SQLiteBackend(os.path.join(folder, "prune.db")), args.tasks)
    if args.no_postgres:
        return
    try:
        import asyncpg

        from sitq_postgres import PostgresBackend
    except ImportError:
        print("postgres   skipped: sitq-postgres is not installed", file=sys.stderr)
        return
    prefix = f"bench_{uuid.uuid4().hex[:8]}_"
    try:
        await measure("postgres", PostgresBackend(args.url, table_prefix=prefix), args.tasks)
    finally:
        conn = await asyncpg.connect(args.url)
        try:
            await conn.execute(f"DROP TABLE IF EXISTS {prefix}tasks, {prefix}schema_version")
        finally:
            await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
