"""Declared tasks end to end: ``@queue.task``, ``.options().enqueue``, handles, blueprints, the
registry and ``sitq tasks``, on real SQLite files with real workers (threads and processes).

The tasks live in a module written to a temporary folder and imported from there, as an
application's would be, so that workers (and child processes) find them by import.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import itertools
import json
import os
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import cloudpickle
import pytest

import sitq
from sitq.blueprints import Blueprint, SyncBlueprint
from sitq.errors import TaskFailed
from sitq.handles import AsyncTaskHandle, TaskHandle
from sitq.tasks import SyncTask

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_memory]

APP = """
import asyncio
from sitq import SyncTaskQueue
from sitq.blueprints import SyncBlueprint

queue = SyncTaskQueue("sqlite:///{db}")

@queue.task(queue="emails", priority=2, max_retries=0, timeout=30)
def notify(user, priority="low"):
    return f"{{user}}:{{priority}}"

@queue.task(name="shop.add")
async def add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b

@queue.task(max_retries=0)
def boom():
    raise ValueError("no stock")

library = SyncBlueprint()

@library.task(priority=7)
def square(n: int) -> int:
    return n * n
"""

_names = itertools.count()


@pytest.fixture
def load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., ModuleType]]:
    """``load(source, **fmt)``: write ``source`` as a fresh module in ``tmp_path``, import it."""
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded: list[ModuleType] = []

    def load(source: str = APP, **fmt: Any) -> ModuleType:
        name = f"declared_app_{next(_names)}"
        body = textwrap.dedent(source).format(db=tmp_path / f"{name}.db", **fmt)
        (tmp_path / f"{name}.py").write_text(body)
        module = importlib.import_module(name)
        loaded.append(module)
        return module

    yield load
    for module in loaded:
        queue = getattr(module, "queue", None)
        if queue is not None:
            queue.close()
        sys.modules.pop(module.__name__, None)


def run(queue: sitq.SyncTaskQueue, *ids: str, worker_type: str = "thread") -> None:
    """Run these tasks with a real worker on the queue's backend."""
    sitq.Worker(queue.backend, worker_type=worker_type).process_tasks(ids)


# -- calls and options -------------------------------------------------------------------------


def test_a_declared_task_is_still_a_plain_function(load: Callable[..., ModuleType]) -> None:
    app = load()
    assert app.notify("ann") == "ann:low"
    assert asyncio.run(app.add(1, 2)) == 3
    assert app.notify.__name__ == "notify" and app.notify.__module__ == app.__name__
    assert str(inspect.signature(app.notify)) == "(user, priority='low')"
    assert inspect.iscoroutinefunction(app.add) and not inspect.iscoroutinefunction(app.notify)


def test_priority_keyword_reaches_the_function(load: Callable[..., ModuleType]) -> None:
    app = load()
    handle = app.notify.enqueue("ann", priority=5)
    stored = app.queue.get_task(handle.id)
    assert stored.kwargs == {"priority": 5}
    assert (stored.queue, stored.priority, stored.max_retries) == ("emails", 2, 0)
    run(app.queue, handle.id)
    assert handle.result(timeout=10) == "ann:5"


def test_options_make_a_configured_copy(load: Callable[..., ModuleType]) -> None:
    app = load()
    urgent = app.notify.options(priority=9, queue="urgent", eta=timedelta(hours=1))
    handle = urgent.enqueue("bob", "high")
    stored = app.queue.get_task(handle.id)
    assert (stored.queue, stored.priority, stored.args) == ("urgent", 9, ("bob", "high"))
    assert stored.eta is not None and stored.eta > datetime.now(stored.eta.tzinfo)
    assert app.notify.task_options.priority == 2  # the task itself is unchanged
    assert urgent.options(priority=1).task_options.queue == "urgent"
    assert handle.status() is sitq.TaskStatus.PENDING
    assert handle.cancel() is True
    assert handle.status() is sitq.TaskStatus.CANCELLED
    with pytest.raises(TaskFailed, match="cancelled"):
        handle.result(timeout=0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"prio": 1}, "did you mean 'priority'"),
        ({"retry_delay": 2.0}, "Worker\\(retry_delay=...\\)"),
        ({"priority": "high"}, "priority must be an int"),
        ({"timeout": 0}, "timeout must be a number of seconds > 0"),
        ({"queue": ""}, "queue must be a non-empty string"),
        ({"eta": datetime(2030, 1, 1)}, "naive datetime"),
        ({"max_retries": -1}, "max_retries must be an int >= 0"),
    ],
)
def test_bad_options_are_refused_where_they_are_given(
    load: Callable[..., ModuleType], options: dict[str, Any], message: str
) -> None:
    app = load()
    with pytest.raises(sitq.errors.ConfigurationError, match=message):
        app.notify.options(**options)
    with pytest.raises(sitq.errors.ConfigurationError, match=message):
        app.queue.task(**options)
    with pytest.raises(sitq.errors.ConfigurationError, match=message):
        SyncBlueprint().task(**options)


