"""What a store keeps of workflows, and the rules every backend applies to them alike.

A workflow member that depends on other tasks (its *parents*, `TaskRecord.parents`) is stored
``waiting``. Its join is exact: the store counts, per waiting task, the parents that have not
ended yet, and the transaction that stores a parent's final outcome (`Backend.finish`,
`Backend.cancel`, `Backend.recover_expired` turning a task dead) also moves each child whose
last parent just ended, in the same commit:

* every parent succeeded, or the child has ``allow_failure``: the child becomes ``pending``,
  due at once (``available_at`` = the clock of that transaction; queues refuse an ``eta`` on
  a task with parents);
* a parent ended failed, dead or cancelled and the child has no ``allow_failure``: the child
  becomes ``cancelled`` with the error `parent_failed_error`, and so does each of its own
  descendants (the same rule, applied down the graph).

A parent that fails cancels its children at once (no need to wait for its other parents). A
requeued parent (`Backend.requeue`) takes its descendants that were cancelled for it back to
``waiting``: retrying a failed member resumes the workflow.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError
from .task import TaskStatus

if TYPE_CHECKING:
    from .records import TaskRecord

#: The header (`TaskRecord.meta`) naming how a child receives its parents' results:
#: ``"first"`` (a chain: the first parent's result as the first argument), ``"list"`` (a chord's
#: callback: the list of results in parent order) or absent (nothing passed).
PASS_RESULTS_HEADER = "sitq.pass_results"

#: The error prefix of a task cancelled because a parent ended without succeeding.
PARENT_FAILED_PREFIX = "cancelled because a parent did not succeed"


def parent_failed_error(parent_id: str, parent_status: TaskStatus) -> str:
    """The error stored on a task cancelled because parent ``parent_id`` ended
    ``parent_status`` (failed, dead or cancelled) and the task has no ``allow_failure``."""
    return f"{PARENT_FAILED_PREFIX}: {parent_id} ended {parent_status.value}"


def cancelled_for_parent(error: str | None) -> bool:
    """True if a cancelled task's ``error`` says a parent's failure cancelled it (`requeue`
    of that parent takes it back)."""
    return error is not None and error.startswith(PARENT_FAILED_PREFIX)


#: The statuses in which a parent ended without succeeding.
FAILED_PARENT_STATUSES = frozenset({TaskStatus.FAILED, TaskStatus.DEAD, TaskStatus.CANCELLED})


def child_status(
    parents: Iterable[tuple[str, TaskStatus]], allow_failure: bool
) -> tuple[TaskStatus, str | None]:
    """What a child becomes given its parents' ``(id, status)`` now: ``(WAITING, None)``
    while one has not ended, ``(PENDING, None)`` once all have (or every one succeeded), or
    ``(CANCELLED, error)`` as soon as one ended without succeeding and the child has no
    ``allow_failure`` (``error`` names the first such parent, see `parent_failed_error`)."""
    waiting = False
    for parent_id, status in parents:
        if status in FAILED_PARENT_STATUSES and not allow_failure:
            return TaskStatus.CANCELLED, parent_failed_error(parent_id, status)
        waiting = waiting or not status.is_final
    return (TaskStatus.WAITING, None) if waiting else (TaskStatus.PENDING, None)


def unknown_parent_error(task_id: str, parent_id: str) -> ConfigurationError:
    """The error of an enqueue whose record names a parent that is neither stored nor
    earlier in its batch (nothing of that enqueue is stored)."""
    return ConfigurationError(
        f"task {task_id!r} depends on {parent_id!r}, which is not stored (nor earlier in the "
        "same enqueue): pass the id or handle of a task enqueued before it (nothing in this "
        "enqueue was stored)"
    )


@dataclass(frozen=True)
class WorkflowSummary:
    """What ``sitq workflows`` shows of one workflow: its members' counts by status.

    :param id: the workflow id (`TaskRecord.workflow_id` of its members).
    :param total: how many members it has.
    :param counts: members by status (statuses with none may be left out).
    :param created_at: when its first member was stored (epoch seconds).
    :param finished_at: when its last member ended, or None while any has not.
    """

    id: str
    total: int
    counts: dict[TaskStatus, int] = field(default_factory=dict)
    created_at: float = 0.0
    finished_at: float | None = None

    @property
    def done(self) -> int:
        """Members in a final state."""
        return sum(n for status, n in self.counts.items() if status.is_final)


def summarize(workflow_id: str, members: Iterable[TaskRecord]) -> WorkflowSummary:
    """The `WorkflowSummary` of a workflow's ``members`` (what a backend without an
    aggregate query, or a handle, computes): ``finished_at`` is the latest end once every
    member has ended."""
    counts: dict[TaskStatus, int] = {}
    created: list[float] = []
    finished: list[float] = []
    active = False
    for r in members:
        counts[r.status] = counts.get(r.status, 0) + 1
        created.append(r.created_at)
        active = active or not r.status.is_final
        finished.append(r.finished_at or r.created_at)
    return WorkflowSummary(
        workflow_id,
        total=len(created),
        counts=counts,
        created_at=min(created, default=0.0),
        finished_at=None if active else max(finished, default=0.0),
    )


def parents_to_find(records: Sequence[TaskRecord]) -> list[tuple[str, str]]:
    """The ``(task id, parent id)`` pairs of a batch ``records`` whose parent must be stored
    already (it is not earlier in the batch); a parent later in the batch is refused at once
    (`unknown_parent_error`)."""
    batch = {r.id for r in records}
    earlier: set[str] = set()
    found = []
    for r in records:
        for parent in r.parents:
            if parent in batch and parent not in earlier:
                raise unknown_parent_error(r.id, parent)
            if parent not in earlier:
                found.append((r.id, parent))
        earlier.add(r.id)
    return found


def summaries_from_rows(
    order: Iterable[str], rows: Iterable[Sequence[Any]]
) -> list[WorkflowSummary]:
    """The `WorkflowSummary` of each workflow in ``order`` from the ``(workflow_id, status, n,
    created_at, finished_at)`` rows of an aggregate query (what a SQL backend's
    ``workflows()`` selects): ``finished_at`` is the latest end once every member has ended."""
    by_id: dict[str, list[Sequence[Any]]] = {}
    for row in rows:
        by_id.setdefault(row[0], []).append(row)
    found = []
    for workflow_id in order:
        counts: dict[TaskStatus, int] = {}
        created: list[float] = []
        finished: list[float] = []
        active = False
        for _, status, n, created_at, finished_at in by_id.get(workflow_id, []):
            state = TaskStatus(status)
            counts[state] = counts.get(state, 0) + int(n)
            created.append(float(created_at))
            active = active or not state.is_final
            if finished_at is not None:
                finished.append(float(finished_at))
        found.append(
            WorkflowSummary(
                workflow_id,
                total=sum(counts.values()),
                counts=counts,
                created_at=min(created, default=0.0),
                finished_at=None if active or not finished else max(finished),
            )
        )
    return found


__all__ = [
    "FAILED_PARENT_STATUSES",
    "PARENT_FAILED_PREFIX",
    "PASS_RESULTS_HEADER",
    "WorkflowSummary",
    "cancelled_for_parent",
    "child_status",
    "parent_failed_error",
    "parents_to_find",
    "summaries_from_rows",
    "summarize",
    "unknown_parent_error",
]
