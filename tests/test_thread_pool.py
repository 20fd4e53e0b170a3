"""`sitq.executors.ThreadPool`: calls in daemon threads, results back on the loop in batches,
abandon on timeout, drop before start, shutdown."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
import time
from collections.abc import Callable

import pytest

from sitq.errors import TaskTimeout
from sitq.executors import Call, ThreadPool, run_in_pool

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


def _eventually(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_many_calls_return_their_own_results_and_errors() -> None:
    async def main() -> None:
        pool = ThreadPool(8)

        def work(i: int) -> int:
            if i % 7 == 0:
                raise ValueError(i)
            return i * 2

        jobs = [pool.submit_async(functools.partial(work, i)) for i in range(500)]
        results = await asyncio.gather(*(j.future for j in jobs), return_exceptions=True)
        for i, r in enumerate(results):
            if i % 7 == 0:
                assert isinstance(r, ValueError) and r.args == (i,)
            else:
                assert r == i * 2
        assert pool.abandoned == 0
        pool.shutdown()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_the_callers_context_is_seen_in_the_thread() -> None:
    async def main() -> None:
        pool = ThreadPool(2)
        var.set("from the task")
        call = Call(var.get, (), {}, None, "t1")
        ctx = contextvars.copy_context()
        assert await run_in_pool(pool, call, lambda: ctx.run(var.get)) == "from the task"
        pool.shutdown()

    asyncio.run(asyncio.wait_for(main(), 10))


def test_a_timed_out_call_is_abandoned_and_its_slot_refilled() -> None:
    release = threading.Event()

    async def main() -> None:
        pool = ThreadPool(1)
        stuck = Call(release.wait, (), {}, 0.05, "stuck")
        with pytest.raises(TaskTimeout):
            await run_in_pool(pool, stuck, lambda: release.wait(10))
        assert pool.abandoned == 1
        quick = Call(int, (), {}, 5.0, "quick")
        assert await run_in_pool(pool, quick, lambda: 42) == 42  # a fresh thread took it
        release.set()
        assert await asyncio.to_thread(_eventually, lambda: pool.abandoned == 0)
        pool.shutdown()

    asyncio.run(asyncio.wait_for(main(), 10))


def test_a_call_cancelled_before_it_starts_never_runs() -> None:
    started = threading.Event()
    release = threading.Event()
    ran: list[str] = []

    async def main() -> None:
        pool = ThreadPool(1)
        busy = pool.submit_async(lambda: (started.set(), release.wait(10)))  # type: ignore[func-returns-value]
        assert await asyncio.to_thread(started.wait, 5)
        queued = pool.submit_async(lambda: ran.append("queued"))
        queued.future.cancel()
        pool.abandon(queued)
        release.set()
        await busy.future
        after = pool.submit_async(lambda: ran.append("after"))
        await after.future
        assert ran == ["after"]
        pool.shutdown()

    asyncio.run(asyncio.wait_for(main(), 10))


def test_shutdown_cancels_calls_that_have_not_started() -> None:
    release = threading.Event()

    async def main() -> None:
        pool = ThreadPool(1)
        busy = pool.submit_async(lambda: release.wait(10))
        waiting = pool.submit_async(lambda: "never")
        legacy = pool.submit(lambda: "never either")
        await asyncio.sleep(0.05)
        pool.shutdown()
        release.set()
        assert await busy.future is True
        with pytest.raises(asyncio.CancelledError):
            await waiting.future
        assert legacy.cancelled()
        with pytest.raises(RuntimeError, match="closed"):
            pool.submit_async(lambda: None)

    asyncio.run(asyncio.wait_for(main(), 10))


def test_results_for_a_closed_loop_are_dropped_quietly() -> None:
    pool = ThreadPool(1)
    release = threading.Event()

    async def main() -> None:
        pool.submit_async(lambda: release.wait(10))

    asyncio.run(main())  # the loop closes while the call still runs
    release.set()
    done = pool.submit(lambda: "still serving")
    assert done.result(5) == "still serving"
    pool.shutdown()