def test_handles_report_results_and_failures(load: Callable[..., ModuleType]) -> None:
    app = load()
    added, failed = app.add.enqueue(2, b=3), app.boom.enqueue()
    assert isinstance(added, TaskHandle) and added != failed
    with pytest.raises(sitq.errors.ResultTimeout):
        added.result(timeout=0)
    run(app.queue, added.id, failed.id)
    assert added.result(timeout=10) == 5
    assert added.status() is sitq.TaskStatus.SUCCEEDED
    assert added.cancel() is False
    with pytest.raises(TaskFailed, match="no stock") as caught:
        failed.result(timeout=10)
    assert caught.value.status is sitq.TaskStatus.FAILED
    assert "ValueError" in (caught.value.traceback or "")


def test_the_async_queue_awaits_enqueue_and_handles(tmp_path: Path) -> None:
    async def main() -> None:
        async with sitq.TaskQueue(f"sqlite:///{tmp_path / 'a.db'}") as queue:

            @queue.task(priority=3)
            async def greet(name: str, priority: str = "normal") -> str:
                return f"{name} ({priority})"

            handle = await greet.enqueue("ann", priority="vip")
            assert isinstance(handle, AsyncTaskHandle)
            assert await handle.status() is sitq.TaskStatus.PENDING
            assert (await queue.get_task(handle.id)).priority == 3  # type: ignore[union-attr]
            await sitq.Worker(queue.backend).process_task_async(handle.id)
            assert await handle.result(timeout=10) == "ann (vip)"
            assert await handle.status() is sitq.TaskStatus.SUCCEEDED
            later = await greet.options(eta=timedelta(hours=1)).enqueue("bob")
            assert await later.cancel() is True
            with pytest.raises(TaskFailed):
                await later.result(timeout=0)

    asyncio.run(main())


# -- workers --------------------------------------------------------------------------------


def test_a_declared_task_pickles_by_reference(load: Callable[..., ModuleType]) -> None:
    app = load()
    assert pickle.loads(pickle.dumps(app.notify)) is app.notify
    assert cloudpickle.loads(cloudpickle.dumps(app.add)) is app.add

    def local(x: int) -> int:
        return x + 1

    inner = app.queue.task(name="local")(local)
    assert cloudpickle.loads(cloudpickle.dumps(inner))(1) == 2  # carried by value instead


@pytest.mark.parametrize("worker_type", ["async", "thread", "process"])
def test_every_worker_type_runs_declared_tasks(
    load: Callable[..., ModuleType], worker_type: str
) -> None:
    app = load()
    app.queue.register(app.library)
    handles = [app.notify.enqueue("cy", priority=1), app.add.enqueue(4, 5), app.square.enqueue(6)]
    run(app.queue, *(h.id for h in handles), worker_type=worker_type)
    assert [h.result(timeout=30) for h in handles] == ["cy:1", 9, 36]


def test_async_task_with_a_data_only_serializer(load: Callable[..., ModuleType]) -> None:
    app = load(APP.replace('"sqlite:///{db}"', '"sqlite:///{db}", serializer="json"'))
    handle = app.add.enqueue(20, 22)
    run(app.queue, handle.id)
    assert handle.result(timeout=10) == 42


# -- blueprints and the registry ----------------------------------------------------------------


