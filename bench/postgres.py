"""sitq-postgres next to procrastinate, on the same PostgreSQL server, in one run.

    python bench/postgres.py [--tasks 20000] [--procrastinate-tasks 2000] [--processes 1,2,4]
                             [--latency-samples 50] [--url postgresql://postgres@127.0.0.1/test]

Throughput: the queue is filled with no-op tasks first, then N worker processes drain it;
the rate is tasks / (last finish - first start), read from the stored timestamps, so process
start-up is left out for both systems. Latency: one idle worker process, one task at a time,
enqueue → start (sitq: ``created_at`` → ``started_at``; procrastinate: its ``deferred`` →
``started`` events). sitq workers run with their defaults (async, 100 slots, 1 s poll);
procrastinate workers with ``concurrency=1``, which drained no-op jobs faster than 10 here.

Needs sitq-core, sitq-postgres and procrastinate (bench/requirements.txt). sitq uses tables
under a throwaway prefix in the given database; procrastinate gets a throwaway database (its
tables have fixed names). Both are dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

HERE = os.path.dirname(os.path.abspath(__file__))
PROCRASTINATE_CONCURRENCY = 1  # its best here (10 measured slower); --procrastinate-concurrency


async def noop() -> None:
    """The benchmarked task (imported as ``postgres:noop`` by sitq worker processes)."""


# -- worker processes (this file run with --child) ---------------------------------------------


def child_sitq(url: str) -> None:
    """A sitq worker with default settings, until SIGTERM."""
    from sitq import TaskQueue, Worker

    Worker(TaskQueue(url)).run()


def child_procrastinate(dsn: str, concurrency: int, wait: bool) -> None:
    """A procrastinate worker; with ``wait=False`` it stops once the queue is empty."""
    app = procrastinate_app(dsn)

    async def main() -> None:
        async with app.open_async():
            await app.run_worker_async(concurrency=concurrency, wait=wait)

    asyncio.run(main())


def procrastinate_app(dsn: str):  # type: ignore[no-untyped-def]
    """A procrastinate app on ``dsn`` with the no-op task registered as ``noop``."""
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))
    app.task(name="noop")(noop)
    return app


def spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", *args])


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# -- sitq --------------------------------------------------------------------------------------


async def sitq_throughput(base_url: str, tasks: int, processes: int) -> float:
    import asyncpg

    from sitq import TaskQueue, TaskStatus

    prefix = f"bench_{uuid.uuid4().hex[:8]}_"
    url = f"{base_url}?table_prefix={prefix}"
    try:
        async with TaskQueue(url) as queue:
            for start in range(0, tasks, 5000):
                await queue.enqueue_many([("postgres:noop", ())] * min(5000, tasks - start))
            procs = [spawn("sitq", url) for _ in range(processes)]
            try:
                deadline = time.monotonic() + 60 + tasks / 500
                while (await queue.counts())[TaskStatus.SUCCEEDED] < tasks:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"sitq did not finish: {await queue.counts()}")
                    await asyncio.sleep(0.1)
            finally:
                stop(procs)
        conn = await asyncpg.connect(base_url)
        try:
            span = await conn.fetchval(
                f"SELECT max(finished_at) - min(started_at) FROM {prefix}tasks"
            )
        finally:
            await conn.close()
        return tasks / span
    finally:
        await drop_sitq(base_url, prefix)


async def sitq_latency(base_url: str, samples: int) -> list[float]:
    from sitq import TaskQueue

    prefix = f"bench_{uuid.uuid4().hex[:8]}_"
    url = f"{base_url}?table_prefix={prefix}"
    try:
        async with TaskQueue(url) as queue:
            procs = [spawn("sitq", url)]
            try:
                await queue.get_result(await queue.enqueue("postgres:noop"), timeout=60)  # warm
                latencies = []
                for _ in range(samples):
                    await asyncio.sleep(0.05)  # the worker is idle, waiting
                    task_id = await queue.enqueue("postgres:noop")
                    await queue.get_result(task_id, timeout=30)
                    record = await queue.backend.get_task(task_id)
                    assert record is not None and record.started_at is not None
                    latencies.append(record.started_at - record.created_at)
                return latencies
            finally:
                stop(procs)
    finally:
        await drop_sitq(base_url, prefix)


async def drop_sitq(base_url: str, prefix: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(base_url)
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {prefix}tasks, {prefix}schema_version")
    finally:
        await conn.close()


# -- procrastinate -----------------------------------------------------------------------------


async def procrastinate_throughput(
    dsn: str, tasks: int, processes: int, concurrency: int = PROCRASTINATE_CONCURRENCY
) -> float:
    import asyncpg

    app = procrastinate_app(dsn)
    async with app.open_async():
        for start in range(0, tasks, 1000):
            await app.tasks["noop"].batch_defer_async(*[{}] * min(1000, tasks - start))
    procs = [spawn("procrastinate", dsn, str(concurrency), "nowait") for _ in range(processes)]
    try:
        for p in procs:
            p.wait(60 + tasks / 50)
    finally:
        stop(procs)
    conn = await asyncpg.connect(dsn)
    try:
        done = await conn.fetchval(
            "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
        )
        if done != tasks:
            raise RuntimeError(f"procrastinate finished {done} of {tasks} jobs")
        span = await conn.fetchval(
            "SELECT extract(epoch FROM max(at) FILTER (WHERE type = 'succeeded') "
            "- min(at) FILTER (WHERE type = 'started'))::float8 FROM procrastinate_events"
        )
        await conn.execute("TRUNCATE procrastinate_jobs, procrastinate_events CASCADE")
    finally:
        await conn.close()
    return tasks / span


async def procrastinate_latency(dsn: str, samples: int) -> list[float]:
    import asyncpg

    app = procrastinate_app(dsn)
    procs = [spawn("procrastinate", dsn, "1", "wait")]
    conn = await asyncpg.connect(dsn)
    try:
        async with app.open_async():
            latencies = []
            for i in range(samples + 1):
                await asyncio.sleep(0.05)
                job_id = await app.tasks["noop"].defer_async()
                deadline = time.monotonic() + 30
                while (
                    await conn.fetchval(
                        "SELECT status::text FROM procrastinate_jobs WHERE id = $1", job_id
                    )
                    != "succeeded"
                ):
                    if time.monotonic() > deadline:
                        raise RuntimeError("procrastinate did not run the job in 30 s")
                    await asyncio.sleep(0.002)
                gap = await conn.fetchval(
                    "SELECT extract(epoch FROM max(at) FILTER (WHERE type = 'started') "
                    "- max(at) FILTER (WHERE type = 'deferred'))::float8 "
                    "FROM procrastinate_events WHERE job_id = $1",
                    job_id,
                )
                if i:  # the first one warms the worker up
                    latencies.append(gap)
            return latencies
    finally:
        await conn.close()
        stop(procs)


async def procrastinate_database(base_url: str) -> str:
    """Create a throwaway database with procrastinate's schema; its DSN."""
    import asyncpg

    name = f"sitq_bench_procrastinate_{os.getpid()}"
    conn = await asyncpg.connect(base_url)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    parts = urlsplit(base_url)
    dsn = urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))
    app = procrastinate_app(dsn)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
    return dsn


