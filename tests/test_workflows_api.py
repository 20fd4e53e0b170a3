"""Workflows through the user's API: ``task.s()``, `sitq.chain`, `sitq.group`, `sitq.chord`
and ``depends_on``, enqueued on a queue and run by a real `Worker` (memory and an SQLite
file), their results, statuses and cancellation, and the errors of bad input."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

import sitq
from sitq import ParentFailed, TaskStatus
from sitq.backend import Capability
from sitq.errors import ConfigurationError, TaskFailed
from sitq.workflow_state import PARENT_FAILED_PREFIX, PASS_RESULTS_HEADER
from sitq.workflows import AsyncWorkflow, Workflow, plan

pytestmark = [pytest.mark.needs_memory, pytest.mark.needs_sqlite]

#: Bound on waiting for a workflow in these tests (a hang fails the test, never the run).
WAIT = 30.0

queue = sitq.TaskQueue("memory://workflows-api-tests")


@queue.task()
def add(x: int, y: int) -> int:
    return x + y


@queue.task()
def double(x: int) -> int:
    return 2 * x


@queue.task()
def total(values: list[int]) -> int:
    return sum(values)


@queue.task(max_retries=0)
def boom(x: Any = None) -> int:
    raise ValueError("boom")


@queue.task()
def seen(*args: Any) -> list[str]:
    """What it received, as text (a `ParentFailed` shows as its status)."""
    return [a.status.value if isinstance(a, ParentFailed) else repr(a) for a in args]


@queue.task()
async def forever() -> None:
    """Runs until cancelled."""
    await asyncio.Event().wait()


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, WAIT * 2))


async def _with_worker(body: Any, worker_type: str = "async") -> Any:
    """``body()`` while a worker serves ``queue`` on this loop."""
    # a short grace: tests leave `forever` members running, cancelled in the store only
    w = sitq.Worker(
        queue, worker_type=worker_type, max_workers=4, poll_interval=0.05, graceful_shutdown=1.0
    )
    serving = asyncio.create_task(w.start())
    try:
        return await body()
    finally:
        await w.stop()
        await serving


# -- shapes and results ---------------------------------------------------------------------


@pytest.mark.parametrize("worker_type", ["async", "thread", "process"])
def test_a_chain_passes_each_result_to_the_next_step(worker_type: str) -> None:
    """Every executor receives the parents' results (a child process gets the call with
    them, not the stored payload)."""

    async def body() -> None:
        wf = await queue.enqueue(sitq.chain(add.s(1, 2), double.s(), add.s(10)))
        assert isinstance(wf, AsyncWorkflow) and len(wf.task_ids) == 3
        assert await wf.result(timeout=WAIT) == 16  # (1 + 2) * 2, then add(6, 10)
        assert await wf.status() is TaskStatus.SUCCEEDED
        summary = await wf.summary()
        assert (summary.done, summary.total) == (3, 3)

    run(_with_worker(body, worker_type))


def test_a_group_gives_the_list_of_results_in_order() -> None:
    async def body() -> None:
        wf = await queue.enqueue(sitq.group(double.s(i) for i in range(10)))
        assert await wf.result(timeout=WAIT) == [2 * i for i in range(10)]

    run(_with_worker(body))


def test_a_chord_callback_gets_the_header_results_in_order() -> None:
    async def body() -> None:
        wf = await queue.enqueue(sitq.chord((double.s(i) for i in range(20)), total.s()))
        assert await wf.result(timeout=WAIT) == sum(2 * i for i in range(20))
        members = await wf.tasks()
        callback = members[-1]
        assert list(callback.parents) == [t.id for t in members[:-1]]
        assert callback.meta[PASS_RESULTS_HEADER] == "list"
        assert {t.workflow_id for t in members} == {wf.id}

    run(_with_worker(body))


def test_nested_shapes() -> None:
    """A chain through a group (each member gets the previous result, the next step the
    list), and an immutable signature that only waits."""

    async def body() -> None:
        wf = await queue.enqueue(
            sitq.chain(add.s(1, 1), sitq.group(double.s(), add.s(5)), total.s(), add.si(0, 1))
        )
        assert await wf.result(timeout=WAIT) == 1
        steps = await wf.tasks()
        assert await queue.get_result(steps[-2].id) is not None
        third = await queue.get_result(steps[3].id)
        assert third.value == 4 + 7

    run(_with_worker(body))


def test_depends_on_with_handles_and_pass_results() -> None:
    async def body() -> None:
        a = await add.enqueue(2, 3)
        # the type checker cannot know that a parent's result comes first: hence the ignores
        b = await double.options(depends_on=[a], pass_results="first").enqueue()  # type: ignore[call-arg]
        quiet = await seen.options(depends_on=a).enqueue("own")
        both = await seen.options(depends_on=[a, b], pass_results="list").enqueue()
        assert await b.result(timeout=WAIT) == 10
        assert await quiet.result(timeout=WAIT) == ["'own'"]
        assert await both.result(timeout=WAIT) == ["[5, 10]"]
        task = await queue.get_task(b.id)
        assert task is not None and list(task.parents) == [a.id] and task.workflow_id is None

    run(_with_worker(body))


def test_depends_on_a_workflow_waits_for_its_last_members() -> None:
    async def body() -> None:
        wf = await queue.enqueue(sitq.group(double.s(1), double.s(2)))
        after = await total.options(depends_on=[wf], pass_results="list").enqueue()  # type: ignore[call-arg]
        assert await after.result(timeout=WAIT) == 6

    run(_with_worker(body))


# -- failures -------------------------------------------------------------------------------


def test_a_failure_cancels_the_rest_of_the_chain_with_a_reason() -> None:
    async def body() -> None:
        wf = await queue.enqueue(sitq.chain(add.s(1, 2), boom.s(), double.s()))
        with pytest.raises(TaskFailed):
            await wf.result(timeout=WAIT)
        first, failed, cancelled = await wf.tasks()
        assert (first.status, failed.status) == (TaskStatus.SUCCEEDED, TaskStatus.FAILED)
        assert cancelled.status is TaskStatus.CANCELLED
        result = await queue.get_result(cancelled.id)
        assert result.error is not None and result.error.startswith(PARENT_FAILED_PREFIX)
        assert failed.id in result.error
        assert await wf.status() is TaskStatus.FAILED

    run(_with_worker(body))


def test_allow_failure_passes_parent_failed() -> None:
    """A callback with ``allow_failure`` runs once every parent ended and sees a
    `ParentFailed` in place of a failed parent's result."""

    async def body() -> None:
        header = [double.s(1), boom.s(), double.s(3)]
        wf = await queue.enqueue(sitq.chord(header, outcomes.s().options(allow_failure=True)))
        assert await wf.result(timeout=WAIT) == [2, "failed: ValueError: boom", 6]
        assert await wf.status() is TaskStatus.SUCCEEDED

    run(_with_worker(body))


