"""The app the flow-control acceptance tests run in real ``sitq worker`` processes:
``sitq worker flow_control_app:queue`` with ``FLOW_APP_URL`` set to the shared store.

The tasks are declared on a blueprint, so the test process registers the same tasks on its
own queue (`open_queue`) to enqueue them; ``queue`` is only built when a worker asks for it.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from datetime import timedelta
from typing import Any

from sitq import Blueprint, TaskQueue

#: The environment variable naming the store the worker processes share.
URL_VARIABLE = "FLOW_APP_URL"

#: The tasks of the acceptance tests.
tasks = Blueprint()


@tasks.task(name="flow.work")
async def work(tenant: int, n: int, seconds: float) -> tuple[float, float]:
    """Holds its slot for ``seconds`` (a call to a rate-limited API, say); returns when it
    began and ended (``time.time()``), inside the span its claim and its finish held the
    task's keys."""
    began = time.time()
    await asyncio.sleep(seconds)
    return began, time.time()


@tasks.task(name="flow.noop")
async def noop(n: int) -> int:
    """Returns ``n`` at once."""
    return n


def open_queue(url: str) -> TaskQueue:
    """A queue on ``url`` with the tasks of this app registered."""
    queue = TaskQueue(url)
    queue.register(tasks)
    return queue


@functools.cache
def _worker_queue() -> TaskQueue:
    return open_queue(os.environ[URL_VARIABLE])


def __getattr__(name: str) -> TaskQueue:
    """``queue``: the worker's queue, on the store named by ``FLOW_APP_URL``."""
    if name == "queue":
        return _worker_queue()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def enqueue_unique(url: str, key: str, period: float, calls: int, start: Any, results: Any) -> None:
    """Run in a spawned process: wait at ``start`` (a barrier) with the other processes, then
    enqueue `noop` ``calls`` times with ``dedupe_key=key`` unique for ``period`` seconds, and
    put ``[(task_id, called_at, returned_at), ...]`` (or the error's text) on ``results``."""

    async def enqueue() -> list[tuple[str, float, float]]:
        returned = []
        async with open_queue(url):
            unique = noop.options(dedupe_key=key, unique_for=timedelta(seconds=period))
            start.wait(60)
            for n in range(calls):
                called_at = time.time()
                handle = await unique.enqueue(n)
                returned.append((handle.id, called_at, time.time()))
        return returned

    try:
        results.put(asyncio.run(enqueue()))
    except BaseException as exc:  # reported to the test
        results.put(repr(exc))
