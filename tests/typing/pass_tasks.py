"""Declared tasks as a type checker sees them: every line here must type-check.

Checked by ``tests/test_task_typing.py`` with ``mypy --strict``; never run.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from typing_extensions import assert_type

import sitq
from sitq.blueprints import Blueprint, SyncBlueprint, TaskRegistry
from sitq.handles import AsyncTaskHandle, TaskHandle
from sitq.schedules import ScheduleBook
from sitq.task import TaskStatus
from sitq.tasks import SyncTask

sync_queue = sitq.SyncTaskQueue("memory://")
async_queue = sitq.TaskQueue("memory://")


@sync_queue.task(queue="emails", priority=0, max_retries=5, timeout=30)
def send_email(to: str, subject: str) -> str:
    return f"{to}: {subject}"


@sync_queue.task
async def fetch(url: str, *, retries: int = 0) -> bytes:
    return url.encode()


@async_queue.task(name="reports.build")
def build_report(day: int) -> list[str]:
    return [str(day)]


@async_queue.task
async def notify(user: str, priority: str = "low") -> str:
    return priority


library = Blueprint()
sync_library = SyncBlueprint()


@library.task
def ping(n: int) -> int:
    return n


@sync_library.task(priority=3)
async def pong(n: int) -> float:
    return n / 2


assert_type(send_email("a@b.c", "hi"), str)
assert_type(send_email.enqueue("a@b.c", "hi"), TaskHandle[str])
assert_type(send_email.enqueue("a@b.c", subject="hi").result(timeout=10), str)
assert_type(
    send_email.options(priority=5, eta=timedelta(minutes=1)).enqueue("a@b.c", "hi"),
    TaskHandle[str],
)
assert_type(fetch.enqueue("https://x").result(), bytes)
assert_type(send_email.enqueue("a", "b").status(), TaskStatus)
assert_type(send_email.enqueue("a", "b").cancel(), bool)
assert_type(send_email.enqueue("a", "b").id, str)
assert_type(sync_library.tasks, tuple[SyncTask[Any, Any], ...])
assert_type(pong.enqueue(2).result(), float)
assert_type(sync_queue.tasks, TaskRegistry)
assert_type(sync_queue.tasks.resolve("x"), Callable[..., Any] | None)


@sync_queue.periodic(cron="*/5 * * * *", tz="Europe/Berlin", catch_up="all", queue="sweeps")
def sweep(fired_at: datetime) -> int:
    return fired_at.minute


@async_queue.periodic(every=timedelta(seconds=10))
async def heartbeat() -> str:
    return "alive"


assert_type(sweep.enqueue(fired_at=datetime.now()).result(), int)
assert_type(sync_queue.schedule(sweep.options(priority=1), every=60).name, str)
assert_type(async_queue.schedules, ScheduleBook)


async def use_async_queue() -> None:
    handle = await build_report.enqueue(3)
    assert_type(handle, AsyncTaskHandle[list[str]])
    assert_type(await handle.result(timeout=10), list[str])
    assert_type(await handle.status(), TaskStatus)
    assert_type(await handle.cancel(), bool)
    assert_type(await (await notify.enqueue("ann", priority="high")).result(), str)
    assert_type(await notify.options(priority=5).enqueue("ann"), AsyncTaskHandle[str])
    assert_type(await ping.enqueue(1), AsyncTaskHandle[int])
    assert_type(await heartbeat.enqueue(), AsyncTaskHandle[str])
    async_queue.register(library)
    sync_queue.register(sync_library)
