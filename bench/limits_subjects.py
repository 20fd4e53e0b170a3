"""What flow control (issue 14) costs a drain: one worker process (defaults) runs N stored
no-op tasks, on SQLite and on PostgreSQL, three ways:

* ``none``: no rule stored, tasks hold no key (the drain of `sitq_subjects.process_child`);
* ``idle``: rules stored and every task holds keys under them, but the rules never bind
  (``tenant:*`` at a concurrency above the worker's slots, ``stripe`` at a rate and burst
  above any drain): the price of checking limits in every claim. Target: ≥ 0.85x ``none``;
* ``binding``: 20 tenant keys at concurrency 2 (40 of the worker's 100 slots usable), for
  information: what a limit costs when it holds tasks back.
"""

from __future__ import annotations

import asyncio
import functools
import os

import workloads
from harness import Sample, Scenario, Target
from pg_subjects import drop_tables, fresh_url
from procs import run_child
from sitq_subjects import check_done, db_path

from sitq import Task, TaskQueue

BATCH = 1000
TENANTS = 20
#: Never binding: above the worker's 100 async slots, and above any drain rate.
IDLE_CONCURRENCY = 1_000
IDLE_RATE = 1_000_000
#: Binding: 20 tenants x 2 running at once.
BINDING_CONCURRENCY = 2
#: Issue 14: limits stored but not binding cost at most 15 % of a drain.
TARGET_IDLE = 0.85


def keys(mode: str, i: int) -> list[str]:
    """The keys task ``i`` holds in ``mode``."""
    if mode == "none":
        return []
    tenant = f"tenant:{i % TENANTS}"
    return [tenant, "stripe"] if mode == "idle" else [tenant]


def declare(queue: TaskQueue, mode: str) -> None:
    """Declare the rules of ``mode`` (stored with the first tasks)."""
    if mode == "idle":
        queue.limit("tenant:*", concurrency=IDLE_CONCURRENCY)
        queue.limit("stripe", rate=IDLE_RATE, burst=IDLE_RATE)
    elif mode == "binding":
        queue.limit("tenant:*", concurrency=BINDING_CONCURRENCY)


async def fill(target: str, mode: str, n: int) -> None:
    """The rules of ``mode`` and ``n`` no-op tasks holding its keys, stored at ``target``."""
    async with TaskQueue(target) as queue:
        declare(queue, mode)
        for start in range(0, n, BATCH):
            await queue.enqueue_many(
                [
                    Task(workloads.async_noop, limits=keys(mode, i))
                    for i in range(start, min(start + BATCH, n))
                ]
            )


def drain_here(url: str, child_target: str, mode: str, n: int) -> Sample:
    """Fill ``url``, drain it with one worker process on ``child_target``, check every task
    succeeded."""

    async def check() -> None:
        async with TaskQueue(url) as queue:
            await check_done(queue, n)

    asyncio.run(fill(url, mode, n))
    report = run_child(["sitq-drain", child_target, str(n)], timeout=600)
    asyncio.run(check())
    return Sample(int(report["ops"]), float(report["seconds"]), cpu_seconds=report["cpu"])


def sqlite_drain(folder: str, mode: str, n: int) -> Sample:
    """A drain of ``mode`` on a SQLite file."""
    path = db_path(folder)
    return drain_here(f"sqlite:///{os.path.abspath(path)}", path, mode, n)


def pg_drain(folder: str, mode: str, n: int) -> Sample:
    """A drain of ``mode`` on PostgreSQL, in tables of its own (dropped afterwards)."""
    url, prefix = fresh_url()
    try:
        return drain_here(url, url, mode, n)
    finally:
        asyncio.run(drop_tables(prefix))


def scenarios(sqlite_n: int, pg_n: int) -> list[Scenario]:
    """The three drains on each store (``sqlite_n`` and ``pg_n`` tasks), compared with the
    drain without limits of the same round."""
    made = []
    for store, name, run, n, needs in (
        ("sqlite", "sitq-sqlite", sqlite_drain, sqlite_n, ""),
        ("pg", "sitq-postgres", pg_drain, pg_n, "postgres"),
    ):
        none = f"limits.{store}.none"
        made += [
            Scenario(none, "limits", f"{name}: no limits",
                     functools.partial(run, mode="none", n=n), needs=needs),
            Scenario(f"limits.{store}.idle", "limits", f"{name}: limits stored, never binding",
                     functools.partial(run, mode="idle", n=n), (none,),
                     (Target("ratio", TARGET_IDLE, none),), needs=needs),
            Scenario(f"limits.{store}.binding", "limits",
                     f"{name}: {TENANTS} tenants x concurrency {BINDING_CONCURRENCY}",
                     functools.partial(run, mode="binding", n=n), (none,), needs=needs),
        ]  # fmt: skip
    return made
