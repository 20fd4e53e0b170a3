"""A running worker's background duties: recovery passes, result expiry, pruning of old
finished tasks, throughput logs, and the drain when it stops."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from ..backend import Capability, Outcome
from ..retention import prune_in_batches, retention_cutoffs
from ..scheduler import Scheduler

if TYPE_CHECKING:
    from .worker import Worker


async def recover(worker: Worker) -> None:
    """Every ``recovery_interval``: put back tasks whose worker stopped answering, drop
    results older than ``result_ttl`` and delete tasks older than their retention."""
    while True:
        try:
            recovered = await worker.backend.recover_expired(max_attempts=worker.max_attempts)
            if recovered:
                worker.logger.warning(
                    "recovered %d tasks whose worker stopped answering", len(recovered)
                )
            await expire_results(worker)
        except Exception:
            worker.logger.exception("recovering expired leases failed")
        try:
            await prune(worker)
        except Exception:
            worker.logger.exception("deleting tasks past their retention failed")
        await asyncio.sleep(worker.recovery_interval)


async def schedule(worker: Worker) -> None:
    """Fire the queue's periodic schedules (`sitq.scheduler`) until cancelled."""
    await Scheduler(worker._queue, lifecycle=worker._lifecycle, log=worker.logger).run()


async def expire_results(worker: Worker) -> None:
    """Drop payloads and results older than ``result_ttl`` (at most once a minute, or once
    per ``result_ttl`` if shorter)."""
    ttl = worker.result_ttl
    if ttl is None:
        return
    now = time.monotonic()
    if worker._expired_at is not None and now < worker._expired_at + min(ttl, 60.0):
        return
    worker._expired_at = now
    count = await worker.backend.expire_results(worker.backend.clock() - ttl)
    if count:
        worker.logger.log(worker.log_level, "expired the results of %d tasks (result_ttl)", count)


#: Seconds one pruning pass may take; a backlog is worked off over the following recovery
#: passes, so that recovering the tasks of dead workers never waits long behind pruning.
PRUNE_PASS_SECONDS = 1.0


async def prune(worker: Worker) -> int:
    """Delete finished tasks older than ``retention`` (succeeded, cancelled) or
    ``failed_retention`` (failed, dead), in batches (`sitq.retention.prune_in_batches`) for
    at most `PRUNE_PASS_SECONDS`, once per ``prune_interval`` (or at the next recovery pass
    while a backlog is left); the backend then gives the space back. Returns how many went.

    Every worker prunes: the backends make concurrent pruning safe, and a worker finding
    nothing left costs one indexed query per pass. A backend without `Capability.PRUNE`
    keeps everything (logged once).
    """
    cutoffs = retention_cutoffs(worker.backend.clock(), worker.retention, worker.failed_retention)
    if not cutoffs:
        return 0
    now = time.monotonic()
    if worker._pruned_at is not None and now < worker._pruned_at + worker.prune_interval:
        return 0
    first = worker._pruned_at is None
    worker._pruned_at = now
    if not worker.backend.supports(Capability.PRUNE):
        if first:
            worker.logger.info(
                "%s cannot prune old tasks: they are kept until purged (retention is ignored)",
                type(worker.backend).__name__,
            )
        return 0
    done = await prune_in_batches(worker.backend, cutoffs, max_seconds=PRUNE_PASS_SECONDS)
    if not done.complete:
        worker._pruned_at = now - worker.prune_interval  # go on at the next recovery pass
    if done.deleted:
        worker.logger.log(
            worker.log_level, "deleted %d finished tasks past their retention", done.deleted
        )
    return done.deleted


async def log_performance(worker: Worker) -> None:
    """Log throughput every ``performance_interval`` seconds."""
    while True:
        await asyncio.sleep(worker.performance_interval)
        m = worker.get_metrics()
        worker.logger.log(
            worker.log_level,
            "worker %s: %d tasks, %.1f tasks/s, avg %.4f s, success rate %.1f%%",
            worker.worker_id,
            m.tasks_processed,
            m.tasks_per_second,
            m.avg_task_duration,
            100 * m.success_rate,
            extra={"worker_id": worker.worker_id, "metrics": m},
        )


async def drain(worker: Worker) -> None:
    """Wait up to ``graceful_shutdown`` for running tasks, then cancel and release them."""
    if not worker._running:
        return
    pending = set(worker._running.values())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + worker.graceful_shutdown
    while pending:
        remaining = deadline - loop.time()
        if remaining <= 0 or worker.graceful_shutdown == 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(remaining, 0.1))
        pending = {t for t in pending if not t.done()}
    if pending:
        leases = worker._leases.tokens()
        for job in pending:
            job.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await release_all(worker, leases)
    # outcomes of cancelled tasks may still be on their way to the backend
    await worker._writer.wait_flushed()


async def release_all(worker: Worker, leases: dict[str, str]) -> None:
    """Hand tasks back to the queue (pending again, attempt not counted), retrying a failed
    write a few times; what is left lapses and recovery hands it back."""
    if not leases:
        return
    outcomes = [Outcome.release(task_id, token) for task_id, token in leases.items()]
    for attempt in range(5):
        try:
            applied = await worker.backend.finish(outcomes)
            break
        except Exception:
            worker.logger.exception("handing %d tasks back failed", len(outcomes))
            if attempt == 4:
                return
            await asyncio.sleep(0.1 * 2**attempt)
    worker.logger.warning(
        "worker %s handed %d unfinished tasks back to the queue",
        worker.worker_id,
        sum(applied),
    )
