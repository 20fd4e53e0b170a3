"""Eager mode: every task runs the moment it is enqueued, in the enqueuing process.

For tests and local scripts: the code under test calls ``enqueue`` as in production, and the
task has run (through its retries) by the time ``enqueue`` returns. Nothing is faked: the
task is stored, claimed, run and finished by a real `Worker`, so results, hooks, retries and
``get_result`` behave as they do with a separate worker:

```python
queue = EagerTaskQueue("memory://")
task_id = await queue.enqueue(add, 2, 3)
assert (await queue.get_result(task_id, timeout=0)).value == 5
```

Differences from a real worker, on purpose: ``eta`` is ignored (the task runs now), retries
wait ``retry_delay`` (0 by default) instead of the worker's 1 s, and an enqueue made inside a
task runs before the outer task goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .backend import Backend
from .errors import ConfigurationError
from .queue import TaskQueue
from .sync import SyncTaskQueue
from .task import Task
from .workflows import AsyncWorkflow, Canvas

#: Where an eager queue keeps its tasks when no backend is named.
EAGER_DEFAULT_BACKEND = "memory://"


class EagerTaskQueue(TaskQueue):
    """A `TaskQueue` that runs each task as soon as it is enqueued.

    :param backend: as for `TaskQueue`, but ``memory://`` when None.
    :param worker_options: keyword arguments for the `Worker` that runs the tasks, e.g.
        ``{"max_retries": 2}``; ``retry_delay`` defaults to 0.
    :param options: the other `TaskQueue` options (``serializer``, ``secret_key``, …).
    """

    def __init__(
        self,
        backend: Backend | str | None = None,
        *,
        worker_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(EAGER_DEFAULT_BACKEND if backend is None else backend, **options)
        from .worker import Worker  # worker imports queue: import here to avoid a cycle

        worker_options = {"retry_delay": 0.0, "worker_id": "eager", **(worker_options or {})}
        self.worker = Worker(self, **worker_options)

    async def enqueue(  # type: ignore[override]  # one signature for both overloads
        self,
        function: Callable[..., Any] | Task | str | Canvas,
        /,
        *args: Any,
        connection: Any = None,
        **kwargs: Any,
    ) -> str | AsyncWorkflow:
        """Store the call (see `TaskQueue.enqueue`), run it to its final result, return its id.
        A workflow's members run one after another, parents first."""
        _refuse_connection(connection)
        stored = await super().enqueue(function, *args, **kwargs)
        if isinstance(stored, AsyncWorkflow):
            for task_id in stored.task_ids:
                await self.worker.process_task_async(task_id)
        return stored  # one task ran in _enqueue_task

    async def _enqueue_task(self, task: Task, *, checked: bool, connection: Any = None) -> str:
        """Store ``task`` (every enqueue of one task, declared tasks' too, comes here) and run
        it to its final result."""
        _refuse_connection(connection)
        task_id = await super()._enqueue_task(task, checked=checked)
        await self.worker.process_task_async(task_id)
        return task_id

    async def enqueue_many(
        self,
        items: Iterable[Task | Callable[..., Any] | tuple[Any, ...]],
        *,
        connection: Any = None,
    ) -> list[str]:
        """Store the calls in one transaction, run each to its result (in order), return ids."""
        _refuse_connection(connection)
        ids = await super().enqueue_many(items)
        for task_id in dict.fromkeys(ids):
            await self.worker.process_task_async(task_id)
        return ids


def _refuse_connection(connection: Any) -> None:
    if connection is not None:
        raise ConfigurationError(
            "an eager queue runs each task as it is enqueued, before your transaction could "
            "commit: it cannot take connection=...; use a TaskQueue and a worker to test that"
        )


class EagerSyncTaskQueue(SyncTaskQueue):
    """The blocking facade over an `EagerTaskQueue`: ``enqueue`` returns once the task ran.

    Takes `SyncTaskQueue`'s arguments plus ``worker_options`` (see `EagerTaskQueue`).
    """

    def __init__(
        self,
        backend: Backend | str | None = None,
        *,
        worker_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        self._worker_options = worker_options
        super().__init__(EAGER_DEFAULT_BACKEND if backend is None else backend, **options)

    def _async_queue(self, backend: Backend | str | None, **options: Any) -> TaskQueue:
        return EagerTaskQueue(backend, worker_options=self._worker_options, **options)

    @property
    def worker(self) -> Any:
        """The `Worker` that runs the tasks."""
        return self.async_queue.worker  # type: ignore[attr-defined]


__all__ = ["EAGER_DEFAULT_BACKEND", "EagerSyncTaskQueue", "EagerTaskQueue"]
