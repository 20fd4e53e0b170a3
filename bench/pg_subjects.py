"""sitq-postgres and procrastinate on a PostgreSQL server (``SITQ_BENCH_POSTGRES``).

sitq works in tables under a prefix of its own per subject (``sbench_<random>_``), dropped
afterwards; procrastinate, whose tables have fixed names, gets a throwaway database for the
run (`postgres.procrastinate_database`), emptied after each round and dropped at exit.
Enqueue: ``SyncTaskQueue.enqueue`` one at a time from plain code. Drain: N no-op tasks stored
first, one worker process with its defaults; sitq's time runs from starting the worker to its
N-th task (as on SQLite), procrastinate's from its first start to its last success (read from
its events table: it has no ``max_tasks``).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import uuid

import workloads
from harness import Clock, Sample
from procs import run_child
from sitq_subjects import check_done, latency_child

from sitq import SyncTaskQueue, TaskQueue

URL = os.environ.get("SITQ_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def fresh_url() -> tuple[str, str]:
    """A URL of sitq on tables of their own, and their prefix."""
    prefix = f"sbench_{uuid.uuid4().hex[:8]}_"
    return f"{URL}?table_prefix={prefix}", prefix


async def drop_tables(prefix: str, url: str = URL) -> None:
    """Drop every table and function whose name starts with ``prefix`` (sitq's, of one
    subject: the workflow triggers' functions too) on the server at ``url``."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        names = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "AND starts_with(tablename, $1)",
            prefix,
        )
        for row in names:
            await conn.execute(f'DROP TABLE IF EXISTS "{row["tablename"]}" CASCADE')
        functions = await conn.fetch(
            "SELECT proname FROM pg_proc WHERE pronamespace = current_schema()::regnamespace "
            "AND starts_with(proname, $1)",
            prefix,
        )
        for row in functions:
            await conn.execute(f'DROP FUNCTION IF EXISTS "{row["proname"]}"')
    finally:
        await conn.close()


def problem() -> str | None:
    """Why PostgreSQL rows cannot run here (no server, a package missing), or None."""
    try:
        import asyncpg

        import sitq_postgres  # noqa: F401  (the backend the URLs need)
    except ImportError as exc:
        return f"{exc.name} is not installed"

    async def ping() -> None:
        conn = await asyncpg.connect(URL, timeout=3)
        await conn.close()

    try:
        asyncio.run(ping())
    except Exception as exc:  # any reason at all: the rows are skipped with it
        return f"no server at {URL} ({type(exc).__name__}: {exc})"
    return None


def enqueue_sync(folder: str, n: int) -> Sample:
    """``SyncTaskQueue.enqueue`` n times from plain code."""
    url, prefix = fresh_url()
    try:
        queue = SyncTaskQueue(url)
        try:
            queue.enqueue(workloads.sync_noop)
            clock = Clock()
            for _ in range(n):
                queue.enqueue(workloads.sync_noop)
            return clock.sample(n)
        finally:
            queue.close()
    finally:
        asyncio.run(drop_tables(prefix))


def raw_insert_each(folder: str, n: int) -> Sample:
    """asyncpg alone: one INSERT (its own transaction, committed) per row into sitq's own
    table, on one connection, from a loop run in this thread: the floor under a single
    enqueue on this server (each commit waits for its WAL flush)."""
    import pickle

    import asyncpg

    url, prefix = fresh_url()

    async def run() -> Sample:
        async with TaskQueue(url) as queue:  # sitq's tables, indexes and all
            await queue.enqueue(workloads.sync_noop)
        conn = await asyncpg.connect(URL)
        try:
            insert = (
                f'INSERT INTO "{prefix}tasks" (id, function, payload, serializer, queue, '
                "available_at, status, created_at) "
                "VALUES ($1, 'workloads:sync_noop', $2, 'cloudpickle', 'default', $3, "
                "'pending', $3)"
            )
            payload = pickle.dumps(((), {}))
            clock = Clock()
            for _ in range(n):
                await conn.execute(insert, uuid.uuid4().hex, payload, 0.0)
            return clock.sample(n)
        finally:
            await conn.close()

    try:
        return asyncio.run(run())
    finally:
        asyncio.run(drop_tables(prefix))


def drain(folder: str, n: int) -> Sample:
    """n no-op tasks stored first, then one sitq worker process (defaults) runs them."""
    url, prefix = fresh_url()

    async def fill() -> None:
        async with TaskQueue(url) as queue:
            for start in range(0, n, 1000):
                await queue.enqueue_many([workloads.async_noop] * min(1000, n - start))

    async def check() -> None:
        async with TaskQueue(url) as queue:
            await check_done(queue, n)

    try:
        asyncio.run(fill())
        report = run_child(["sitq-drain", url, str(n)], timeout=300)
        asyncio.run(check())
        return Sample(int(report["ops"]), float(report["seconds"]), cpu_seconds=report["cpu"])
    finally:
        asyncio.run(drop_tables(prefix))


_procrastinate_dsn: list[str] = []


def procrastinate_dsn() -> str:
    """procrastinate's throwaway database of this run: made at first use, dropped at exit."""
    import postgres

    if not _procrastinate_dsn:
        dsn = asyncio.run(postgres.procrastinate_database(URL))
        atexit.register(lambda: asyncio.run(postgres.drop_database(URL, dsn)))
        _procrastinate_dsn.append(dsn)
    return _procrastinate_dsn[0]


def procrastinate_drain(folder: str, n: int) -> Sample:
    """n no-op jobs deferred first, then one procrastinate worker process drains them (its
    jobs and events are emptied afterwards, for the next round)."""
    import postgres

    rate = asyncio.run(postgres.procrastinate_throughput(procrastinate_dsn(), n, 1))
    return Sample(n, n / rate)


def latency(folder: str, samples: int, idle_seconds: float) -> Sample:
    """Idle pickup and result latency, sitq-postgres worker (defaults) in another process."""
    url, prefix = fresh_url()
    try:
        return latency_child(folder, samples, idle_seconds, url=url)
    finally:
        asyncio.run(drop_tables(prefix))