@queue.task()
def outcomes(values: list[Any]) -> list[Any]:
    return [f"{v.status.value}: {v.error}" if isinstance(v, ParentFailed) else v for v in values]


def test_requeue_of_a_failed_member_resumes_the_workflow(tmp_path: Path) -> None:
    flag = tmp_path / "fixed"

    async def body() -> None:
        wf = await queue.enqueue(sitq.chain(needs_file.s(str(flag)), double.s()))
        with pytest.raises(TaskFailed):
            await wf.result(timeout=WAIT)
        assert await wf.status() is TaskStatus.FAILED
        flag.write_text("ok")
        assert await queue.requeue(wf.task_ids[0])
        assert await wf.result(timeout=WAIT) == 4

    run(_with_worker(body))


@queue.task(max_retries=0)
def needs_file(path: str) -> int:
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    return 2


def test_cancel_stops_waiting_pending_and_running_members() -> None:
    async def body() -> None:
        wf = await queue.enqueue(sitq.chain(forever.s(), double.s()))
        for _ in range(500):
            if (await wf.tasks())[0].status is TaskStatus.RUNNING:
                break
            await asyncio.sleep(0.02)
        assert await wf.cancel() == 2
        assert [t.status for t in await wf.tasks()] == [TaskStatus.CANCELLED] * 2
        assert await wf.status() is TaskStatus.CANCELLED

    run(_with_worker(body))


# -- bad input ------------------------------------------------------------------------------


