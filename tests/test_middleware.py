"""Task middleware (``sitq_task_wrap``) and the enqueue headers hook (``sitq_enqueue_headers``),
on real workers of each type and real backends."""

from __future__ import annotations

import asyncio
import contextvars
from pathlib import Path
from typing import Any

import pytest
from test_worker_helpers import add, backend_fixture

import sitq
from sitq import TaskQueue, TaskStatus, Worker, hookimpl
from sitq.backend import Backend
from sitq.errors import MiddlewareError, PluginError
from sitq.plugins import PluginManager

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_memory]

backend = backend_fixture()

#: Set by a middleware before ``call_next``, read by the task.
request_scope: contextvars.ContextVar[str] = contextvars.ContextVar("request_scope", default="-")


def read_scope() -> str:
    """A task that returns what the middleware put in its context."""
    return request_scope.get()


async def async_read_scope() -> str:
    """`read_scope`, as a coroutine function."""
    return request_scope.get()


def boom() -> None:
    """A task that fails."""
    raise ValueError("task exploded")


class Recorder:
    """A middleware that records what it sees, tagged with ``name``."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    @hookimpl
    async def sitq_task_wrap(self, task: sitq.Task, call_next: Any) -> Any:
        self.log.append(f"{self.name} before {task.function_name.rsplit(':', 1)[-1]}")
        try:
            return await call_next()
        finally:
            self.log.append(f"{self.name} after")


def run_tasks(
    backend: Backend, plugins: list[object], *calls: Any, worker_type: str = "async"
) -> list[sitq.Result]:
    """Enqueue ``calls`` (tuples ``(function, *args)``) and run them with a worker that has
    ``plugins``; return their results."""

    async def main() -> list[sitq.Result]:
        manager = PluginManager(autoload=False, plugins=plugins)
        queue = TaskQueue(backend, plugins=manager)
        ids = [await queue.enqueue(call[0], *call[1:]) for call in calls]
        worker = Worker(queue, plugins=manager, worker_type=worker_type, max_retries=0)
        await worker.process_tasks_async(ids)
        results = [await queue.get_result(task_id) for task_id in ids]
        await queue.close()
        return results

    return asyncio.run(main())


# -- the chain -------------------------------------------------------------------------------


def test_first_registered_is_outermost(backend: Backend) -> None:
    log: list[str] = []
    (result,) = run_tasks(backend, [Recorder("outer", log), Recorder("inner", log)], (add, 2, 3))
    assert result.value == 5
    assert log == ["outer before add", "inner before add", "inner after", "outer after"]


def test_tryfirst_goes_outside_registration_order(backend: Backend) -> None:
    log: list[str] = []

    class First:
        @hookimpl(tryfirst=True)
        async def sitq_task_wrap(self, call_next: Any) -> Any:
            log.append("first")
            return await call_next()

    run_tasks(backend, [Recorder("a", log), First()], (add, 1, 1))
    assert log[:2] == ["first", "a before add"]


@pytest.mark.parametrize("worker_type", ["async", "thread", "process"])
def test_middleware_sees_the_task_and_wraps_every_worker_type(
    backend: Backend, worker_type: str, tmp_path: Path
) -> None:
    seen: list[tuple[str, int, str, str]] = []

    class Inspect:
        @hookimpl
        async def sitq_task_wrap(self, task: sitq.Task, call_next: Any, worker: Worker) -> Any:
            current = sitq.current_task()  # the chain runs in the task's context
            assert current.task_id == task.id and worker.worker_id == current.worker_id
            seen.append((task.id, task.attempts, task.queue, worker_type))
            return await call_next()

    (result,) = run_tasks(backend, [Inspect()], (add, 20, 22), worker_type=worker_type)
    assert result.value == 42 and seen == [(result.task_id, 1, "default", worker_type)]


@pytest.mark.parametrize(
    ("worker_type", "function"), [("async", async_read_scope), ("thread", read_scope)]
)
def test_context_set_by_middleware_reaches_the_function(
    backend: Backend, worker_type: str, function: Any
) -> None:
    class Scope:
        @hookimpl
        async def sitq_task_wrap(self, task: sitq.Task, call_next: Any) -> Any:
            token = request_scope.set(f"scope-{task.id}")
            try:
                return await call_next()
            finally:
                request_scope.reset(token)

    (result,) = run_tasks(backend, [Scope()], (function,), worker_type=worker_type)
    assert result.value == f"scope-{result.task_id}"


def test_a_middleware_that_does_not_call_next_returns_the_result(backend: Backend) -> None:
    class Cached:
        @hookimpl
        def sitq_task_wrap(self) -> Any:  # a plain function works too
            return "from cache"

    (result,) = run_tasks(backend, [Cached()], (boom,))
    assert result.is_success and result.value == "from cache"


def test_the_task_error_passes_through_unchanged(backend: Backend) -> None:
    log: list[str] = []
    (result,) = run_tasks(backend, [Recorder("a", log), Recorder("b", log)], (boom,))
    assert result.status is TaskStatus.FAILED
    assert result.error == "ValueError: task exploded"
    assert log[-2:] == ["b after", "a after"]


def test_a_failing_middleware_fails_the_task_naming_the_plugin(backend: Backend) -> None:
    class Broken:
        @hookimpl
        async def sitq_task_wrap(self, call_next: Any) -> Any:
            raise KeyError("no session")

    async def main() -> None:
        manager = PluginManager(autoload=False)
        manager.register(Broken(), name="dbsession")
        queue = TaskQueue(backend, plugins=manager)
        worker = Worker(queue, plugins=manager, max_retries=0)
        first = await queue.enqueue(add, 1, 2)
        second = await queue.enqueue(add, 3, 4)
        results = await worker.process_tasks_async([first, second])
        for result in results:  # every task fails; the worker goes on
            assert result.status is TaskStatus.FAILED
            assert result.error is not None
            assert result.error.startswith("MiddlewareError: the sitq_task_wrap middleware")
            assert "'dbsession'" in result.error and "KeyError" in result.error
        stored = await queue.get_result(first)
        assert stored.traceback is not None and "no session" in stored.traceback
        await queue.close()

    asyncio.run(main())


def test_a_middleware_that_replaces_the_task_error_is_named(backend: Backend) -> None:
    class Translate:
        @hookimpl
        async def sitq_task_wrap(self, call_next: Any) -> Any:
            try:
                return await call_next()
            except ValueError as exc:
                raise RuntimeError("translated") from exc

    (result,) = run_tasks(backend, [Translate()], (boom,))
    assert result.error is not None and result.error.startswith("MiddlewareError")
    assert "RuntimeError: translated" in result.error


def test_calling_next_twice_fails_the_task(backend: Backend) -> None:
    class Twice:
        @hookimpl
        async def sitq_task_wrap(self, call_next: Any) -> Any:
            await call_next()
            return await call_next()

    (result,) = run_tasks(backend, [Twice()], (add, 1, 1))
    assert result.status is TaskStatus.FAILED
    assert result.error is not None and "call_next() was called twice" in result.error


def test_middleware_error_is_a_plugin_error() -> None:
    assert issubclass(MiddlewareError, PluginError)


def test_no_middleware_means_no_chain() -> None:
    assert PluginManager(autoload=False).lifecycle().middleware is None
    assert PluginManager(autoload=False).lifecycle().headers is None


def test_worker_callbacks_and_middleware_together(backend: Backend) -> None:
    log: list[str] = []

    async def main() -> None:
        manager = PluginManager(autoload=False, plugins=[Recorder("m", log)])
        queue = TaskQueue(backend, plugins=manager)
        task_id = await queue.enqueue(add, 2, 2)
        worker = Worker(queue, on_success=lambda task, result: log.append("on_success"))
        await worker.process_task_async(task_id)
        await queue.close()

    asyncio.run(main())
    assert log == ["m before add", "m after", "on_success"]


# -- headers at enqueue ----------------------------------------------------------------------


class AddHeaders:
    """Adds ``headers`` to every task."""

    def __init__(self, headers: Any) -> None:
        self.headers = headers

    @hookimpl
    def sitq_enqueue_headers(self, task: sitq.Task) -> Any:
        return self.headers


def test_enqueue_headers_are_stored_and_the_task_keys_win(backend: Backend) -> None:
    async def main() -> None:
        plugins = [AddHeaders({"tenant": "a", "trace": "1"}), AddHeaders({"trace": "2"})]
        queue = TaskQueue(backend, plugins=PluginManager(autoload=False, plugins=plugins))
        plain = await queue.enqueue(add, 1, 2)
        own = await queue.enqueue(sitq.Task(add, (1, 2), meta={"tenant": "mine"}))
        many = await queue.enqueue_many([(add, (1, 2)), add, sitq.Task(add, (3, 4))])
        assert (await queue.get_task(plain)).meta == {"tenant": "a", "trace": "2"}  # type: ignore[union-attr]
        assert (await queue.get_task(own)).meta == {"tenant": "mine", "trace": "2"}  # type: ignore[union-attr]
        for task_id in many:
            assert (await queue.get_task(task_id)).meta == {"tenant": "a", "trace": "2"}  # type: ignore[union-attr]
        await queue.close()

    asyncio.run(main())


def test_enqueue_headers_reach_the_middleware_and_the_enqueued_hook(backend: Backend) -> None:
    seen: list[Any] = []

    class Both:
        @hookimpl
        def sitq_task_enqueued(self, task: sitq.Task) -> None:
            seen.append(("enqueued", dict(task.meta)))

        @hookimpl
        async def sitq_task_wrap(self, task: sitq.Task, call_next: Any) -> Any:
            seen.append(("wrap", dict(task.meta)))
            return await call_next()

    (result,) = run_tasks(backend, [AddHeaders({"request": "r1"}), Both()], (add, 1, 1))
    assert result.value == 2
    assert seen == [("enqueued", {"request": "r1"}), ("wrap", {"request": "r1"})]


def test_declared_tasks_get_the_headers(backend: Backend) -> None:
    async def main() -> None:
        queue = TaskQueue(
            backend, plugins=PluginManager(autoload=False, plugins=[AddHeaders({"h": 1})])
        )

        @queue.task
        def double(x: int) -> int:
            return 2 * x

        handle = await double.enqueue(4)
        other = await double.options(priority=3).enqueue(5)
        for task_id in (handle.id, other.id):
            assert (await queue.get_task(task_id)).meta == {"h": 1}  # type: ignore[union-attr]
        await queue.close()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("returned", "problem"),
    [
        (["not", "a", "mapping"], "returned list"),
        ({1: "x"}, "returned bad headers"),
        ({"x": object()}, "returned bad headers"),
    ],
)
def test_bad_headers_fail_the_enqueue_naming_the_plugin(
    backend: Backend, returned: Any, problem: str
) -> None:
    async def main() -> None:
        manager = PluginManager(autoload=False)
        manager.register(AddHeaders(returned), name="tagger")
        queue = TaskQueue(backend, plugins=manager)
        with pytest.raises(PluginError, match=problem) as caught:
            await queue.enqueue(add, 1, 2)
        assert "'tagger'" in str(caught.value)
        assert sum((await queue.backend.counts()).values()) == 0
        await queue.close()

    asyncio.run(main())


def test_a_raising_or_async_headers_hook_fails_the_enqueue(backend: Backend) -> None:
    class Raising:
        @hookimpl
        def sitq_enqueue_headers(self) -> Any:
            raise LookupError("no request")

    class Async:
        @hookimpl
        async def sitq_enqueue_headers(self) -> Any:
            return {}

    async def main() -> None:
        for plugin, problem in ((Raising(), "raised LookupError"), (Async(), "awaitable")):
            queue = TaskQueue(backend, plugins=PluginManager(autoload=False, plugins=[plugin]))
            with pytest.raises(PluginError, match=problem):
                await queue.enqueue(add, 1, 2)
            with pytest.raises(PluginError, match=problem):
                await queue.enqueue_many([add])
            await queue.close()

    asyncio.run(main())
