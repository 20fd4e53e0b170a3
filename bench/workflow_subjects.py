"""Workflows (issue 15): a chord of 10,000 no-op members and a callback that receives their
10,000 results, on SQLite and on PostgreSQL, beside the same 10,001 no-ops without a
workflow.

Each subject counts the statements it sends to the store (`statements.counting`), so a join
that cost round trips growing with the group would show: the chord's count per task is
compared with the plain tasks'. The worker runs in the bench process (defaults), so its
statements are counted too.

* ``enqueue``: ``await queue.enqueue(sitq.chord(...))`` of the 10,000 signatures and the
  callback: members/s and statements;
* ``join``: the chord stored first, then a `Worker` until the callback's result is read:
  tasks/s (10,001 tasks) and statements;
* ``plain``: 10,001 no-ops stored first with ``enqueue_many``, then the same worker until all
  ran: the floor the chord's run is compared with;
* ``celery``: Celery's chord on Redis (`celery_chord_app`), its worker in another process,
  from sending the chord to reading the callback's result (a smaller chord, see
  `CELERY_CHORD_MEMBERS`; its statements are not counted).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pg_subjects as pg
from harness import Clock, Sample
from sitq_subjects import db_path
from statements import StatementCount, counting

import sitq
from sitq import Blueprint, TaskQueue, Worker

#: Members of the chord (the issue's big fan-out).
CHORD_MEMBERS = 10_000
#: Members of Celery's chord: fewer, as it runs at about 1 % of sitq's rate here (a chord of
#: 10,000 would take minutes a round); compare tasks/s.
CELERY_CHORD_MEMBERS = 2_000
#: Items per ``enqueue_many`` of the plain subject.
BATCH = 1000

#: The chord's tasks, registered on each subject's fresh queue.
tasks = Blueprint()


@tasks.task(name="bench.workflow.member")
async def member() -> None:
    """A chord member: does nothing."""


@tasks.task(name="bench.workflow.join")
async def join(results: list[None]) -> int:
    """The chord's callback: how many results it received."""
    return len(results)


def chord(n: int) -> sitq.Chord:
    """``n`` no-op members and the `join` callback."""
    return sitq.chord((member.s() for _ in range(n)), join.s())


@asynccontextmanager
async def open_queue(kind: str, folder: str) -> AsyncIterator[TaskQueue]:
    """A fresh queue of ``kind`` (``sqlite`` or ``postgres``) with the chord's tasks;
    PostgreSQL tables are dropped afterwards."""
    if kind == "sqlite":
        async with TaskQueue(f"sqlite:///{db_path(folder)}") as queue:
            queue.register(tasks)
            yield queue
        return
    url, prefix = pg.fresh_url()
    try:
        async with TaskQueue(url) as queue:
            queue.register(tasks)
            yield queue
    finally:
        await pg.drop_tables(prefix)


class Span:
    """Time and statements from its start: ``Span(count)`` … ``span.sample(ops)``."""

    def __init__(self, count: StatementCount) -> None:
        self.count = count
        self.before = count.n
        self.clock = Clock()

    def sample(self, ops: int) -> Sample:
        """``ops`` operations done since the span started, with the statements sent."""
        sample = self.clock.sample(ops)
        sample.statements = self.count.n - self.before
        return sample


def chord_enqueue(folder: str, kind: str, n: int = CHORD_MEMBERS) -> Sample:
    """Enqueue the chord of ``n`` members: its time and statements."""

    async def main(count: StatementCount) -> Sample:
        async with open_queue(kind, folder) as queue:
            await queue.enqueue(member.s())  # tables made, connections open
            span = Span(count)
            await queue.enqueue(chord(n))
            return span.sample(n + 1)

    with counting() as count:
        return asyncio.run(main(count))


def chord_join(folder: str, kind: str, n: int = CHORD_MEMBERS) -> Sample:
    """The chord stored first; one worker runs its ``n + 1`` tasks until the callback's
    result is read: the time and statements of the run."""

    async def main(count: StatementCount) -> Sample:
        async with open_queue(kind, folder) as queue:
            workflow = await queue.enqueue(chord(n))
            span = Span(count)
            await Worker(queue, max_tasks=n + 1).start()
            result = await workflow.result(timeout=60)
            taken = span.sample(n + 1)
            if result != n:
                raise AssertionError(f"the callback received {result} results, not {n}")
            return taken

    with counting() as count:
        return asyncio.run(main(count))


def plain_run(folder: str, kind: str, n: int = CHORD_MEMBERS) -> Sample:
    """``n + 1`` no-ops stored first (no workflow); the same worker runs them all."""

    async def main(count: StatementCount) -> Sample:
        async with open_queue(kind, folder) as queue:
            await _fill(queue, n + 1)
            span = Span(count)
            await Worker(queue, max_tasks=n + 1).start()
            taken = span.sample(n + 1)
            counts = await queue.counts()
            if counts[sitq.TaskStatus.SUCCEEDED] != n + 1:
                raise AssertionError(f"expected {n + 1} succeeded tasks, found {dict(counts)}")
            return taken

    with counting() as count:
        return asyncio.run(main(count))


async def _fill(queue: TaskQueue, n: int) -> None:
    for start in range(0, n, BATCH):
        batch = min(BATCH, n - start)
        await queue.enqueue_many([sitq.Task(member.name) for _ in range(batch)])


def celery_chord(folder: str, n: int = CELERY_CHORD_MEMBERS) -> Sample:
    """Celery's chord of ``n`` no-op members and a callback, on Redis, with a worker process
    (prefork, one child) started first: the time from sending the chord to reading the
    callback's result (Celery's worker runs as members arrive, so enqueue and run overlap)."""
    import baseline_redis
    from celery_app import QUEUE
    from celery_chord_app import chord_member, run_chord
    from procs import start_process

    worker = ["celery_chord_app" if c == "celery_app" else c for c in baseline_redis.CELERY_WORKER]
    command = [sys.executable, *worker, "--queues", QUEUE]
    try:
        with start_process(command):
            chord_member.delay().get(timeout=60)  # the worker is up
            began = time.perf_counter()
            received = run_chord(n, timeout=600)
            # wall clock only: the work is in Celery's worker process, whose CPU is not read
            sample = Sample(n + 1, time.perf_counter() - began)
        if received != n:
            raise AssertionError(f"Celery's callback received {received} results, not {n}")
        return sample
    finally:
        baseline_redis.delete_keys()
