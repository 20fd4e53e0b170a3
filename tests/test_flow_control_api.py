"""Flow control through the user API (`TaskQueue.limit`, ``limits=`` / ``unique_for=`` /
``unique_states=`` options, pause and resume) and the ``sitq limits`` / ``pause`` / ``resume``
/ ``status`` commands: bad input refused at the call, options reaching the stored record,
declared rules stored for every worker, and a real worker held to a limit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sitq import SyncTaskQueue, TaskQueue, TaskStatus, Worker
from sitq.backend import Capability
from sitq.cli import cli
from sitq.errors import ConfigurationError
from sitq.flow_control import LimitRule
from sitq.task import Task
from sitq.unique import UNIQUE_PRESETS
from sitq_memory import MemoryBackend

pytestmark = [pytest.mark.needs_memory, pytest.mark.needs_sqlite]


class PlainMemoryBackend(MemoryBackend):
    """A real memory store that does not declare flow control (as a third-party backend)."""

    capabilities = MemoryBackend.capabilities - {Capability.FLOW_CONTROL}


def charge(order_id: int) -> int:
    """A task for the tests."""
    return order_id


_running = {"now": 0, "most": 0}


async def one_at_a_time(n: int) -> int:
    """Counts how many of its kind run at once (the limit must keep it at 1)."""
    _running["now"] += 1
    _running["most"] = max(_running["most"], _running["now"])
    await asyncio.sleep(0.01)
    _running["now"] -= 1
    return n


# -- bad input, refused at the call ------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "sets neither a rate nor a concurrency"),
        ({"rate": "fast"}, "cannot read rate 'fast'"),
        ({"rate": "10/day"}, "cannot read rate"),
        ({"rate": "10/s", "burst": 0}, "burst needs a rate and must be >= 1"),
        ({"burst": 5, "concurrency": 1}, "burst needs a rate"),
        ({"concurrency": 0}, "concurrency must be an int >= 1"),
        ({"concurrency": 1.5}, "concurrency must be an int >= 1"),
    ],
)
def test_a_bad_limit_is_refused_where_it_is_declared(options: dict[str, Any], message: str) -> None:
    queue = TaskQueue("memory://")
    with pytest.raises(ConfigurationError, match=message):
        queue.limit("stripe", **options)


@pytest.mark.parametrize("pattern", ["", " stripe", "ten*ant:*", "*:x"])
def test_a_bad_pattern_is_refused(pattern: str) -> None:
    with pytest.raises(ConfigurationError, match="limit"):
        TaskQueue("memory://").limit(pattern, concurrency=1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"limits": "stripe"}, r"is text; give a list of keys: limits=\['stripe'\]"),
        ({"limits": ["tenant:*"]}, "declare families with queue.limit"),
        ({"limits": [""]}, "non-empty text"),
        ({"limits": 3}, "must be a list of keys"),
        ({"unique_for": 60}, "give the task a dedupe_key too"),
        ({"unique_states": "successful"}, "give the task a dedupe_key too"),
        ({"dedupe_key": "k", "unique_for": -1}, "unique_for must be a timedelta"),
        ({"dedupe_key": "k", "unique_for": timedelta(0)}, "unique_for must be"),
        ({"dedupe_key": "k", "unique_states": "nope"}, "names no task status"),
        ({"dedupe_key": "k", "unique_states": []}, "names no task status"),
        ({"dedupe_key": "k", "unique_states": ["pending", "later"]}, "names no task status"),
    ],
)
def test_bad_task_options_are_refused_at_options(options: dict[str, Any], message: str) -> None:
    queue = TaskQueue("memory://")
    declared = queue.task(charge)
    with pytest.raises(ConfigurationError, match=message):
        declared.options(**options)
    with pytest.raises(ConfigurationError, match=message):
        queue.task(**options)(charge)
    with pytest.raises(ConfigurationError, match=message):
        Task(function=charge, args=(1,), **options)


def test_a_backend_without_flow_control_is_named_at_the_call() -> None:
    queue = TaskQueue(PlainMemoryBackend())
    with pytest.raises(ConfigurationError, match=r"queue\.limit.*Capability\.FLOW_CONTROL"):
        queue.limit("stripe", rate="1/s")
    declared = queue.task(limits=["stripe"])(charge)

    async def use() -> None:
        with pytest.raises(ConfigurationError, match="a task with limits"):
            await declared.enqueue(1)
        with pytest.raises(ConfigurationError, match="unique_for"):
            await queue.enqueue(Task(function=charge, args=(1,), dedupe_key="k", unique_for=9))
        with pytest.raises(ConfigurationError, match="pausing a queue"):
            await queue.pause("emails")
        assert await queue.counts() == {s: 0 for s in TaskStatus}, "something was stored"

    asyncio.run(use())


# -- options reach the stored record -----------------------------------------------------------


def test_options_reach_the_record() -> None:
    async def use() -> None:
        async with TaskQueue("memory://") as queue:
            declared = queue.task(limits=["stripe", "stripe"])(charge)
            plain = await declared.enqueue(1)
            mine = declared.options(
                limits=["stripe", "tenant:7"],
                dedupe_key="order:2",
                unique_for=timedelta(hours=1),
                unique_states="successful",
            )
            handle = await mine.enqueue(2)
            listed = declared.options(dedupe_key="x", unique_states=["pending", TaskStatus.RUNNING])
            other = await listed.enqueue(3)
            records = [await queue.backend.get_task(h.id) for h in (plain, handle, other)]
            assert [r.limits for r in records if r] == [
                ("stripe",),
                ("stripe", "tenant:7"),
                ("stripe",),
            ]
            first, second, third = (r for r in records if r)
            assert (first.unique_for, first.unique_states) == (None, None)
            assert second.unique_for == 3600.0
            assert second.unique_states == UNIQUE_PRESETS["successful"]
            assert third.unique_states == frozenset({TaskStatus.PENDING, TaskStatus.RUNNING})
            task = await queue.get_task(handle.id)
            assert task is not None and tuple(task.limits) == ("stripe", "tenant:7")

    asyncio.run(use())


def test_a_duplicate_inside_the_period_gets_the_stored_handle() -> None:
    async def use() -> None:
        async with TaskQueue("memory://") as queue:
            report = queue.task(charge).options(dedupe_key="daily", unique_for=3600)
            first = await report.enqueue(1)
            again = await report.enqueue(2)
            assert again.id == first.id
            assert sum((await queue.counts()).values()) == 1

    asyncio.run(use())


# -- declared rules are stored for every worker ------------------------------------------------


def test_declared_rules_are_stored_at_connect_and_after() -> None:
    async def use() -> None:
        backend = MemoryBackend()
        queue = TaskQueue(backend)
        stripe = queue.limit("stripe", rate="120/m", burst=5)
        assert stripe == LimitRule("stripe", rate=2.0, burst=5, concurrency=None)
        await queue.connect()
        assert await backend.limits() == [stripe]
        tenants = queue.limit("tenant:*", concurrency=2)
        assert await queue.limits() == [stripe, tenants], "declared once connected"
        again = queue.limit("stripe", rate=10)
        assert await queue.limits() == [again, tenants], "a new declaration replaces"
        assert await queue.delete_limits("stripe", "missing") == 1
        assert await TaskQueue(backend).limits() == [tenants], "another queue reads them"
        await queue.close()
        await backend.close()

    asyncio.run(use())


def test_pause_and_resume() -> None:
    async def use() -> None:
        async with TaskQueue("memory://") as queue:
            await queue.pause("emails")
            await queue.pause("emails")
            assert await queue.paused_queues() == {"emails"}
            await queue.resume("emails")
            await queue.resume("never-paused")
            assert await queue.paused_queues() == set()
            with pytest.raises(ConfigurationError, match="queue must be a non-empty string"):
                await queue.pause("")

    asyncio.run(use())


def test_the_sync_queue_has_the_same_surface() -> None:
    with SyncTaskQueue("memory://") as queue:
        rule = queue.limit("tenant:*", concurrency=1)
        assert queue.limits() == [rule], "declared on a connected queue: stored at once"
        declared = queue.task(charge)
        declared.options(limits=["tenant:1"]).enqueue(1)
        declared.options(limits=["tenant:1"]).enqueue(2)
        (state,) = queue.limit_states()
        assert (state.key, state.running, state.waiting) == ("tenant:1", 0, 2)
        queue.pause("default")
        assert queue.paused_queues() == {"default"}
        queue.resume("default")
        assert queue.delete_limits("tenant:*") == 1


def test_a_worker_keeps_to_a_concurrency_limit() -> None:
    """A real worker with 4 slots runs tasks holding a key of concurrency 1 one at a time."""
    _running.update(now=0, most=0)

    async def use() -> None:
        backend = MemoryBackend()
        queue = TaskQueue(backend)
        queue.limit("solo", concurrency=1)
        ids = [
            await queue.enqueue(Task(function=one_at_a_time, args=(n,), limits=["solo"]))
            for n in range(6)
        ]
        worker = Worker(queue, max_concurrency=4, poll_interval=0.05, scheduler=False)
        serving = asyncio.create_task(worker.start())
        try:
            results = [await queue.get_result(i, timeout=60) for i in ids]
        finally:
            await worker.stop()
            await serving
        assert [r.value for r in results] == list(range(6))
        await backend.close()

    asyncio.run(use())
    assert _running["most"] == 1, f"{_running['most']} tasks holding 'solo' ran at once"


# -- the commands ------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL the commands open, kept alive (a named memory store lives while a backend
    of it does) with tasks and rules in it."""
    url = f"sqlite:///{tmp_path / 'tasks.db'}" if request.param == "sqlite" else "memory://cli"
    queue = SyncTaskQueue(url)
    queue.limit("stripe", rate="100/s", burst=20)
    queue.limit("tenant:*", concurrency=2)
    declared = queue.task(charge)
    declared.options(limits=["stripe", "tenant:1"]).enqueue(1)
    declared.options(limits=["tenant:1"], queue="emails").enqueue(2)
    try:
        yield url
    finally:
        queue.close()


def run(*args: str) -> Any:
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_sitq_limits(store: str) -> None:
    rows = json.loads(run("limits", "-b", store, "--json"))
    assert rows == [
        {
            "key": "stripe",
            "rule": "stripe",
            "rate": 100.0,
            "burst": 20.0,
            "tokens": pytest.approx(20.0),
            "concurrency": None,
            "running": 0,
            "waiting": 1,
        },
        {
            "key": "tenant:1",
            "rule": "tenant:*",
            "rate": None,
            "burst": None,
            "tokens": None,
            "concurrency": 2,
            "running": 0,
            "waiting": 2,
        },
    ]
    table = run("limits", "-b", store)
    assert "100/s" in table and "tenant:1" in table and "tenant:*" in table


def test_sitq_pause_resume_and_status(store: str) -> None:
    assert "queue emails paused" in run("pause", "emails", "-b", store)
    status = json.loads(run("status", "-b", store, "--json"))
    assert status["paused_queues"] == ["emails"]
    assert "emails (paused)" in run("status", "-b", store)
    assert "queue emails resumed" in run("resume", "emails", "-b", store)
    assert json.loads(run("status", "-b", store, "--json"))["paused_queues"] == []