async def drop_database(base_url: str, dsn: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(base_url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {urlsplit(dsn).path[1:]} WITH (FORCE)")
    finally:
        await conn.close()


# -- the run -----------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(args: argparse.Namespace) -> None:
    from importlib.metadata import version

    import asyncpg

    conn = await asyncpg.connect(args.url)
    server = await conn.fetchval("SHOW server_version")
    await conn.close()
    print(
        f"sitq-postgres {version('sitq-postgres')} vs procrastinate {version('procrastinate')}"
        f" on PostgreSQL {server}, {os.cpu_count()} CPUs; sitq {args.tasks} tasks, "
        f"procrastinate {args.procrastinate_tasks} tasks per measurement\n"
    )
    dsn = await procrastinate_database(args.url)
    try:
        print("Throughput, no-op tasks, queue filled first (tasks/s)")
        print(f"{'processes':>9} | {'sitq':>9} | {'procrastinate':>13} | {'ratio':>7}")
        for processes in args.processes:
            ours = await sitq_throughput(args.url, args.tasks, processes)
            theirs = await procrastinate_throughput(
                dsn, args.procrastinate_tasks, processes, args.procrastinate_concurrency
            )
            print(f"{processes:>9} | {ours:>9,.0f} | {theirs:>13,.0f} | {ours / theirs:>6.1f}x")
        print("\nIdle latency, enqueue -> start, one task at a time (ms)")
        ours_l = await sitq_latency(args.url, args.latency_samples)
        theirs_l = await procrastinate_latency(dsn, args.latency_samples)
        print(f"{'':>9} | {'sitq':>9} | {'procrastinate':>13} | {'ratio':>7}")
        for name, q in (("p50", 0.5), ("p90", 0.9)):
            a, b = pct(ours_l, q) * 1000, pct(theirs_l, q) * 1000
            print(f"{name:>9} | {a:>9.1f} | {b:>13.1f} | {b / a:>6.1f}x")
        print(f"{'mean':>9} | {statistics.mean(ours_l) * 1000:>9.1f} | "
              f"{statistics.mean(theirs_l) * 1000:>13.1f} |")  # fmt: skip
    finally:
        await drop_database(args.url, dsn)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--procrastinate-tasks", type=int, default=2_000)
    parser.add_argument(
        "--processes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4]
    )
    parser.add_argument("--latency-samples", type=int, default=50)
    parser.add_argument("--procrastinate-concurrency", type=int, default=PROCRASTINATE_CONCURRENCY)
    return parser.parse_args()


if __name__ == "__main__":
    # backends only, as in bench/run.py: no hook plugins of the dev environment on the hot path
    os.environ.setdefault("SITQ_PLUGINS", "sqlite,memory,postgres")
    logging.basicConfig(level=logging.WARNING)
    # procrastinate warns that its app lives in __main__: deliberate, to keep this one file
    logging.getLogger("procrastinate.blueprints").setLevel(logging.ERROR)
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, rest = sys.argv[2], sys.argv[3:]
        if kind == "sitq":
            child_sitq(rest[0])
        else:
            child_procrastinate(rest[0], int(rest[1]), rest[2] == "wait")
    else:
        asyncio.run(main(parse()))
