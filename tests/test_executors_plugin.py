"""Executors are registered through the ``sitq_executors`` hook, the built-in ones included: a
third-party executor is chosen with ``worker_type`` like ``"thread"``, unknown and duplicate
names get clear errors, and the process executor is imported only when chosen."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sitq import SyncTaskQueue, Worker, hookimpl
from sitq.errors import ConfigurationError, PluginError
from sitq.executors import AsyncExecutor, Call, Executor, make_executor
from sitq.plugins import PluginManager, get_plugin_manager
from sitq.registry import ExecutorType

pytestmark = [pytest.mark.needs_memory]

PythonRun = Callable[..., subprocess.CompletedProcess[str]]


class CountingExecutor(AsyncExecutor):
    """A third-party executor: the async one, counting the calls it runs."""

    kind = "mine"
    calls: list[str] = []

    async def run(self, call: Call) -> Any:
        CountingExecutor.calls.append(call.task_id)
        return await super().run(call)


class MinePlugin:
    """Registers `CountingExecutor` as ``worker_type="mine"``."""

    @hookimpl
    def sitq_executors(self) -> list[ExecutorType]:
        return [ExecutorType("mine", load=CountingExecutor)]


def add(a: int, b: int) -> int:
    return a + b


@pytest.fixture
def mine_installed() -> Iterator[None]:
    """`MinePlugin` registered on the process-wide manager, as an installed plugin would be."""
    plugin = MinePlugin()
    manager = get_plugin_manager()
    manager.register(plugin, name="mine-plugin")
    CountingExecutor.calls.clear()
    try:
        yield
    finally:
        manager.unregister(plugin)


def test_a_plugins_executor_runs_the_tasks_of_its_worker_type(mine_installed: None) -> None:
    queue = SyncTaskQueue("memory://")
    try:
        task_id = queue.enqueue(add, 2, 3)
        worker = Worker(queue, worker_type="mine", max_workers=3)
        assert worker.process_task(task_id).value == 5
        assert CountingExecutor.calls == [task_id]
    finally:
        queue.close()


def test_a_worker_uses_the_executors_of_its_own_plugin_manager() -> None:
    plugins = PluginManager(plugins=[MinePlugin()])
    queue = SyncTaskQueue("memory://", plugins=plugins)
    try:
        task_id = queue.enqueue(add, 1, 1)
        assert Worker(queue, worker_type="mine").process_task(task_id).value == 2
    finally:
        queue.close()


def test_make_executor_builds_the_registered_class_with_the_workers_options() -> None:
    plugins = PluginManager(autoload=False, plugins=[MinePlugin()])
    assert sorted(plugins.executors) == ["async", "mine", "process", "thread"]
    executor = make_executor("mine", 3, max_memory_mb=64.0, plugins=plugins)
    assert type(executor) is CountingExecutor
    assert (executor.max_workers, executor.max_memory_mb) == (3, 64.0)
    assert type(make_executor("thread", 2, plugins=plugins)).kind == "thread"


def test_an_unknown_worker_type_lists_the_choices() -> None:
    plugins = PluginManager(autoload=False)
    expected = r"unknown worker_type 'x'; choose one of: async, process, thread$"
    with pytest.raises(ConfigurationError, match=expected):
        make_executor("x", 1, plugins=plugins)
    with pytest.raises(ConfigurationError, match=expected):
        Worker(SyncTaskQueue("memory://"), worker_type="x")


def test_two_plugins_registering_one_worker_type_is_a_plugin_error() -> None:
    class Thread:
        @hookimpl
        def sitq_executors(self) -> list[ExecutorType]:
            return [ExecutorType("thread", load=CountingExecutor)]

    plugins = PluginManager(autoload=False)
    plugins.register(Thread(), name="other-threads")
    with pytest.raises(
        PluginError, match=r"executor 'thread': 'sitq.executors' and 'other-threads'"
    ):
        make_executor("thread", 1, plugins=plugins)


def test_a_loader_returning_something_else_than_an_executor_class_is_named() -> None:
    class Broken:
        @hookimpl
        def sitq_executors(self) -> list[ExecutorType]:
            return [ExecutorType("broken", load=lambda: dict)]  # type: ignore[arg-type,return-value]

    plugins = PluginManager(autoload=False, plugins=[Broken()])
    with pytest.raises(TypeError, match=r"worker_type 'broken' loaded <class 'dict'>"):
        make_executor("broken", 1, plugins=plugins)
    assert issubclass(plugins.executor_class("async"), Executor)


def test_the_process_executor_is_imported_only_when_chosen(python_run: PythonRun) -> None:
    done = python_run(
        """
        import sys
        from sitq import SyncTaskQueue, Worker

        def add(a, b):
            return a + b

        if __name__ == "__main__":
            queue = SyncTaskQueue("memory://")
            for worker_type in ("async", "thread"):
                task_id = queue.enqueue(add, 1, 2)
                assert Worker(queue, worker_type=worker_type).process_task(task_id).value == 3
            assert "sitq.processes" not in sys.modules, "imported without being chosen"
            Worker(queue, worker_type="process")
            from sitq.executors import make_executor
            assert type(make_executor("process", 1)).__module__ == "sitq.processes"
            queue.close()
            print("ok")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
