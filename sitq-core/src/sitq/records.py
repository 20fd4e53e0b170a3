"""What a backend stores and what a worker reports back: `TaskRecord`, `Outcome`.

`TaskRecord` is a task as stored (the encoded call plus its bookkeeping), `Outcome` the end of
one claimed attempt that `sitq.backend.Backend.finish` applies, and `record_from_row` rebuilds
a record from the values a SQL backend selects. `sitq.backend` re-exports all three.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .meta import decode_meta
from .progress import Progress, progress_from_row
from .rules import STATUS_BY_TEXT
from .task import DEFAULT_QUEUE, TaskStatus


@dataclass(slots=True)
class TaskRecord:
    """A task as a backend stores it: the encoded call plus its bookkeeping.

    Times are epoch seconds (floats). ``payload`` and ``result`` are opaque bytes encoded with
    the serializer named in ``serializer``; ``function`` is the ``module:qualname`` of the call,
    kept in clear for routing, listing and logs. ``meta`` holds the task's headers (checked
    by `sitq.meta.check_meta` before they reach a backend; stored as JSON text), ``progress``
    what the running task last reported through `Backend.set_progress` (None: never).

    Flow control (`sitq.flow_control`): ``limits`` are the concrete limit keys the task holds
    (a claim takes it only while each has a slot and a token). ``unique_for`` and
    ``unique_states`` widen ``dedupe_key``: a record is refused as a duplicate of a stored
    task with the same key whose status is in ``unique_states`` (None: waiting, pending or
    running) and that was created at or after ``clock() - unique_for`` (None: at any time).

    Workflows (`sitq.workflow_state`): ``parents`` are the ids whose outcomes the task waits
    for (stored ``waiting`` until they end), in the order their results are passed;
    ``allow_failure`` lets it run when a parent did not succeed; ``workflow_id`` groups the
    members of one workflow.
    """

    id: str
    function: str
    payload: bytes
    serializer: str
    queue: str = DEFAULT_QUEUE
    priority: int = 0
    available_at: float = 0.0
    max_retries: int | None = None
    timeout: float | None = None
    dedupe_key: str | None = None
    status: TaskStatus = TaskStatus.PENDING
    attempts: int = 0
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    worker_id: str | None = None
    lease_token: str | None = None
    lease_expires_at: float | None = None
    result: bytes | None = None
    error: str | None = None
    traceback: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    progress: Progress | None = None
    limits: tuple[str, ...] = ()
    unique_for: float | None = None
    unique_states: frozenset[TaskStatus] | None = None
    workflow_id: str | None = None
    parents: tuple[str, ...] = ()
    allow_failure: bool = False

    @property
    def expired(self) -> bool:
        """True for a tombstone: a finished task whose payload, result and traceback were
        dropped by `Backend.expire_results` (its payload is then empty). Its id, status,
        error and times are kept, so "expired" can be told apart from "unknown"."""
        return self.status.is_final and not self.payload


@dataclass(slots=True)
class Outcome:
    """What a worker reports for a claimed task; applied by `Backend.finish`.

    Build one with `succeeded`, `failed`, `dead`, `retry` or `release`.
    ``status`` is the state the task moves to: SUCCEEDED, FAILED and DEAD are final;
    PENDING puts it back in the queue at ``available_at`` (a retry), and with
    ``count_attempt=False`` also gives back the attempt counted at claim (a release).
    """

    task_id: str
    lease_token: str
    status: TaskStatus
    result: bytes | None = None
    error: str | None = None
    traceback: str | None = None
    available_at: float | None = None
    count_attempt: bool = True
    finished_at: float = field(default_factory=time.time)

    @classmethod
    def succeeded(cls, task_id: str, lease_token: str, result: bytes | None) -> Outcome:
        """The task returned; ``result`` is its encoded return value."""
        return cls(task_id, lease_token, TaskStatus.SUCCEEDED, result=result)

    @classmethod
    def failed(
        cls, task_id: str, lease_token: str, error: str, traceback: str | None = None
    ) -> Outcome:
        """The task raised and will not be retried."""
        return cls(task_id, lease_token, TaskStatus.FAILED, error=error, traceback=traceback)

    @classmethod
    def dead(
        cls, task_id: str, lease_token: str, error: str, traceback: str | None = None
    ) -> Outcome:
        """The task can never run (undecodable payload, too many attempts)."""
        return cls(task_id, lease_token, TaskStatus.DEAD, error=error, traceback=traceback)

    @classmethod
    def retry(
        cls,
        task_id: str,
        lease_token: str,
        available_at: float,
        error: str | None = None,
        traceback: str | None = None,
    ) -> Outcome:
        """The task raised and runs again at ``available_at``; the attempt stays counted."""
        return cls(
            task_id,
            lease_token,
            TaskStatus.PENDING,
            error=error,
            traceback=traceback,
            available_at=available_at,
        )

    @classmethod
    def release(cls, task_id: str, lease_token: str, available_at: float | None = None) -> Outcome:
        """Hand the task back unrun (declined, or the worker is shutting down)."""
        return cls(
            task_id,
            lease_token,
            TaskStatus.PENDING,
            available_at=available_at,
            count_attempt=False,
        )


#: How many stored values come before the headers in a row `record_from_row` reads.
_PLAIN_VALUES = 21


def record_from_row(row: Sequence[Any]) -> TaskRecord:
    """A `TaskRecord` from stored values in its field order, the status as its stored text
    (what a SQL backend selects): the 21 plain columns, then the headers as JSON text, then
    the progress as three columns (fraction, message, updated_at)."""
    record = TaskRecord(*row[:_PLAIN_VALUES])
    record.status = STATUS_BY_TEXT[row[10]]
    if len(row) > _PLAIN_VALUES:
        record.meta = decode_meta(row[_PLAIN_VALUES])
        record.progress = progress_from_row(*row[_PLAIN_VALUES + 1 : _PLAIN_VALUES + 4])
    return record


__all__ = ["Outcome", "TaskRecord", "record_from_row"]
