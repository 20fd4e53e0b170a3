"""Typed handles on enqueued declared tasks: `TaskHandle` (blocking) and `AsyncTaskHandle`.

A handle is a task id and the queue it went to. Both flavours read the queue through its
public API (`get_result`, `get_task`, `cancel`) and turn what comes back into a value, a
status, a progress or an error with the same helpers, so they differ only in awaiting or not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .errors import TaskFailed, TaskNotFound
from .task import Result, Task, TaskStatus

if TYPE_CHECKING:
    from .progress import Progress
    from .queue import TaskQueue
    from .sync import SyncTaskQueue

R = TypeVar("R")


def value_of(task_id: str, result: Result) -> Any:
    """The return value in ``result``, or `TaskFailed` if the task did not succeed."""
    if not result.is_success:
        raise TaskFailed(task_id, result)
    return result.value


def status_of(task_id: str, task: Task | None) -> TaskStatus:
    """The status of ``task``, or `TaskNotFound` if the queue no longer has it."""
    return found(task_id, task).status


def progress_of(task_id: str, task: Task | None) -> Progress | None:
    """What ``task`` last reported with ``set_progress`` (None if it never did), or
    `TaskNotFound` if the queue no longer has it."""
    return found(task_id, task).progress


def found(task_id: str, task: Task | None) -> Task:
    """``task``, or `TaskNotFound` if the queue no longer has it (``get_task`` gave None)."""
    if task is None:
        raise TaskNotFound(f"no task with id {task_id!r} (purged, or another backend?)")
    return task


class _Handle:
    """What both flavours hold: the task id, and equality and repr by id."""

    __slots__ = ("id",)

    def __init__(self, task_id: str) -> None:
        #: The task id, as `TaskQueue.enqueue` returns it.
        self.id = task_id

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id}>"


class TaskHandle(_Handle, Generic[R]):
    """A task enqueued on a `SyncTaskQueue`; its methods block."""

    __slots__ = ("_queue",)

    def __init__(self, queue: SyncTaskQueue, task_id: str) -> None:
        super().__init__(task_id)
        self._queue = queue

    def result(self, timeout: float | None = None) -> R:
        """Wait for the task's return value (see `TaskQueue.get_result` for ``timeout``).

        Raises `TaskFailed` if it failed or was cancelled, `ResultTimeout` after ``timeout``.
        """
        return value_of(self.id, self._queue.get_result(self.id, timeout))  # type: ignore[no-any-return]

    def status(self) -> TaskStatus:
        """Where the task is now."""
        return status_of(self.id, self._queue.get_task(self.id))

    def progress(self) -> Progress | None:
        """What the task last reported with ``current_task().set_progress(...)``, None if
        nothing yet (a retried task shows its previous attempt's until it reports again)."""
        return progress_of(self.id, self._queue.get_task(self.id))

    def cancel(self) -> bool:
        """Cancel the task if it is still pending; False if it is not."""
        return self._queue.cancel(self.id)


class AsyncTaskHandle(_Handle, Generic[R]):
    """A task enqueued on a `TaskQueue`; its methods are awaited."""

    __slots__ = ("_queue",)

    def __init__(self, queue: TaskQueue, task_id: str) -> None:
        super().__init__(task_id)
        self._queue = queue

    async def result(self, timeout: float | None = None) -> R:
        """Wait for the task's return value (see `TaskQueue.get_result` for ``timeout``).

        Raises `TaskFailed` if it failed or was cancelled, `ResultTimeout` after ``timeout``.
        """
        return value_of(self.id, await self._queue.get_result(self.id, timeout))  # type: ignore[no-any-return]

    async def status(self) -> TaskStatus:
        """Where the task is now."""
        return status_of(self.id, await self._queue.get_task(self.id))

    async def progress(self) -> Progress | None:
        """What the task last reported with ``current_task().set_progress(...)``, None if
        nothing yet (a retried task shows its previous attempt's until it reports again)."""
        return progress_of(self.id, await self._queue.get_task(self.id))

    async def cancel(self) -> bool:
        """Cancel the task if it is still pending; False if it is not."""
        return await self._queue.cancel(self.id)
