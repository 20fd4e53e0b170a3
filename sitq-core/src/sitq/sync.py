"""`SyncTaskQueue`: the blocking facade of `TaskQueue`, for scripts, threads and web apps."""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine, Iterable, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:
    from typing_extensions import Self

from .backend import Backend, Capability
from .blueprints import DeclaresTasks, SyncBlueprint
from .bridge import Portal, forbid_running_loop
from .envelope import DEFAULT_MAX_PAYLOAD_BYTES
from .errors import ResultTimeout
from .flow_control import LimitRule, LimitState
from .plugins import PluginManager
from .queue import TaskQueue
from .registry import Serializer, SerializerType
from .serializers import DEFAULT_SERIALIZER
from .signing import SecretKey
from .task import DEFAULT_QUEUE, Result, Task, TaskStatus
from .workflow_state import WorkflowSummary
from .workflows import CANVAS_TYPES, Canvas, Workflow

T = TypeVar("T")

#: Seconds `SyncTaskQueue.get_result` waits past its timeout for the queue's own answer (a
#: result, or its `ResultTimeout`) before raising one itself.
_ANSWER_MARGIN = 1.0


class SyncTaskQueue(DeclaresTasks[SyncBlueprint]):
    """The same surface as `TaskQueue`, blocking. Safe to call from several threads.

    Its coroutines run on a private event loop in a daemon thread; on a backend with
    `Capability.BLOCKING_ENQUEUE` enqueues store in the calling thread instead (no hop to that
    thread and back). Calling it from inside a running event loop raises
    `sitq.errors.EventLoopMisuse`: use `TaskQueue` there. The arguments are `TaskQueue`'s,
    and so is the rule of who closes the backend: `close` closes a backend the queue opened
    from a URL, never one handed in (its owner closes that).
    """

    def __init__(
        self,
        backend: Backend | str | None = None,
        *,
        serializer: str | Serializer | SerializerType = DEFAULT_SERIALIZER,
        plugins: PluginManager | None = None,
        secret_key: SecretKey | None = None,
        max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        self.async_queue = self._async_queue(
            backend,
            serializer=serializer,
            plugins=plugins,
            secret_key=secret_key,
            max_payload_bytes=max_payload_bytes,
        )
        self._portal = Portal("sitq-sync-queue")
        #: True if enqueues store in the calling thread, with no hop to the portal: the
        #: backend can, and the async queue enqueues as `TaskQueue` does (an `EagerTaskQueue`
        #: also runs the task: its own ``enqueue`` is the one to call).
        self._blocking = self.backend.supports(Capability.BLOCKING_ENQUEUE) and all(
            getattr(type(self.async_queue), name) is getattr(TaskQueue, name)
            for name in ("enqueue", "_enqueue_task", "enqueue_many")
        )

    def _async_queue(self, backend: Backend | str | None, **options: Any) -> TaskQueue:
        """The async queue this facade drives; a subclass may build another kind."""
        return TaskQueue(backend, **options)

    @property
    def backend(self) -> Backend:
        """The backend tasks are stored in."""
        return self.async_queue.backend

    @property
    def owns_backend(self) -> bool:
        """True if this queue opened its backend (from a URL) and closes it in `close`."""
        return self.async_queue.owns_backend

    def _run(
        self,
        name: str,
        coro: Coroutine[Any, Any, T],
        timeout: float | None = None,
        on_timeout: Callable[[], BaseException] | None = None,
    ) -> T:
        try:
            forbid_running_loop(f"SyncTaskQueue.{name}()", f"`await TaskQueue.{name}()`")
        except Exception:
            coro.close()
            raise
        return self._portal.run(coro, timeout, on_timeout)

    @overload
    def enqueue(self, function: Canvas, /) -> Workflow: ...
    @overload
    def enqueue(
        self,
        function: Callable[..., Any] | Task | str,
        /,
        *args: Any,
        eta: datetime | timedelta | float | None = None,
        priority: int = 0,
        queue: str = DEFAULT_QUEUE,
        max_retries: int | None = None,
        timeout: float | None = None,
        dedupe_key: str | None = None,
        **kwargs: Any,
    ) -> str: ...
    def enqueue(
        self,
        function: Callable[..., Any] | Task | str | Canvas,
        /,
        *args: Any,
        eta: datetime | timedelta | float | None = None,
        priority: int = 0,
        queue: str = DEFAULT_QUEUE,
        max_retries: int | None = None,
        timeout: float | None = None,
        dedupe_key: str | None = None,
        **kwargs: Any,
    ) -> str | Workflow:
        """Store a call to run later; return its id (see `TaskQueue.enqueue`).

        On a backend with `Capability.BLOCKING_ENQUEUE` the task is stored in the calling
        thread; else through the queue's event loop. ``enqueue(workflow)`` stores its tasks
        in one batch and returns a `Workflow`.
        """
        if isinstance(function, CANVAS_TYPES):
            options_ = (eta, priority, queue, max_retries, timeout, dedupe_key)
            extra = bool(args or kwargs) or options_ != (None, 0, DEFAULT_QUEUE, None, None, None)
            return self._enqueue_workflow(function, extra)
        options: dict[str, Any] = {
            "eta": eta,
            "priority": priority,
            "queue": queue,
            "max_retries": max_retries,
            "timeout": timeout,
            "dedupe_key": dedupe_key,
        }
        if not self._blocking:
            return self._run(
                "enqueue",
                self.async_queue.enqueue(function, *args, **options, **kwargs),
            )
        task = self.async_queue._task_of(function, args, kwargs, **options)
        return self._enqueue_task(task, checked=task is not function)

    def _enqueue_task(self, task: Task, *, checked: bool) -> str:
        """Store ``task`` (see `TaskQueue._enqueue_task`), in the calling thread where the
        backend can."""
        if not self._blocking:
            return self._run("enqueue", self.async_queue._enqueue_task(task, checked=checked))
        forbid_running_loop("SyncTaskQueue.enqueue()", "`await TaskQueue.enqueue()`")
        core = self.async_queue
        self._connect()
        record = core._task_record(task, core.backend.clock(), checked=checked)
        (task_id,) = core.backend.enqueue_many_blocking([record])
        core._announce_blocking(core._enqueued([task], [task_id]), self._portal.run)
        return task_id

    def enqueue_many(
        self, items: Iterable[Task | Callable[..., Any] | tuple[Any, ...]]
    ) -> list[str]:
        """Store many calls in one transaction (see `TaskQueue.enqueue_many`)."""
        if not self._blocking:
            return self._run("enqueue_many", self.async_queue.enqueue_many(list(items)))
        forbid_running_loop("SyncTaskQueue.enqueue_many()", "`await TaskQueue.enqueue_many()`")
        core = self.async_queue
        calls = core._calls_of(items)
        if not calls:
            return []
        self._connect()
        ids = core.backend.enqueue_many_blocking(core._records_of(calls, core.backend.clock()))
        core._announce_blocking(core._enqueued(calls, ids), self._portal.run)
        return ids

    def _enqueue_workflow(self, canvas: Canvas, extra: bool) -> Workflow:
        """Store a workflow's tasks in one batch (see `TaskQueue.enqueue`)."""
        core = self.async_queue
        if not self._blocking:  # the async queue's enqueue (an eager one's runs the tasks)
            if extra:
                core.workflow_plan(canvas, extra)  # raises the error
            return Workflow(self, self._run("enqueue", core.enqueue(canvas)))
        found = core.workflow_plan(canvas, extra)
        forbid_running_loop("SyncTaskQueue.enqueue()", "`await TaskQueue.enqueue()`")
        self._connect()
        records = [core._task_record(t, core.backend.clock()) for t in found.tasks]
        ids = core.backend.enqueue_many_blocking(records)
        core._announce_blocking(core._enqueued(found.tasks, ids), self._portal.run)
        return Workflow(self, found)

    def workflow_tasks(self, workflow_id: str) -> list[Task]:
        """The members of a workflow as stored now, parents first."""
        return self._run("workflow_tasks", self.async_queue.workflow_tasks(workflow_id))

    def cancel_workflow(self, workflow_id: str) -> int:
        """Cancel every member of a workflow not ended yet (running ones too); how many."""
        return self._run("cancel_workflow", self.async_queue.cancel_workflow(workflow_id))

    def workflows(self, *, limit: int = 100, active_only: bool = False) -> list[WorkflowSummary]:
        """The newest workflows with their members' counts (see `Backend.workflows`)."""
        return self._run(
            "workflows", self.async_queue.workflows(limit=limit, active_only=active_only)
        )

    def _connect(self) -> None:
        """Connect the queue through its loop once (the backend creates its schema there), or
        raise `QueueClosed` if it was closed; afterwards a cheap check."""
        if not self.async_queue.connected:
            self._run("connect", self.async_queue.connect())

    def get_result(self, task_id: str, timeout: float | None = None) -> Result:
        """Block until the task finishes (see `TaskQueue.get_result`).

        ``timeout`` is kept by the calling thread: it raises `ResultTimeout` on time even when
        the backend cannot answer (shared with a worker of this process whose event loop a
        task blocks, for instance).
        """
        coro = self.async_queue.get_result(task_id, timeout)
        if timeout is None or not _keepable(timeout):  # none, or a bad one the queue refuses
            return self._run("get_result", coro)

        def too_late() -> ResultTimeout:
            return ResultTimeout(
                f"task {task_id} is not finished after {timeout} s (the backend did not "
                "answer in time: is a worker sharing it in this process blocked?)"
            )

        return self._run("get_result", coro, timeout + _ANSWER_MARGIN, too_late)

    def get_results(self, task_ids: Sequence[str], timeout: float | None = None) -> list[Result]:
        """Block until every task of ``task_ids`` finishes (see `TaskQueue.get_results`)."""
        return self._run("get_results", self.async_queue.get_results(task_ids, timeout))

    def get_task(self, task_id: str) -> Task | None:
        """The task with this id, or None."""
        return self._run("get_task", self.async_queue.get_task(task_id))

    def cancel(self, task_id: str) -> bool:
        """Cancel a pending task; False if it is not pending."""
        return self._run("cancel", self.async_queue.cancel(task_id))

    def requeue(self, task_id: str) -> bool:
        """Run a failed, dead or cancelled task again."""
        return self._run("requeue", self.async_queue.requeue(task_id))

    def counts(self, queue: str | None = None) -> dict[TaskStatus, int]:
        """Number of tasks in each status."""
        return self._run("counts", self.async_queue.counts(queue))

    def purge(
        self, statuses: Iterable[TaskStatus] | None = None, older_than: float | None = None
    ) -> int:
        """Delete finished tasks; returns how many."""
        return self._run("purge", self.async_queue.purge(statuses, older_than))

    # -- flow control (see `TaskQueue.limit`) --------------------------------------------------

    def limit(
        self,
        pattern: str,
        *,
        rate: str | float | None = None,
        burst: float | None = None,
        concurrency: int | None = None,
    ) -> LimitRule:
        """Declare a limit (see `TaskQueue.limit`); stored when the queue connects, or at
        once if it is connected already."""
        rule = self.async_queue.limit(pattern, rate=rate, burst=burst, concurrency=concurrency)
        if self.async_queue.connected:
            self._run("limit", self.async_queue.connect())
        return rule

    def delete_limits(self, *patterns: str) -> int:
        """Remove the rules of ``patterns``; how many were stored."""
        return self._run("delete_limits", self.async_queue.delete_limits(*patterns))

    def limits(self) -> list[LimitRule]:
        """Every rule stored in the backend, by pattern."""
        return self._run("limits", self.async_queue.limits())

    def limit_states(self) -> list[LimitState]:
        """Each limited key's rule, tokens, running and waiting tasks."""
        return self._run("limit_states", self.async_queue.limit_states())

    def pause(self, queue: str) -> None:
        """Stop every worker on this backend from claiming tasks of ``queue``."""
        self._run("pause", self.async_queue.pause(queue))

    def resume(self, queue: str) -> None:
        """Let workers claim tasks of ``queue`` again."""
        self._run("resume", self.async_queue.resume(queue))

    def paused_queues(self) -> set[str]:
        """The queues paused now."""
        return self._run("paused_queues", self.async_queue.paused_queues())

    def deserialize_result(self, result: Result) -> Any:
        """The value ``result`` carries (see `TaskQueue.deserialize_result`)."""
        return self.async_queue.deserialize_result(result)

    def close(self) -> None:
        """Close the queue (and its backend if it opened it: see `TaskQueue.close`) and stop
        the private loop."""
        if not self.async_queue.closed:
            self._run("close", self.async_queue.close())
        self._portal.close()

    def __enter__(self) -> Self:
        self._run("connect", self.async_queue.connect())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SyncTaskQueue backend={self.backend!r}>"


def _keepable(timeout: object) -> bool:
    """True for a timeout the calling thread can keep: a finite number of seconds >= 0."""
    return (
        isinstance(timeout, (int, float))
        and not isinstance(timeout, bool)
        and math.isfinite(timeout)
        and timeout >= 0
    )
