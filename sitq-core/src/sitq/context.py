"""`current_task()`: what a running task knows about itself.

A task may run more than once (delivery is at least once: after its worker dies, or loses its
lease, another worker runs it again). Use ``current_task().task_id`` as an idempotency key for
side effects (it is the same for every attempt) and ``attempt`` to tell attempts apart:

```python
import sitq

async def charge(order_id: str, cents: int) -> None:
    task = sitq.current_task()
    await payments.charge(order_id, cents, idempotency_key=task.task_id)
```

The worker sets it around each execution in a `contextvars.ContextVar`, so it is seen by a
coroutine function on the worker's loop, by a function the worker runs in a thread (the
context is copied into the thread) and by a function run in a child process of a process
worker (the context travels with the call).

A task reads its headers as ``current_task().meta`` and reports how far it is with
``current_task().set_progress(0.4, "step 2 of 5")`` (see `sitq.progress`); in a child process
of a process worker, progress travels to the parent over the child's pipe (`sitq.relay`).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, overload

from .errors import NoCurrentTask
from .progress import Progress, check_progress

#: Where a running task's progress goes: called with ``(task_id, Progress)`` from any thread.
ProgressReporter = Callable[[str, Progress], None]

_logger = logging.getLogger("sitq.worker")


@dataclass(frozen=True, init=False)
class TaskContext:
    """The running task, as `current_task()` returns it.

    :ivar task_id: the task's id, the same for every attempt: the idempotency key.
    :ivar attempt: which attempt this is, counted from 1 (counted when the task is claimed).
    :ivar worker_id: the worker running it.
    :ivar queue: the queue it came from.
    :ivar function: its function's import path, ``module:qualname``.
    :ivar meta: the task's headers (``Task(meta=...)``), read-only by convention.
    """

    task_id: str
    attempt: int
    worker_id: str
    queue: str = ""
    function: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)
    # where set_progress sends its value: the worker's relay (in a process worker's child,
    # the pipe to the parent); None outside a worker
    _report: ProgressReporter | None = field(default=None, repr=False, compare=False, hash=False)
    # the stop flag: empty, or [True] once stopped. A list rather than a threading.Event: set
    # from the worker's loop, read from any thread (list.append is atomic), and ~40 times
    # cheaper to create, once per task attempt
    _stop: list[bool] = field(default_factory=list, repr=False, compare=False, hash=False)

    def __init__(
        self,
        task_id: str,
        attempt: int,
        worker_id: str,
        queue: str = "",
        function: str = "",
        meta: Mapping[str, Any] | None = None,
        _report: ProgressReporter | None = None,
        _stop: list[bool] | None = None,
    ) -> None:
        # the dataclass's own __init__ sets each field through object.__setattr__ (it is
        # frozen): one update of __dict__ is several times cheaper, once per task attempt
        self.__dict__.update(
            task_id=task_id,
            attempt=attempt,
            worker_id=worker_id,
            queue=queue,
            function=function,
            meta={} if meta is None else meta,
            _report=_report,
            _stop=[] if _stop is None else _stop,
        )

    @property
    def cancelled(self) -> bool:
        """True once this execution should stop: the task was cancelled, or its worker lost
        its lease (another worker may be running it by now).

        A coroutine is cancelled and a child process killed when that happens; a function in
        a thread cannot be stopped from outside, so a long one should check this flag now and
        then and return early: its result would be thrown away anyway.
        """
        return bool(self._stop)

    def request_stop(self) -> None:
        """Set `cancelled` (called by the worker; thread-safe)."""
        if not self._stop:
            self._stop.append(True)

    def set_progress(self, fraction: float, message: str | None = None) -> None:
        """Report how far the task is: ``fraction`` from 0.0 to 1.0 and an optional short
        ``message`` (up to 1 KiB); `ConfigurationError` otherwise.

        Cheap to call in a tight loop: the worker stores the latest value at most about
        twice a second, and the last one before the task finishes is always stored. Readers
        see it as ``queue.get_task(id).progress``. Never blocks on I/O, from any thread.
        """
        fraction, message = check_progress(fraction, message)
        self.relay_progress(Progress(fraction, message, time.time()))

    def relay_progress(self, progress: Progress) -> None:
        """Hand an already checked ``progress`` to the worker (what `set_progress` does after
        its checks; a process worker relays its child's progress through it). Without a
        worker behind this context (one built by hand), nothing is stored: logged once."""
        if self._report is None:
            if not _warned:
                _warned.append(True)
                _logger.info(
                    "set_progress in task %s is not stored: no worker runs this context",
                    self.task_id,
                )
            return
        self._report(self.task_id, progress)

    def with_reporter(self, report: ProgressReporter | None) -> TaskContext:
        """This context with its progress going to ``report`` (and a fresh stop flag)."""
        return TaskContext(
            self.task_id, self.attempt, self.worker_id, self.queue, self.function, self.meta, report
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # the stop flag and the progress reporter are local to this process; a child process
        # gets a fresh flag and no reporter
        fields = (
            self.task_id, self.attempt, self.worker_id, self.queue, self.function, dict(self.meta)
        )  # fmt: skip
        return (TaskContext, fields)


#: set once the no-reporter log line was written (once per process)
_warned: list[bool] = []


_current: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar(
    "sitq_current_task", default=None
)

_MISSING: Any = object()


@overload
def current_task() -> TaskContext: ...


@overload
def current_task(default: None) -> TaskContext | None: ...


def current_task(default: Any = _MISSING) -> Any:
    """The `TaskContext` of the task running in this context.

    Outside a task, returns ``default`` if one is given (``current_task(None)``), else raises
    `NoCurrentTask`.
    """
    found = _current.get()
    if found is None:
        if default is not _MISSING:
            return default
        raise NoCurrentTask(
            "sitq.current_task() is only available while a sitq worker runs a task; "
            "call current_task(None) to get None elsewhere"
        )
    return found


@contextlib.contextmanager
def bind(context: TaskContext | None) -> Iterator[None]:
    """Make ``context`` the current task for the duration of the ``with`` block."""
    token = _current.set(context)
    try:
        yield
    finally:
        _current.reset(token)


def set_current(context: TaskContext | None) -> contextvars.Token[TaskContext | None]:
    """Make ``context`` the current task until `reset_current` is called with the token."""
    return _current.set(context)


def reset_current(token: contextvars.Token[TaskContext | None]) -> None:
    """Undo a `set_current`."""
    _current.reset(token)


__all__ = ["NoCurrentTask", "TaskContext", "bind", "current_task", "reset_current", "set_current"]
