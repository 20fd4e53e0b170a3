"""The claim loop of a running `Worker`: claim due tasks into free slots, run each, wait.

1. claim as many due tasks as there are free slots (and ``max_tasks`` allows), in one
   backend call, skipping tasks this worker declined;
2. run each as an asyncio task (`TaskExecution`), its lease held in the worker's
   `LeaseTable` from the claim on;
3. when a resource limit is exceeded, claim nothing until it is not;
4. when nothing is due, sleep until an enqueue in this process wakes the worker, a retry it
   scheduled is due, or ``poll_interval`` passes.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import threading
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from ..backend import Outcome, TaskRecord
from ..errors import WorkerStateError
from ..metrics import Counters
from ..task import TaskStatus
from . import upkeep
from .execution import TaskExecution, current_worker
from .leases import Lease
from .session import Session

if TYPE_CHECKING:
    from .worker import Worker


async def serve(worker: Worker, started: threading.Event | None = None) -> None:
    """Run the worker until it is stopped: open a session, claim and run tasks, then drain."""
    if worker.is_running:
        raise WorkerStateError(f"worker {worker.worker_id} is already running")
    worker._state = "running"
    worker._start_pending = False
    worker._done.clear()
    worker._loop = asyncio.get_running_loop()
    worker._stop_event = asyncio.Event()
    worker._stopped = worker._loop.create_future()
    if worker._stop_requested:
        worker._stop_event.set()
    worker._stop_requested = False
    worker._counters = Counters(started_at=time.monotonic())
    worker._started_attempts = 0
    try:
        async with Session(worker):
            assert worker._lifecycle is not None
            await worker._lifecycle.emit("sitq_worker_started", worker=worker)
            worker.logger.log(
                worker.log_level,
                "worker %s started: %s x%d on %r, queues %s",
                worker.worker_id,
                worker.worker_type,
                worker.max_workers,
                worker.backend,
                ", ".join(worker.queues) if worker.queues else "all",
            )
            if started is not None:
                started.set()
            background = [asyncio.create_task(upkeep.recover(worker))]
            if worker.log_performance:
                background.append(asyncio.create_task(upkeep.log_performance(worker)))
            if worker.scheduler and worker._queue.schedules:
                background.append(asyncio.create_task(upkeep.schedule(worker)))
            # set once here: the task of each execution inherits it (see `current_worker`)
            reset = current_worker.set(worker)
            try:
                await claim_loop(worker)
            finally:
                current_worker.reset(reset)
                worker._state = "stopping"
                await upkeep.drain(worker)
                for job in background:
                    job.cancel()
                await asyncio.gather(*background, return_exceptions=True)
                await worker._lifecycle.emit("sitq_worker_stopped", worker=worker)
                c = worker._counters
                worker.logger.log(
                    worker.log_level,
                    "worker %s stopped: %d tasks processed, %d failed",
                    worker.worker_id,
                    c.processed,
                    c.failed,
                )
    finally:
        worker._state = "stopped"
        worker._stop_requested = False
        worker._throttled = None
        worker._counters.stopped_at = time.monotonic()
        if started is not None:
            started.set()
        if not worker._stopped.done():
            worker._stopped.set_result(None)
        worker._done.set()


async def claim_loop(worker: Worker) -> None:
    """Claim tasks while there are free slots, and start each; return when stopped."""
    assert worker._stop_event is not None
    stop = worker._stop_event
    slot_freed = worker._wake = asyncio.Event()
    while not stop.is_set():
        budget = worker.max_tasks
        free = worker.max_workers - len(worker._running)
        if budget is not None:
            free = min(free, budget - worker._started_attempts)
        if free <= 0:
            if budget is not None and worker._started_attempts >= budget and not worker._running:
                break
            await first(stop.wait(), slot_freed.wait())
            slot_freed.clear()
            continue
        if worker.limits.active and throttle(worker):
            await first(stop.wait(), asyncio.sleep(worker.limits.interval))
            continue
        try:
            worker._claimed_at = worker.backend.clock()
            slot_freed.clear()  # set again by a task of ours that ends during the claim
            records = await worker.backend.claim(
                worker_id=worker.worker_id,
                limit=free,
                lease_seconds=worker.lease_seconds,
                queues=worker.queues,
                exclude=worker._declined,
            )
        except Exception:
            worker.logger.exception("claiming tasks failed; retrying in %s s", worker.poll_interval)
            await first(stop.wait(), asyncio.sleep(worker.poll_interval))
            continue
        if not records:
            # the due tasks may wait for a limited key's slot that a task of ours holds: its
            # end (stored by then) is worth a claim, as is the backend's news of new work
            ends = [slot_freed.wait()] if worker._running else []
            await first(stop.wait(), worker.backend.wait_for_work(idle_wait(worker)), *ends)
            continue
        start(worker, records)


def start(worker: Worker, records: list[TaskRecord]) -> None:
    """Run each claimed record in a task of its own, its lease held (and extended by the
    heartbeat) from now on."""
    loop = asyncio.get_running_loop()
    leases = worker._leases.hold_all(
        [(record.id, record.lease_token) for record in records if record.lease_token is not None]
    )
    worker._started_attempts += len(records)
    running = worker._running
    held = iter(leases)
    for record in records:
        lease = next(held) if record.lease_token is not None else None
        running[record.id] = loop.create_task(run_claimed(worker, record, lease))


def throttle(worker: Worker) -> bool:
    """True while a resource limit says not to claim (logged when it starts and ends)."""
    reason = worker.limits.over_limit()
    if reason != worker._throttled:
        if reason is not None:
            worker.logger.warning("worker %s takes no new task: %s", worker.worker_id, reason)
        else:
            worker.logger.log(worker.log_level, "worker %s takes tasks again", worker.worker_id)
        worker._throttled = reason
    return reason is not None


def idle_wait(worker: Worker) -> float:
    """Seconds to wait for work after a claim found none: ``poll_interval``, or less if a
    retry we scheduled is due sooner."""
    due = worker._retries_due
    while due and due[0] <= worker._claimed_at:  # was due at that claim: taken or gone
        heapq.heappop(due)
    if not due:
        return worker.poll_interval
    return min(worker.poll_interval, max(0.0, due[0] - worker.backend.clock()) + 0.001)


async def run_claimed(worker: Worker, record: TaskRecord, lease: Lease | None) -> None:
    """Run one claimed task to its outcome (the execution releases its lease); whatever
    happens, free its slot once the outcome is stored (a success may still be on its way
    when this returns: `after_stored` frees it then)."""
    execution = TaskExecution(
        worker, record, lease, then=functools.partial(after_stored, worker, record)
    )
    try:
        outcome = await execution.run()
        status = outcome.status
        if (status is TaskStatus.FAILED or status is TaskStatus.DEAD) and (
            not worker.continue_on_error
        ):
            worker.logger.log(
                worker.log_level, "worker %s stops: continue_on_error=False", worker.worker_id
            )
            worker._request_stop()
    except asyncio.CancelledError:
        pass
    except Exception as exc:  # a bug of ours must not kill the loop or strand the task
        await hand_back(worker, record, exc)
    finally:
        if not execution.handed_over:
            free_slot(worker, record.id)


def after_stored(worker: Worker, record: TaskRecord, error: BaseException | None) -> None:
    """A success `run_claimed` handed over was written (or failed for good, ``error``):
    free its slot (after handing the task back, if its write failed)."""
    if error is None or isinstance(error, asyncio.CancelledError):
        free_slot(worker, record.id)
        return

    async def give_back() -> None:
        try:
            await hand_back(worker, record, error)
        finally:
            free_slot(worker, record.id)

    worker._running[record.id] = asyncio.ensure_future(give_back())


async def hand_back(worker: Worker, record: TaskRecord, error: BaseException) -> None:
    """Log a failure of the worker itself while it handled ``record``, and hand the task back
    to the queue (fenced by its lease: a no-op if its outcome was stored)."""
    worker.logger.error(
        "sitq worker error while handling task %s",
        record.id,
        exc_info=(type(error), error, error.__traceback__),
    )
    if record.lease_token is not None:
        try:
            await worker.backend.finish([Outcome.release(record.id, record.lease_token)])
        except Exception:
            worker.logger.exception("handing task %s back failed", record.id)


def free_slot(worker: Worker, task_id: str) -> None:
    """The task ``task_id`` no longer takes a slot: wake the claim loop."""
    worker._running.pop(task_id, None)
    if worker._wake is not None:
        worker._wake.set()


async def first(*aws: Coroutine[Any, Any, Any]) -> None:
    """Wait until the first of ``aws`` finishes; cancel the others."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


__all__ = ["serve"]