def test_bad_input_is_refused_at_the_call() -> None:
    with pytest.raises(ConfigurationError, match=r"task\.s"):
        sitq.chain(double.s(1), double)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="at least one step"):
        sitq.chain()
    with pytest.raises(ConfigurationError, match="no task to run"):
        plan(sitq.group())
    with pytest.raises(ConfigurationError, match="dedupe_key"):
        double.options(dedupe_key="k").s(1)
    with pytest.raises(ConfigurationError, match="pass_results"):
        double.options(pass_results="all")
    with pytest.raises(ConfigurationError, match="depends_on"):
        double.options(depends_on=[42])
    with pytest.raises(ConfigurationError, match="twice"):
        double.options(depends_on=["a", "a"]).s(1)
    with pytest.raises(ConfigurationError, match="allow_failure"):
        double.options(allow_failure="yes")  # type: ignore[arg-type]

    async def enqueue_with_options() -> None:
        with pytest.raises(ConfigurationError, match="no other arguments"):
            await queue.enqueue(sitq.group(double.s(1)), priority=3)  # type: ignore[call-overload]
        with pytest.raises(ConfigurationError, match="not stored"):
            await double.options(depends_on=["no-such-task"]).enqueue(1)
        with pytest.raises(ConfigurationError, match="eta"):
            await queue.enqueue(sitq.chain(double.s(1), double.options(eta=60.0).s()))

    run(enqueue_with_options())


def test_a_backend_without_workflows_is_refused() -> None:
    from sitq_memory import MemoryBackend

    class Plain(MemoryBackend):
        capabilities = MemoryBackend.capabilities - {Capability.WORKFLOWS}

    async def body() -> None:
        async with sitq.TaskQueue(Plain()) as plain:
            with pytest.raises(ConfigurationError, match=r"Capability\.WORKFLOWS"):
                await plain.enqueue(sitq.group(double.s(1)))
            first = await plain.enqueue(double, 1)
            with pytest.raises(ConfigurationError, match=r"Capability\.WORKFLOWS"):
                await plain.enqueue(sitq.Task(double, (2,), parents=[first]))
            assert sum((await plain.counts()).values()) == 1

    run(body())


# -- the blocking flavour: memory and an SQLite file -------------------------------------------


def _sadd(x: int, y: int) -> int:
    return x + y


def _stotal(values: list[int]) -> int:
    return sum(values)


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_sync_queue_runs_a_chord(store: str, tmp_path: Path) -> None:
    url = "memory://" if store == "memory" else f"sqlite:///{tmp_path / 'wf.db'}"
    squeue = sitq.SyncTaskQueue(url)
    try:
        if not squeue.backend.supports(Capability.WORKFLOWS):
            pytest.skip(f"{type(squeue.backend).__name__} does not declare WORKFLOWS yet")
        sadd = squeue.task(name="wf.sadd")(_sadd)
        stotal = squeue.task(name="wf.stotal")(_stotal)
        worker = sitq.Worker(squeue, worker_type="thread", max_workers=4, poll_interval=0.05)
        worker.start()
        try:
            wf = squeue.enqueue(sitq.chord([sadd.s(1, 2), sadd.s(3, 4)], stotal.s()))
            assert isinstance(wf, Workflow)
            assert wf.result(timeout=WAIT) == 10
            assert wf.status() is TaskStatus.SUCCEEDED
            assert [s.id for s in squeue.workflows()] == [wf.id]
            chained = squeue.enqueue(sitq.chain(sadd.s(1, 1), sadd.s(5)))
            assert chained.result(timeout=WAIT) == 7
        finally:
            worker.stop()
    finally:
        squeue.close()


def test_an_eager_queue_runs_a_workflow_as_it_is_enqueued() -> None:
    from sitq.eager import EagerSyncTaskQueue

    eager = EagerSyncTaskQueue("memory://")
    try:
        sadd = eager.task(name="wf.eager.sadd")(_sadd)
        stotal = eager.task(name="wf.eager.stotal")(_stotal)
        wf = eager.enqueue(sitq.chord([sadd.s(1, 2), sadd.s(3, 4)], stotal.s()))
        assert isinstance(wf, Workflow)
        assert [t.status for t in wf.tasks()] == [TaskStatus.SUCCEEDED] * 3
        assert wf.result(timeout=0) == 10
    finally:
        eager.close()


def test_get_results_waits_for_many_tasks_in_one_read_per_poll() -> None:
    """`queue.get_results` (what a workflow's result waits with): results in order, a
    timeout for all of them, an unknown id refused."""
    from sitq.errors import ResultTimeout, TaskNotFound

    async def body() -> None:
        handles = [await double.enqueue(i) for i in range(5)]
        results = await queue.get_results([h.id for h in reversed(handles)], timeout=WAIT)
        assert [r.value for r in results] == [8, 6, 4, 2, 0]
        with pytest.raises(TaskNotFound):
            await queue.get_results([handles[0].id, "no-such-task"], timeout=WAIT)
        waiting = await queue.enqueue(sitq.chain(forever.s(), double.s()))
        with pytest.raises(ResultTimeout):
            await queue.get_results(waiting.task_ids, timeout=0.2)
        assert await waiting.cancel() == 2

    run(_with_worker(body))
