"""The workflow graph of one memory store: who waits for whom, and the exact joins of
`sitq.workflow_state` applied under the store's lock.

Each waiting task keeps a count of its parents that have not ended, so ending a parent costs
one step per child, whatever the number of its siblings (a chord of 10,000 members joins in
10,000 steps, not 10,000²).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sitq import TaskStatus
from sitq.backend import TaskRecord
from sitq.workflow_state import (
    FAILED_PARENT_STATUSES,
    WorkflowSummary,
    cancelled_for_parent,
    child_status,
    parent_failed_error,
    summarize,
    unknown_parent_error,
)


@dataclass
class Moved:
    """What a change of the graph did to other tasks: those released to pending (to push on
    the ready heaps). Cancelled ones need nothing more: a duplicate is decided from the stored
    statuses (`sitq.unique`), so no dedupe key is held to free."""

    released: list[TaskRecord] = field(default_factory=list)


class WorkflowGraph:
    """Children, pending-parent counts and workflow members. Not thread-safe: the caller
    holds the store's lock, and passes the store's tasks to every method."""

    def __init__(self) -> None:
        self.children: dict[str, list[str]] = {}
        self.unfinished: dict[str, int] = {}  # waiting task -> parents not ended yet
        # workflow id -> its member ids in enqueue order (a dict: an ordered set)
        self.members: dict[str, dict[str, None]] = {}

    def check(self, records: Sequence[TaskRecord], tasks: Mapping[str, TaskRecord]) -> None:
        """Refuse a batch with a parent neither stored nor earlier in it."""
        earlier: set[str] = set()
        for record in records:
            for parent in record.parents:
                if parent not in tasks and parent not in earlier:
                    raise unknown_parent_error(record.id, parent)
            earlier.add(record.id)

    def add(self, record: TaskRecord, tasks: Mapping[str, TaskRecord], now: float) -> None:
        """Register a stored record (status pending) and give it the status its parents
        decide: waiting, pending or cancelled."""
        if record.workflow_id is not None:
            self.members.setdefault(record.workflow_id, {})[record.id] = None
        if not record.parents:
            return
        for parent in record.parents:
            self.children.setdefault(parent, []).append(record.id)
        parents = [(p, tasks[p].status) for p in record.parents]
        status, error = child_status(parents, record.allow_failure)
        if status is TaskStatus.WAITING:
            record.status = TaskStatus.WAITING
            self.unfinished[record.id] = sum(1 for _, s in parents if not s.is_final)
        elif status is TaskStatus.CANCELLED:
            record.status, record.error, record.finished_at = status, error, now
        # pending: stays as stored (the caller pushes it)

    def ended(
        self, record: TaskRecord, tasks: Mapping[str, TaskRecord], now: float, moved: Moved
    ) -> None:
        """``record`` just reached a final status: release or cancel its children (and
        theirs, down the graph), recording each move in ``moved``."""
        ended = [record]
        while ended:
            parent = ended.pop()
            failed = parent.status in FAILED_PARENT_STATUSES
            for child_id in self.children.get(parent.id, ()):
                child = tasks.get(child_id)
                if child is None or child.status is not TaskStatus.WAITING:
                    continue
                if failed and not child.allow_failure:
                    self.unfinished.pop(child_id, None)
                    child.status = TaskStatus.CANCELLED
                    child.error = parent_failed_error(parent.id, parent.status)
                    child.finished_at = now
                    ended.append(child)
                    continue
                left = self.unfinished[child_id] - 1
                self.unfinished[child_id] = left
                if left == 0:
                    del self.unfinished[child_id]
                    child.status, child.available_at = TaskStatus.PENDING, now
                    moved.released.append(child)

    def requeued(self, record: TaskRecord, tasks: Mapping[str, TaskRecord]) -> None:
        """``record`` went from a final status back to pending: its waiting children wait
        for it again, and its descendants cancelled for it wait again (unless another
        parent of theirs still ended without succeeding)."""
        resumed = [record.id]
        while resumed:
            parent_id = resumed.pop()
            for child_id in self.children.get(parent_id, ()):
                child = tasks.get(child_id)
                if child is None:
                    continue
                if child.status is TaskStatus.WAITING:
                    self.unfinished[child_id] += 1
                elif child.status is TaskStatus.CANCELLED and cancelled_for_parent(child.error):
                    parents = [(p, _status(tasks, p)) for p in child.parents]
                    status, error = child_status(parents, child.allow_failure)
                    if status is TaskStatus.CANCELLED:
                        child.error = error
                        continue
                    child.status, child.error, child.finished_at = TaskStatus.WAITING, None, None
                    self.unfinished[child_id] = sum(1 for _, s in parents if not s.is_final)
                    resumed.append(child_id)

    def forget(self, record: TaskRecord) -> None:
        """``record`` was deleted."""
        self.children.pop(record.id, None)
        self.unfinished.pop(record.id, None)
        if record.workflow_id is not None:
            members = self.members.get(record.workflow_id)
            if members is not None:
                members.pop(record.id, None)
                if not members:
                    del self.members[record.workflow_id]

    def member_ids(self, workflow_id: str) -> list[str]:
        """The members of ``workflow_id``, in enqueue order."""
        return list(self.members.get(workflow_id, ()))

    def summaries(
        self, tasks: Mapping[str, TaskRecord], limit: int, active_only: bool
    ) -> list[WorkflowSummary]:
        """The newest ``limit`` workflows (by their first member's ``created_at``, then
        enqueue order), newest first."""
        newest = sorted(
            enumerate(self.members.items()),
            key=lambda item: (tasks[next(iter(item[1][1]))].created_at, item[0]),
            reverse=True,
        )
        found: list[WorkflowSummary] = []
        for _, (workflow_id, ids) in newest:
            if len(found) >= limit:
                break
            summary = summarize(workflow_id, (tasks[i] for i in ids))
            if not (active_only and summary.finished_at is not None):
                found.append(summary)
        return found


def _status(tasks: Mapping[str, TaskRecord], task_id: str) -> TaskStatus:
    """The status of a parent (a deleted one counts as succeeded: it ended)."""
    record = tasks.get(task_id)
    return TaskStatus.SUCCEEDED if record is None else record.status
