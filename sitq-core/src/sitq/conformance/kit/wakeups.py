"""Conformance tests of wake-ups: waits end on enqueues, retries and finishes, in any event loop."""

from __future__ import annotations

import asyncio
import threading

from ...backend import Backend
from ..clock import FakeClock
from .support import WAKE_BOUND, KitBase, backend_test, claim, enqueue, in_threads, woken


class WakeupTests(KitBase):
    """Wake-ups: `wait_for_work` and `wait_for_finish`."""

    @backend_test
    async def test_wait_for_work_wakes_on_enqueue(self, b: Backend, clock: FakeClock) -> None:
        waiter = asyncio.ensure_future(b.wait_for_work(60))
        await woken(waiter, lambda: enqueue(b))

    @backend_test
    async def test_wait_for_work_wakes_on_retry(self, b: Backend, clock: FakeClock) -> None:
        """A task going back to pending is new work."""
        await enqueue(b, 20)
        tasks = iter(await claim(b, 20))

        async def retry_one() -> None:
            task = next(tasks)
            assert task.lease_token and await b.retry(task.id, task.lease_token, clock())

        waiter = asyncio.ensure_future(b.wait_for_work(60))
        await woken(waiter, retry_one)

    @backend_test
    async def test_wait_for_finish_wakes_on_finish(self, b: Backend, clock: FakeClock) -> None:
        await enqueue(b, 20)
        tasks = iter(await claim(b, 20))

        async def complete_one() -> None:
            task = next(tasks)
            assert task.lease_token and await b.complete(task.id, task.lease_token, None)

        waiter = asyncio.ensure_future(b.wait_for_finish(60))
        await woken(waiter, complete_one)

    @backend_test
    async def test_wake_ups_reach_other_event_loops(self, b: Backend, clock: FakeClock) -> None:
        started = threading.Event()

        async def wait_elsewhere(_: int) -> None:
            started.set()
            await b.wait_for_work(WAKE_BOUND * 3)

        waiter = asyncio.ensure_future(asyncio.to_thread(in_threads, 1, wait_elsewhere))
        assert await asyncio.to_thread(started.wait, WAKE_BOUND)
        await woken(waiter, lambda: enqueue(b))

    @backend_test
    async def test_waits_end_after_their_timeout(self, b: Backend, clock: FakeClock) -> None:
        await asyncio.wait_for(b.wait_for_work(0.05), WAKE_BOUND)
        await asyncio.wait_for(b.wait_for_finish(0.05), WAKE_BOUND)
