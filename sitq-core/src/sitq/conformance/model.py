"""`QueueModel`: a pure-Python model of the `Backend` contract, for stateful tests.

The model says what a correct backend must answer. It keeps no payloads and hands out no lease
tokens: the backend under test chooses them and the model records what it was given.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..backend import ALL_STATUSES, Outcome, TaskRecord
from ..rules import attempts_spent, purge_statuses
from ..task import FINAL_STATUSES, TaskStatus
from ..workflow_state import FAILED_PARENT_STATUSES, PARENT_FAILED_PREFIX, child_status

#: Stands for "some error saying the worker was lost" (its wording is the backend's choice).
LOST_WORKER = object()

#: Stands for `sitq.workflow_state.parent_failed_error` naming one of the task's parents that
#: ended without succeeding (which one, when several did in one cascade, is the backend's).
PARENT_FAILED = object()

ACTIVE = frozenset({TaskStatus.WAITING, TaskStatus.PENDING, TaskStatus.RUNNING})
REQUEUEABLE = frozenset({TaskStatus.FAILED, TaskStatus.DEAD, TaskStatus.CANCELLED})


@dataclass
class ModelTask:
    """What the model knows about one stored task."""

    id: str
    queue: str
    priority: int
    available_at: float
    order: int
    dedupe_key: str | None
    max_retries: int | None
    status: TaskStatus = TaskStatus.PENDING
    attempts: int = 0
    lease_token: str | None = None
    lease_expires_at: float | None = None
    error: object = None
    expired: bool = False  # a tombstone left by expire_results
    parents: tuple[str, ...] = ()
    allow_failure: bool = False
    workflow_id: str | None = None

    def sort_key(self) -> tuple[int, float, int]:
        """Claim order: highest priority, then earliest due, then enqueue order."""
        return (-self.priority, self.available_at, self.order)


class QueueModel:
    """The expected state of a backend, updated operation by operation."""

    def __init__(self) -> None:
        self.tasks: dict[str, ModelTask] = {}
        self._order = itertools.count()

    # -- enqueue -----------------------------------------------------------------------------

    def holder(self, dedupe_key: str) -> ModelTask | None:
        """The waiting, pending or running task holding ``dedupe_key``, if any."""
        for task in self.tasks.values():
            if task.dedupe_key == dedupe_key and task.status in ACTIVE:
                return task
        return None

    def enqueue(self, records: Sequence[TaskRecord]) -> list[str]:
        """Store ``records``; return the ids a backend must answer."""
        ids = []
        for r in records:
            existing = self.holder(r.dedupe_key) if r.dedupe_key is not None else None
            if existing is not None:
                ids.append(existing.id)
                continue
            task = self.tasks[r.id] = ModelTask(
                r.id, r.queue, r.priority, r.available_at, next(self._order), r.dedupe_key,
                r.max_retries, parents=r.parents, allow_failure=r.allow_failure,
                workflow_id=r.workflow_id,
            )  # fmt: skip
            if r.parents:
                task.status, error = child_status(self._parents(task), r.allow_failure)
                task.error = None if error is None else PARENT_FAILED
            ids.append(r.id)
        return ids

    # -- workflows (`sitq.workflow_state`) ---------------------------------------------------

    def _parents(self, task: ModelTask) -> list[tuple[str, TaskStatus]]:
        """``task``'s parents with their statuses (a purged one had ended: succeeded)."""
        found = (self.tasks.get(p) for p in task.parents)
        return [
            (p, TaskStatus.SUCCEEDED if t is None else t.status)
            for p, t in zip(task.parents, found, strict=True)
        ]

    def failed_parent_named(self, task: ModelTask, error: str | None) -> bool:
        """True if ``error`` is `parent_failed_error` naming a parent of ``task`` that ended
        without succeeding."""
        if error is None or not error.startswith(PARENT_FAILED_PREFIX):
            return False
        ended = {p for p, status in self._parents(task) if status in FAILED_PARENT_STATUSES}
        return any(f": {p} ended " in error for p in ended)

    def _children(self, task_id: str) -> list[ModelTask]:
        return [t for t in self.tasks.values() if task_id in t.parents]

    def ended(self, task_id: str, now: float) -> None:
        """``task_id`` reached a final status: release or cancel its waiting children, and
        theirs, down the graph."""
        stack = [task_id]
        while stack:
            for child in self._children(stack.pop()):
                if child.status is not TaskStatus.WAITING:
                    continue
                status, _ = child_status(self._parents(child), child.allow_failure)
                if status is TaskStatus.CANCELLED:
                    child.status, child.error = status, PARENT_FAILED
                    stack.append(child.id)
                elif status is TaskStatus.PENDING:
                    child.status, child.available_at = status, now

    def resumed(self, task_id: str) -> None:
        """``task_id`` was requeued: its descendants cancelled for it wait again (unless
        another parent of theirs ended without succeeding)."""
        stack = [task_id]
        while stack:
            for child in self._children(stack.pop()):
                if child.status is not TaskStatus.CANCELLED or child.error is not PARENT_FAILED:
                    continue
                status, _ = child_status(self._parents(child), child.allow_failure)
                if status is TaskStatus.CANCELLED:
                    continue
                child.status, child.error = TaskStatus.WAITING, None
                stack.append(child.id)

    # -- claim and leases --------------------------------------------------------------------

    def claimable(
        self, now: float, limit: int, queues: Sequence[str] | None, exclude: Iterable[str]
    ) -> list[str]:
        """Ids a claim must return, in order (the model is not changed)."""
        skip = set(exclude)
        due = [
            t
            for t in self.tasks.values()
            if t.status is TaskStatus.PENDING
            and t.available_at <= now
            and (queues is None or t.queue in queues)
            and t.id not in skip
        ]
        due.sort(key=ModelTask.sort_key)
        return [t.id for t in due[: max(limit, 0)]]

    def take(self, task_id: str, token: str, now: float, lease_seconds: float) -> None:
        """Record that the backend gave ``task_id`` to a claimer under ``token``."""
        task = self.tasks[task_id]
        assert task.status is TaskStatus.PENDING, f"claimed {task_id} while {task.status}"
        task.status = TaskStatus.RUNNING
        task.attempts += 1
        task.lease_token = token
        task.lease_expires_at = now + lease_seconds

    def holds(self, task_id: str, token: str) -> bool:
        """True while ``token`` is the live lease of running task ``task_id``."""
        task = self.tasks.get(task_id)
        return task is not None and task.status is TaskStatus.RUNNING and task.lease_token == token

    def extend(self, leases: Mapping[str, str], now: float, lease_seconds: float) -> set[str]:
        """Apply a heartbeat; return the ids whose lease must be extended."""
        held = {tid for tid, token in leases.items() if self.holds(tid, token)}
        for tid in held:
            self.tasks[tid].lease_expires_at = now + lease_seconds
        return held

    def finish(self, outcome: Outcome, now: float) -> bool:
        """Apply one outcome; return whether a backend must apply it."""
        if not self.holds(outcome.task_id, outcome.lease_token):
            return False
        task = self.tasks[outcome.task_id]
        task.lease_token = task.lease_expires_at = None
        task.status = outcome.status
        if outcome.status is TaskStatus.PENDING:
            task.available_at = now if outcome.available_at is None else outcome.available_at
            if outcome.count_attempt:
                task.error = outcome.error
            else:
                task.attempts = max(0, task.attempts - 1)
        else:
            task.error = outcome.error
            self.ended(task.id, now)
        return True

    def recover(self, now: float, max_attempts: int) -> tuple[set[str], set[str]]:
        """Apply `recover_expired`; return (ids put back to pending, ids that went dead)."""
        back, dead = set(), set()
        for task in self.tasks.values():
            if (
                task.status is not TaskStatus.RUNNING
                or task.lease_expires_at is None
                or task.lease_expires_at >= now
            ):
                continue
            task.lease_token = task.lease_expires_at = None
            if attempts_spent(task.attempts, max_attempts, task.max_retries):
                task.status = TaskStatus.DEAD
                task.error = LOST_WORKER
                dead.add(task.id)
            else:
                task.status = TaskStatus.PENDING
                task.available_at = now
                back.add(task.id)
        for task_id in dead:
            self.ended(task_id, now)
        return back, dead

    # -- control -----------------------------------------------------------------------------

    def cancel(self, task_id: str, now: float) -> bool:
        """Apply `cancel` (waiting, pending or running; a running task loses its lease);
        return what a backend must answer."""
        task = self.tasks.get(task_id)
        if task is None or task.status not in ACTIVE:
            return False
        task.status = TaskStatus.CANCELLED
        task.lease_token = task.lease_expires_at = None
        self.ended(task_id, now)
        return True

    def cancel_workflow(self, workflow_id: str, now: float) -> int:
        """Apply `cancel_workflow`; return how many members a backend must say it cancelled
        (those not ended before it, each cancelled as `cancel` does, with no parent's reason)."""
        members = [t for t in self.tasks.values() if t.workflow_id == workflow_id]
        active = [t for t in members if t.status in ACTIVE]
        for task in active:  # all cancelled as by hand first: no member is cancelled "for" another
            task.status = TaskStatus.CANCELLED
            task.lease_token = task.lease_expires_at = None
        for task in active:  # then their children outside the workflow
            self.ended(task.id, now)
        return len(active)

    def requeue(self, task_id: str, now: float) -> bool:
        """Apply `requeue`; return what a backend must answer."""
        task = self.tasks.get(task_id)
        if task is None or task.status not in REQUEUEABLE or task.expired:
            return False
        if task.dedupe_key is not None and self.holder(task.dedupe_key) is not None:
            return False
        task.status = TaskStatus.PENDING
        task.attempts = 0
        task.available_at = now
        task.error = None
        self.resumed(task_id)
        return True

    def expire(self) -> int:
        """Apply `expire_results` with a cutoff after every finish; return how many tasks
        become tombstones."""
        count = 0
        for task in self.tasks.values():
            if task.status in FINAL_STATUSES and not task.expired:
                task.expired = True
                count += 1
        return count

    def purge(self, statuses: Iterable[TaskStatus] | None = None) -> int:
        """Apply `purge` (without ``older_than``); return how many tasks go."""
        wanted = purge_statuses(statuses)
        doomed = [tid for tid, t in self.tasks.items() if t.status in wanted]
        for tid in doomed:
            del self.tasks[tid]
        return len(doomed)

    # -- reading -----------------------------------------------------------------------------

    def counts(self, queue: str | None = None) -> dict[TaskStatus, int]:
        """Tasks per status, every status present."""
        counts = dict.fromkeys(ALL_STATUSES, 0)
        for task in self.tasks.values():
            if queue is None or task.queue == queue:
                counts[task.status] += 1
        return counts

    def with_status(self, status: TaskStatus) -> list[str]:
        """Ids of the tasks in ``status``, in enqueue order."""
        found = [t for t in self.tasks.values() if t.status is status]
        return [t.id for t in sorted(found, key=lambda t: t.order)]
