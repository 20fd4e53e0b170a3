"""Helpers for testing *your* code that uses sitq: a queue that answers "what was enqueued?"
and a worker that runs everything pending, then returns.

The pytest plugin (`sitq.pytest_plugin`) hands them out as the ``sitq_queue`` and
``sitq_worker`` fixtures; they work without pytest too. (Backend authors: the conformance kit
is `sitq.conformance`.)

Both are blocking (they wrap `SyncTaskQueue` and `Worker`); inside an ``async def`` test use
``sitq_queue.async_queue`` for enqueuing and call these helpers from plain code.

In sitq 0.1 this name was the conformance kit's, and backends written against 0.1 import the
kit from here: ``from sitq.testing import BackendConformance`` (or any other name in
`sitq.conformance`) still works, served from `sitq.conformance` when first asked for. Those
names are not in this module's ``__all__``; new code imports them from `sitq.conformance`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .backend import TaskRecord
from .sync import SyncTaskQueue
from .task import Result, Task, TaskStatus, function_name
from .worker import Worker

_UNSET: Any = object()


class SitqTestQueue(SyncTaskQueue):
    """A `SyncTaskQueue` with assertions about the tasks stored in it."""

    __test__ = False  # not a test class, whatever pytest's naming rules say

    def enqueued(
        self,
        function: Callable[..., Any] | str | None = None,
        *,
        statuses: Iterable[TaskStatus] | None = None,
        queue: str | None = None,
    ) -> list[Task]:
        """Every stored task (oldest first), decoded; optionally only those calling
        ``function`` (the function or its ``"module:qualname"``), in ``statuses`` or ``queue``."""
        records: list[TaskRecord] = self._run(
            "tasks",
            self.async_queue.backend.list_tasks(statuses=statuses, queue=queue, limit=None),
        )
        wanted = None if function is None else function_name(function)
        return [
            self.async_queue.task_from_record(r)
            for r in records
            if wanted is None or r.function == wanted
        ]

    def assert_enqueued(
        self,
        function: Callable[..., Any] | str,
        args: Sequence[Any] = _UNSET,
        kwargs: Mapping[str, Any] = _UNSET,
        *,
        count: int | None = None,
        queue: str | None = None,
    ) -> list[Task]:
        """Assert that ``function`` was enqueued (with exactly ``args`` / ``kwargs`` when
        given; exactly ``count`` times when given) and return the matching tasks.

        Tasks count whatever their status: one that already ran was still enqueued.
        """
        candidates = self.enqueued(function, queue=queue)
        matches = [t for t in candidates if _same_call(t, args, kwargs)]
        expected = "at least once" if count is None else f"{count} time(s)"
        if (count is None and not matches) or (count is not None and len(matches) != count):
            raise AssertionError(
                f"expected {function_name(function)}{_call_text(args, kwargs)} enqueued "
                f"{expected}, found {len(matches)}.\n{self._listing()}"
            )
        return matches

    def assert_not_enqueued(
        self,
        function: Callable[..., Any] | str,
        args: Sequence[Any] = _UNSET,
        kwargs: Mapping[str, Any] = _UNSET,
    ) -> None:
        """Assert that no task calls ``function`` (with these ``args`` / ``kwargs``, if given)."""
        matches = [t for t in self.enqueued(function) if _same_call(t, args, kwargs)]
        if matches:
            raise AssertionError(
                f"expected {function_name(function)}{_call_text(args, kwargs)} not enqueued, "
                f"found {len(matches)}.\n{self._listing()}"
            )

    def assert_nothing_enqueued(self) -> None:
        """Assert that the queue holds no task at all."""
        if self.enqueued():
            raise AssertionError(f"expected no tasks.\n{self._listing()}")

    def _listing(self) -> str:
        tasks = self.enqueued()
        if not tasks:
            return "The queue holds no task."
        lines = [f"The queue holds {len(tasks)} task(s):"]
        lines += [
            f"  {t.function_name}{_call_text(list(t.args), dict(t.kwargs))} [{t.status.value}]"
            for t in tasks[:20]
        ]
        if len(tasks) > 20:
            lines.append(f"  … and {len(tasks) - 20} more")
        return "\n".join(lines)


def _same_call(task: Task, args: Any, kwargs: Any) -> bool:
    return (args is _UNSET or tuple(task.args) == tuple(args)) and (
        kwargs is _UNSET or dict(task.kwargs) == dict(kwargs)
    )


def _call_text(args: Any, kwargs: Any) -> str:
    if args is _UNSET and kwargs is _UNSET:
        return ""
    parts = [repr(a) for a in (() if args is _UNSET else args)]
    parts += [f"{k}={v!r}" for k, v in ({} if kwargs is _UNSET else kwargs).items()]
    return f"({', '.join(parts)})"


class SitqTestWorker(Worker):
    """A `Worker` that can run everything pending and return (`drain`)."""

    __test__ = False

    def drain(self, timeout: float = 30.0) -> list[Result]:
        """Run every pending task (and those they enqueue) to its final result, retries
        included; return the results in the order the tasks ran.

        Tasks scheduled for later (``eta``) run now. Raises `TimeoutError` if pending tasks
        remain after ``timeout`` seconds (a task that keeps enqueuing more, for instance).
        """
        deadline = time.monotonic() + timeout
        results: list[Result] = []
        while True:
            pending = self._run_sync(
                self.backend.list_tasks(statuses=[TaskStatus.PENDING], limit=None)
            )
            if self.queues is not None:
                pending = [r for r in pending if r.queue in self.queues]
            if not pending:
                return results
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{len(pending)} task(s) still pending after draining for {timeout} s"
                )
            results += self._run_sync(self.process_tasks_async([r.id for r in pending]))

    def close(self) -> None:
        """Stop the worker if it runs and release its background event loop."""
        if self.is_running:
            self.stop()
        if self._portal is not None:
            self._portal.close()
            self._portal = None


def __getattr__(name: str) -> Any:
    """Serve the conformance kit's names for backends written against sitq 0.1."""
    if not name.startswith("_"):
        # imported on demand: the kit needs pytest and hypothesis, these helpers do not
        from . import conformance

        if name in conformance.__all__:
            return getattr(conformance, name)
    raise AttributeError(f"module 'sitq.testing' has no attribute {name!r}")


__all__ = ["SitqTestQueue", "SitqTestWorker"]
