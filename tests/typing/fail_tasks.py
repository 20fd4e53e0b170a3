"""Misuses of declared tasks that a type checker must reject, one per marked line.

``tests/test_task_typing.py`` runs ``mypy --strict`` on this file and expects an error with
the code after ``# E:`` on each marked line, and on no other line.
"""

from __future__ import annotations

import sitq
from sitq.blueprints import Blueprint, SyncBlueprint

sync_queue = sitq.SyncTaskQueue("memory://")
async_queue = sitq.TaskQueue("memory://")


@sync_queue.task(queue="emails")
def send_email(to: str, subject: str) -> str:
    return f"{to}: {subject}"


@async_queue.task
async def notify(user: str) -> str:
    return user


send_email.enqueue(1, 2, 3)  # E: call-arg
send_email.enqueue("a@b.c", 2)  # E: arg-type
send_email.enqueue("a@b.c", subject="hi", cc="x")  # E: call-arg
send_email.options(prio=5)  # E: call-arg
send_email.options(priority="high")  # E: arg-type
number: int = send_email.enqueue("a", "b").result()  # E: assignment
sync_queue.task(retry_delay=2.0)  # E: call-overload
sync_queue.register(Blueprint())  # E: arg-type
async_queue.register(SyncBlueprint())  # E: arg-type
sync_queue.periodic(cron="* * * * *", catch_up="sometimes")  # E: arg-type
sync_queue.periodic(cron="* * * * *", retry_delay=2.0)  # E: call-arg


async def use_async_queue() -> None:
    handle = await notify.enqueue("ann")
    _count: int = await handle.result()  # E: assignment
    await notify.enqueue(user=3)  # E: call-overload
