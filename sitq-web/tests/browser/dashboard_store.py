"""The store the browser tests look at: a real SQLite file filled with real tasks through sitq,
and `Store`, the tests' own handle on it from outside the dashboard."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from browser_support import PATIENCE, wait_until

from sitq import Task, TaskQueue
from sitq.backend import Capability
from sitq.flow_control import LimitRule
from sitq.records import TaskRecord
from sitq.task import TaskStatus, new_task_id

T = TypeVar("T")

#: The module the worker process serves, written as ``dashboard_tasks.py`` into the folder it
#: runs in; its store's URL comes from ``DASHBOARD_TEST_URL``.
TASKS_MODULE = """
import asyncio
import os
from datetime import timedelta

from sitq import Task, TaskQueue

queue = TaskQueue(os.environ["DASHBOARD_TEST_URL"], serializer="json")


@queue.task
def echo(*parts: str) -> str:
    return " | ".join(parts)


@queue.task(max_retries=0)
def explode(reason: str) -> None:
    raise RuntimeError(f"exploded on purpose: {reason}")


@queue.task
async def linger(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "lingered"


@queue.periodic(every=timedelta(hours=1), name="hourly-report")
def hourly_report() -> str:
    return "reported"
"""
APP = "dashboard_tasks:queue"
ECHO = "dashboard_tasks:echo"
EXPLODE = "dashboard_tasks:explode"
LINGER = "dashboard_tasks:linger"

#: Queues the worker process serves; "reports" is left unserved so its tasks stay pending.
SERVED_QUEUES = ("default", "mail")
UNSERVED_QUEUE = "reports"
#: A queue paused from the start (where the backend has flow control).
PAUSED_QUEUE = "newsletters"
#: Task arguments an attacker could have chosen: each must show as text, never as markup.
HOSTILE_ARGUMENTS = (
    "<script>alert('xss-script')</script>",
    '"><img src=x onerror="alert(\'xss-img\')">',
    'it\'s "quoted" & <b>bold</b>',
)
#: Seconds a lingering task runs: far longer than any test waits for it.
LINGER_SECONDS = 3600.0


class Store:
    """The seeded store, seen from outside the dashboard: a `TaskQueue` on an event loop in a
    thread of its own (Playwright's sync API keeps a loop running in the test's thread, where
    no other may run)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="store", daemon=True)
        self._thread.start()
        # JSON: the dashboard shows the arguments of no serializer that can carry code.
        self.queue = TaskQueue(url, serializer="json")
        self.run(self.queue.connect())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the store's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(PATIENCE)

    def enqueue(self, function: str, *args: Any, queue: str = "default") -> str:
        """Enqueue a call of the task named ``function``; its id."""
        return self.run(self.queue.enqueue(function, *args, queue=queue))

    def status(self, task_id: str) -> TaskStatus:
        """The status stored for ``task_id`` now."""
        record = self.run(self.queue.backend.get_task(task_id))
        assert record is not None, f"task {task_id} is not in the store"
        return record.status

    def pending(self, queue: str) -> int:
        """How many tasks of ``queue`` are pending now."""
        counts = self.run(self.queue.backend.counts(queue))
        return counts.get(TaskStatus.PENDING, 0)

    def schedule_paused(self, name: str) -> bool:
        """True if the schedule ``name`` is stored as paused."""
        states = self.run(self.queue.backend.schedule_states())
        (state,) = [s for s in states if s.name == name]
        return state.paused

    def wait_for_status(self, task_id: str, *wanted: TaskStatus) -> None:
        """Wait until ``task_id`` is in one of the ``wanted`` statuses."""
        wait_until(lambda: self.status(task_id) in wanted, f"task {task_id} to be {wanted}")

    def supports(self, capability: Capability) -> bool:
        """True if the store's backend has ``capability``."""
        return self.queue.backend.supports(capability)

    def close(self) -> None:
        """Close the queue and stop the loop's thread."""
        self.run(self.queue.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(PATIENCE)
        self._loop.close()


@dataclass
class Seeded:
    """The ids of the seeded tasks the tests look for, by what they are."""

    succeeded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    dead: str = ""
    pending: list[str] = field(default_factory=list)
    running: str = ""
    #: limits stored and `PAUSED_QUEUE` paused (where the backend has flow control)
    limited: bool = False
    #: a workflow (where the backend has them): extract (run) → transform (pending) → load
    #: (waiting), the last two in the unserved queue
    workflow: str = ""
    workflow_members: list[str] = field(default_factory=list)


def write_app(folder: Path) -> None:
    """Write the worker's module, ``dashboard_tasks.py``, into ``folder``."""
    (folder / "dashboard_tasks.py").write_text(TASKS_MODULE)


def seed(store: Store) -> Seeded:
    """Fill ``store`` while a worker process serves `SERVED_QUEUES`: succeeded tasks (their
    arguments hostile), failed ones with tracebacks, a dead one and pending ones in the
    unserved queue, one running; limits, a paused queue and a workflow where the backend
    has them."""
    seeded = Seeded()
    for text in HOSTILE_ARGUMENTS:
        seeded.succeeded.append(store.enqueue(ECHO, text, "plain words"))
        seeded.pending.append(store.enqueue(ECHO, text, queue=UNSERVED_QUEUE))
    seeded.succeeded.append(store.enqueue(ECHO, "welcome", "mail", queue="mail"))
    seeded.failed = [store.enqueue(EXPLODE, f"<b>reason {n}</b>") for n in range(2)]
    seeded.running = store.enqueue(LINGER, LINGER_SECONDS)
    seeded.dead = store.enqueue(EXPLODE, "its worker kept dying", queue=UNSERVED_QUEUE)
    store.run(_bury(store, seeded.dead))
    if store.supports(Capability.FLOW_CONTROL):
        rules = [LimitRule("tenant:*", concurrency=2), LimitRule("stripe", rate=5.0)]
        store.run(store.queue.backend.set_limits(rules))
        store.run(store.queue.backend.pause_queue(PAUSED_QUEUE, True))
        store.enqueue(ECHO, "the weekly newsletter", queue=PAUSED_QUEUE)
        seeded.limited = True
    if store.supports(Capability.WORKFLOWS):
        seeded.workflow = f"nightly-report-{new_task_id()[-8:]}"
        seeded.workflow_members = store.run(_enqueue_workflow(store, seeded.workflow))
        extract, transform, _ = seeded.workflow_members
        store.wait_for_status(extract, TaskStatus.SUCCEEDED)
        store.wait_for_status(transform, TaskStatus.PENDING)
    for task_id in seeded.succeeded:
        store.wait_for_status(task_id, TaskStatus.SUCCEEDED)
    for task_id in seeded.failed:
        store.wait_for_status(task_id, TaskStatus.FAILED)
    store.wait_for_status(seeded.running, TaskStatus.RUNNING)
    return seeded


async def _enqueue_workflow(store: Store, workflow_id: str) -> list[str]:
    """Store the three steps of ``workflow_id``, each the child of the one before; their ids.

    Built as records: the queue has no workflow API to build them with yet."""
    queue = store.queue
    now = queue.backend.clock()
    steps = [("extract", "default"), ("transform", UNSERVED_QUEUE), ("load", UNSERVED_QUEUE)]
    records: list[TaskRecord] = []
    for step, queue_name in steps:
        record = queue._task_record(Task(ECHO, (step,), queue=queue_name), now, checked=True)
        parents = (records[-1].id,) if records else ()
        records.append(replace(record, workflow_id=workflow_id, parents=parents))
    return await queue.backend.enqueue_many(records)


async def _bury(store: Store, task_id: str) -> None:
    """Make ``task_id`` dead the way a real one gets there: claimed by a worker that is then
    lost, its lease expiring, and recovered with no attempt left."""
    backend = store.queue.backend
    claimed = await backend.claim_by_id(task_id, worker_id="lost-worker", lease_seconds=0.01)
    assert claimed is not None, f"task {task_id} could not be claimed"
    for _ in range(int(PATIENCE / 0.05)):
        await asyncio.sleep(0.05)
        await backend.recover_expired(max_attempts=1)
        record = await backend.get_task(task_id)
        if record is not None and record.status == TaskStatus.DEAD:
            return
    raise AssertionError(f"task {task_id} never went dead")