def test_blueprint_tasks_bind_when_registered(
    load: Callable[..., ModuleType], tmp_path: Path
) -> None:
    app = load()
    assert app.square(3) == 9  # inline, before any registration
    with pytest.raises(sitq.errors.ConfigurationError, match=r"queue.register\(blueprint\)"):
        app.square.enqueue(3)
    app.queue.register(app.library)
    app.queue.register(app.library)  # again: nothing changes
    assert app.queue.tasks[f"{app.__name__}:square"] is app.square
    handle = app.square.enqueue(3)
    assert app.queue.get_task(handle.id).priority == 7
    other = sitq.SyncTaskQueue(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        with pytest.raises(sitq.errors.ConfigurationError, match="already registered"):
            other.register(app.library)
        app.queue.close()
        other.register(app.library)  # the first queue is closed: the tasks move
        assert other.get_task(app.square.enqueue(2).id) is not None
    finally:
        other.close()


def test_blueprint_flavour_must_match_the_queue(tmp_path: Path) -> None:
    async_queue = sitq.TaskQueue(f"sqlite:///{tmp_path / 'a.db'}")
    with sitq.SyncTaskQueue(f"sqlite:///{tmp_path / 's.db'}") as sync_queue:
        with pytest.raises(sitq.errors.ConfigurationError, match="Register it on a TaskQueue"):
            sync_queue.register(Blueprint())  # type: ignore[arg-type]
        with pytest.raises(sitq.errors.ConfigurationError, match="Register it on a SyncTaskQueue"):
            async_queue.register(SyncBlueprint())  # type: ignore[arg-type]
        with pytest.raises(sitq.errors.ConfigurationError, match=r"takes a sitq\.Blueprint"):
            sync_queue.register(object())  # type: ignore[arg-type]


def test_names_are_unique_per_queue(load: Callable[..., ModuleType]) -> None:
    app = load()
    assert list(app.queue.tasks) == [f"{app.__name__}:{n}" for n in ("notify",)] + [
        "shop.add",
        f"{app.__name__}:boom",
    ]
    with pytest.raises(TypeError):
        app.queue.tasks["x"] = app.notify  # read-only
    with pytest.raises(sitq.errors.ConfigurationError, match=r"two tasks are named 'shop\.add'"):

        @app.queue.task(name="shop.add")  # type: ignore[untyped-decorator]
        def other_add() -> None: ...

    with pytest.raises(sitq.errors.ConfigurationError, match="non-empty string"):
        app.queue.task(name="")
    assert app.queue.async_queue.tasks is app.queue.tasks  # one registry for both facades


def test_registry_resolves_checks_and_allows(load: Callable[..., ModuleType]) -> None:
    app = load()
    tasks = app.queue.tasks
    assert tasks.resolve("shop.add") is app.add.function
    assert tasks.resolve(f"{app.__name__}:add") is app.add.function  # the stored import path
    assert tasks.resolve("shop.nope") is None
    tasks.check_enqueue("shop.add")
    with pytest.raises(sitq.errors.ConfigurationError, match=r"Did you mean 'shop\.add'"):
        tasks.check_enqueue("shop.ad")
    empty = sitq.SyncTaskQueue("memory://")
    empty.tasks.check_enqueue("any.module:function")  # no declared tasks: no opinion
    assert tasks.allows("shop.add") and not tasks.allows("os:system")
    with pytest.raises(sitq.errors.PayloadError, match="declared tasks only"):
        tasks.check_path("os:system")
    tasks.check_defined(app.add, f"{app.__name__}:add")
    with pytest.raises(sitq.errors.PayloadError):
        tasks.check_defined(print, "shop.add")


def test_the_registry_is_per_queue_and_typed(load: Callable[..., ModuleType]) -> None:
    app = load()
    assert isinstance(app.notify, SyncTask)
    assert repr(app.notify) == f"<SyncTask {app.__name__}:notify>"
    assert "priority=9" in repr(app.notify.options(priority=9))


# -- the command ---------------------------------------------------------------------------------


def test_sitq_tasks_lists_declared_tasks(load: Callable[..., ModuleType], tmp_path: Path) -> None:
    app = load()

    def sitq_tasks(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sitq", "tasks", f"{app.__name__}:queue", *args],
            cwd=tmp_path,
            env={k: v for k, v in os.environ.items() if not k.startswith("SITQ_")},
            capture_output=True,
            text=True,
            timeout=60,
        )

    listed = sitq_tasks("--json")
    assert listed.returncode == 0, listed.stderr
    by_name = {t["name"]: t for t in json.loads(listed.stdout)}
    assert by_name["shop.add"]["function"] == f"{app.__name__}:add"
    assert by_name[f"{app.__name__}:notify"]["options"] == {
        "queue": "emails",
        "priority": 2,
        "eta": None,
        "max_retries": 0,
        "timeout": 30,
        "dedupe_key": None,
        "limits": [],
        "unique_for": None,
        "unique_states": None,
        "meta": {},
        "depends_on": [],
        "allow_failure": False,
        "pass_results": None,
    }
    table = sitq_tasks()
    assert table.returncode == 0, table.stderr
    assert "shop.add" in table.stdout and "emails" in table.stdout


def test_the_test_queue_keeps_its_tasks_method(tmp_path: Path) -> None:
    from sitq.testing import SitqTestQueue

    with SitqTestQueue(f"sqlite:///{tmp_path / 't.db'}") as queue:

        @queue.task(priority=4)
        def ship(order: int) -> str:
            return f"shipped {order}"

        ship.enqueue(7)
        (stored,) = queue.assert_enqueued(ship, (7,))
        assert stored.priority == 4
        assert len(queue.enqueued()) == 1
        assert list(queue.tasks) == list(queue.async_queue.tasks) == [ship.name]


# -- the registry at the call and in the worker ------------------------------------------------


def test_an_unknown_name_is_refused_at_the_call(load: Callable[..., ModuleType]) -> None:
    app = load()
    with pytest.raises(sitq.errors.ConfigurationError, match="no declared task is named"):
        app.queue.enqueue(f"{app.__name__}:notfy", "ann")
    with pytest.raises(sitq.errors.ConfigurationError, match=r"shop\.add"):
        app.queue.enqueue("shop.ad", 1, 2)
    assert sum(app.queue.counts().values()) == 0  # nothing stored
    app.queue.enqueue("shop.add", 1, 2)  # a declared name
    app.queue.enqueue(f"{app.__name__}:notify", "ann")  # a declared task's import path


def test_a_queue_without_declared_tasks_takes_any_import_path(tmp_path: Path) -> None:
    with sitq.SyncTaskQueue(f"sqlite:///{tmp_path / 'plain.db'}") as queue:
        task_id = queue.enqueue("os.path:join", "a", "b")
        sitq.Worker(queue).process_task(task_id)
        assert queue.get_result(task_id, timeout=10).value == os.path.join("a", "b")


def test_a_worker_resolves_a_declared_name(load: Callable[..., ModuleType]) -> None:
    app = load()
    task_id = app.queue.enqueue("shop.add", 2, 3)  # a name no import finds
    assert app.queue.get_task(task_id).function is app.add.function  # resolved by name
    sitq.Worker(app.queue).process_task(task_id)
    assert app.queue.get_result(task_id, timeout=10).value == 5


def test_allowed_functions_declared_runs_declared_tasks_only(
    load: Callable[..., ModuleType],
) -> None:
    app = load()
    worker = sitq.Worker(app.queue, allowed_functions="declared", log_errors=False)
    declared = app.notify.enqueue("ann")
    worker.process_task(declared.id)
    assert declared.result(timeout=10) == "ann:low"
    with sitq.SyncTaskQueue(f"sqlite:///{app.queue.backend.path}") as undeclared:
        stray = undeclared.enqueue("os.path:join", "a", "b")
    result = worker.process_task(stray)
    assert result.status is sitq.TaskStatus.DEAD
    assert "declared" in (result.error or "")


def test_headers_go_through_options_and_the_decorator(tmp_path: Path) -> None:
    with sitq.SyncTaskQueue(f"sqlite:///{tmp_path / 'meta.db'}") as queue:

        @queue.task(meta={"team": "billing"})
        def headers() -> dict[str, Any]:
            return dict(sitq.current_task().meta)

        plain = headers.enqueue()
        tagged = headers.options(meta={"team": "search", "trace": [1, 2]}).enqueue()
        with pytest.raises(sitq.errors.ConfigurationError, match="meta"):
            headers.options(meta={1: "x"})  # type: ignore[dict-item]
        sitq.Worker(queue, worker_type="thread").process_tasks([plain.id, tagged.id])
        assert plain.result(timeout=10) == {"team": "billing"}
        assert tagged.result(timeout=10) == {"team": "search", "trace": [1, 2]}
        assert headers.task_options.meta == {"team": "billing"}  # options() made a copy
