"""How long the dashboard's pages take on a big store: ``python bench/web_pages.py``.

Fills a fresh SQLite file (or PostgreSQL tables under a fresh prefix, ``--postgres URL``) with
``--tasks`` no-op tasks (default 1,000,000) through the public API: stored with
`TaskQueue.enqueue_many`, then most of them claimed and finished by `Backend.claim` /
`Backend.finish` (70 % succeeded, 5 % failed, 25 % left pending), as a store that has run a
while holds them. Then it asks sitq-web (`sitq_web.create_app`, in process, through
Starlette's test client, so routing, the query and the page rendering are all counted) for
each page below, three times, and prints the median and the slowest time of each.

It needs sitq-web and httpx (the dev venv has both). The dashboard reads the summary (counts,
oldest pending task, running tasks) once per interval and keeps it (`sitq_web.summary`): the
pages are timed with it kept, and its reading is timed on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable

from pg_subjects import drop_tables
from starlette.testclient import TestClient

from sitq import TaskQueue
from sitq.backend import Backend, Outcome
from sitq_web import create_app
from sitq_web.summary import read_summary

SEED_BATCH = 10_000
ROUNDS = 3


def noop() -> None:
    """The task every seeded row calls (never run: the seeding finishes it by hand)."""


async def seed(queue: TaskQueue, tasks: int, progress: Callable[[str], None]) -> str:
    """Store ``tasks`` calls of `noop`, then finish 75 % of them (70 % ok, 5 % failed);
    return the id of one of the oldest tasks (the list's deepest pages start there)."""
    oldest = ""
    for start in range(0, tasks, SEED_BATCH):
        ids = await queue.enqueue_many([noop] * min(SEED_BATCH, tasks - start))
        oldest = oldest or ids[len(ids) // 2]
        if start and start % 200_000 == 0:
            progress(f"stored {start:,}")
    backend: Backend = queue.backend
    to_finish, finished = tasks * 3 // 4, 0
    while finished < to_finish:
        claimed = await backend.claim(
            worker_id="seeder", limit=min(1000, to_finish - finished), lease_seconds=600
        )
        if not claimed:
            break
        outcomes = [
            Outcome.failed(r.id, r.lease_token or "", "ValueError: seeded")
            if (finished + i) % 15 == 0
            else Outcome.succeeded(r.id, r.lease_token or "", None)
            for i, r in enumerate(claimed)
        ]
        await backend.finish(outcomes)
        finished += len(claimed)
        if finished % 200_000 < 1000:
            progress(f"finished {finished:,}")
    return oldest


def timed(client: TestClient, path: str) -> float:
    """Seconds for one GET of ``path`` (which must answer 200)."""
    began = time.perf_counter()
    answer = client.get(path)
    took = time.perf_counter() - began
    if answer.status_code != 200:
        raise SystemExit(f"GET {path} answered {answer.status_code}: {answer.text[:300]}")
    return took


async def summary_reads(url: str) -> list[float]:
    """Seconds for each of `ROUNDS` readings of what the overview and ``/api/summary`` show
    (`sitq_web.summary.read_summary`; the dashboard keeps one for a while, so most page
    views do not pay it)."""
    took = []
    async with TaskQueue(url) as queue:
        for _ in range(ROUNDS):
            began = time.perf_counter()
            await read_summary(queue.backend)
            took.append(time.perf_counter() - began)
    return took


def main(argv: list[str] | None = None) -> int:
    """Seed, then time each page."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1_000_000, help="tasks in the store")
    parser.add_argument("--postgres", metavar="URL", help="PostgreSQL instead of SQLite")
    args = parser.parse_args(argv)

    def progress(line: str) -> None:
        print(f"[{time.perf_counter() - began:6.1f} s] {line}", file=sys.stderr, flush=True)

    began = time.perf_counter()
    folder = tempfile.mkdtemp(prefix="sitq-web-bench-")
    prefix = ""
    if args.postgres:
        prefix = f"wbench_{uuid.uuid4().hex[:8]}_"
        sep = "&" if "?" in args.postgres else "?"
        url = f"{args.postgres}{sep}table_prefix={prefix}"
    else:
        url = f"sqlite:///{folder}/tasks.db"

    async def fill() -> str:
        async with TaskQueue(url) as queue:
            return await seed(queue, args.tasks, progress)

    oldest = asyncio.run(fill())
    progress(f"seeded {args.tasks:,} tasks")

    pages = {
        "overview (/), summary cached": "/",
        "task list, newest page": "/tasks",
        "task list, deepest page": f"/tasks?before={oldest}",
        "task list, failed only": "/tasks?status=failed",
        "task list, pending only": "/tasks?status=pending",
        "task list, task name filter": "/tasks?task=noop",
        "task list, text matching nothing": "/tasks?q=no-such-text",
        "workers": "/workers",
        "/api/summary, cached": "/api/summary",
    }
    times: dict[str, list[float]] = {name: [] for name in pages}
    with TestClient(create_app(url)) as client:
        for _ in range(ROUNDS):
            for name, path in pages.items():
                times[name].append(timed(client, path))
    times["the summary read from the store"] = asyncio.run(summary_reads(url))
    if args.postgres:
        asyncio.run(drop_tables(prefix, args.postgres))
    shutil.rmtree(folder, ignore_errors=True)
    print(f"sitq-web pages, {args.tasks:,} tasks in {'PostgreSQL' if args.postgres else 'SQLite'}")
    print(f"{'page':<36} {'median':>9} {'slowest':>9}")
    for name, took in times.items():
        print(f"{name:<36} {statistics.median(took) * 1000:7.1f} ms {max(took) * 1000:7.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
