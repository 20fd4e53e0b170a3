"""``sitq demo``: a few thousand real tasks through a real worker, with progress and a summary.

The tasks are declared here, on a `Blueprint` that `run_demo` registers on the demo's queue,
so the worker (in this process) finds them: most compute a hash chain, some fail once and
succeed on retry, a few fail on every attempt; and one periodic task fires every second,
from the scheduler the worker runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from datetime import datetime, timedelta
from typing import Any

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from ..blueprints import Blueprint
from ..errors import SitqError
from ..queue import TaskQueue
from ..tasks import AsyncTask
from ..worker import Worker
from .output import console, print_json

DEMO_QUEUE = "sitq-demo"
#: The queue of the demo's periodic task.
PERIODIC_QUEUE = "sitq-demo-periodic"
_FLAKY_EVERY = 20  # every 20th task fails once, then succeeds on its retry
_BROKEN_EVERY = 100  # every 100th task fails on every attempt
_MAX_RETRIES = 2
_ENQUEUE_CHUNK = 500

_failed_once: set[int] = set()
#: The fire times `heartbeat` ran for, in this process.
_heartbeats: list[str] = []
#: The periodic task's schedule.
HEARTBEAT = "sitq-demo-heartbeat"

#: The demo's tasks: every call goes to the queue "sitq-demo" and may be retried twice.
demo = Blueprint()


@demo.task(queue=DEMO_QUEUE, max_retries=_MAX_RETRIES)
async def checksum(n: int, rounds: int = 200) -> str:
    """A chain of SHA-256 hashes seeded by ``n``: a small, real piece of work."""
    digest = n.to_bytes(8, "little")
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()[:16]


@demo.task(queue=DEMO_QUEUE, max_retries=_MAX_RETRIES)
async def flaky(n: int) -> str:
    """Fails the first time it runs for ``n`` (as a timed-out call would), then succeeds."""
    if n not in _failed_once:
        _failed_once.add(n)
        raise ConnectionError(f"upstream call {n} timed out (the demo fails this one once)")
    return await checksum(n)  # a declared task called directly runs inline


@demo.task(queue=DEMO_QUEUE, max_retries=_MAX_RETRIES)
async def broken(n: int) -> str:
    """Fails on every attempt, as a task given bad input does."""
    raise ValueError(f"record {n} is malformed (the demo fails this one every time)")


@demo.periodic(every=timedelta(seconds=1), name=HEARTBEAT, queue=PERIODIC_QUEUE)
async def heartbeat(fired_at: datetime) -> str:
    """A periodic task: the worker's scheduler stores one call per second, exactly once
    however many workers run (see ``sitq schedules``)."""
    _heartbeats.append(fired_at.isoformat())
    return fired_at.isoformat()


def demo_task(n: int) -> AsyncTask[[int], Any]:
    """The task of demo call ``n``: mostly `checksum`, some `flaky`, a few `broken`."""
    if n % _BROKEN_EVERY == _BROKEN_EVERY - 1:
        return broken
    if n % _FLAKY_EVERY == _FLAKY_EVERY - 1:
        return flaky
    return checksum


async def _first_heartbeat(job: asyncio.Task[Any], wait: float = 10.0) -> None:
    """Give the periodic task the time to fire once, if a short demo ended first."""
    deadline = time.monotonic() + wait
    # polled, not awaited on an event: the task runs wherever the worker's executor puts it
    while not _heartbeats and not job.done() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console(stderr=True),
    )


async def run_demo(url: str, count: int, concurrency: int, show: bool) -> dict[str, Any]:
    """Enqueue ``count`` tasks into ``url``, process them with one worker, return the figures."""
    async with TaskQueue(url) as queue:
        queue.register(demo)
        with _progress() as progress:
            bar = progress.add_task("enqueue", total=count, detail="", visible=show)
            began = time.perf_counter()
            for start in range(0, count, _ENQUEUE_CHUNK):
                chunk = range(start, min(count, start + _ENQUEUE_CHUNK))
                # concurrent enqueues: the queue writes the waiting calls in one batch
                await asyncio.gather(*(demo_task(n).enqueue(n) for n in chunk))
                progress.update(bar, advance=len(chunk))
            enqueue_seconds = time.perf_counter() - began
        worker = Worker(
            queue,
            queues=[DEMO_QUEUE, PERIODIC_QUEUE],
            max_workers=concurrency,
            retry_delay=0.05,
            poll_interval=0.05,
            log_errors=False,
        )
        with _progress() as progress:
            bar = progress.add_task("process", total=count, detail="", visible=show)
            began = time.perf_counter()
            job = asyncio.create_task(worker.start())
            try:
                while True:
                    s = worker.get_status()
                    failed = s.tasks_failed - s.tasks_retried
                    done = s.tasks_succeeded - len(_heartbeats) + failed
                    progress.update(
                        bar,
                        completed=done,
                        detail=f"[green]✓ {s.tasks_succeeded}[/] [red]✗ {failed}[/] "
                        f"[yellow]↻ {s.tasks_retried}[/]",
                    )
                    if done >= count:
                        break
                    if job.done():
                        job.result()  # raises why the worker stopped
                        raise SitqError("the demo worker stopped before finishing its tasks")
                    await asyncio.sleep(0.1)
                process_seconds = time.perf_counter() - began
                await _first_heartbeat(job)
            finally:
                await worker.stop()
                await job
        status = worker.get_status()
    return {
        "backend": url,
        "queue": DEMO_QUEUE,
        "tasks": count,
        "succeeded": status.tasks_succeeded - len(_heartbeats),
        "periodic_fires": len(_heartbeats),
        "failed": status.tasks_failed - status.tasks_retried,
        "retried": status.tasks_retried,
        "attempts": status.tasks_processed,
        "enqueue_seconds": round(enqueue_seconds, 3),
        "process_seconds": round(process_seconds, 3),
        "enqueued_per_second": round(count / enqueue_seconds, 1) if enqueue_seconds else None,
        "tasks_per_second": round(count / process_seconds, 1) if process_seconds else None,
    }


@click.command("demo")
@click.option(
    "--db",
    default="sitq.db",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="SQLite file to put the demo tasks in (created if missing).",
)
@click.option("--tasks", "-n", "count", type=click.IntRange(min=1), default=3000, show_default=True)
@click.option("--concurrency", "-c", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def demo_command(db: str, count: int, concurrency: int, as_json: bool) -> None:
    """Run a few thousand real tasks through a worker, with a progress bar and a summary.

    The tasks go to the queue "sitq-demo" of a SQLite file (sitq.db here by default), next to
    any tasks of yours, which the demo worker leaves alone. Some tasks fail once and are
    retried; a few fail for good, to show what `sitq failed` and `sitq retry` do.
    """
    url = "sqlite:///" + os.path.abspath(db)
    try:
        summary = asyncio.run(run_demo(url, count, concurrency, show=not as_json))
    except SitqError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        console(stderr=True).print("[yellow]demo interrupted[/]")
        raise SystemExit(130) from None
    if as_json:
        print_json(summary)
        return
    out = console()
    table = Table(title="sitq demo", title_justify="left")
    table.add_column("tasks", justify="right")
    table.add_column("[green]done[/]", justify="right")
    table.add_column("[red]failed[/]", justify="right")
    table.add_column("[yellow]retried[/]", justify="right")
    table.add_column("enqueued/s", justify="right")
    table.add_column("tasks/s", justify="right")
    table.add_row(
        str(summary["tasks"]),
        str(summary["succeeded"]),
        str(summary["failed"]),
        str(summary["retried"]),
        f"{summary['enqueued_per_second']:,.0f}",
        f"{summary['tasks_per_second']:,.0f}",
    )
    out.print(table)
    out.print(
        f"The periodic task {HEARTBEAT!r} fired {summary['periodic_fires']} time(s), once a "
        "second, from the worker's scheduler."
    )
    where = "" if db == "sitq.db" else f" --backend {url}"
    out.print(f"The tasks are in {db}. Look around:")
    for command in ("status", "failed", "retry --all-failed", "schedules"):
        out.print(f"  sitq {command}{where}")
