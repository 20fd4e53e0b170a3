"""Conformance tests of progress: `Backend.set_progress` stores what a running task reports,
fenced by its lease, and keeps it until the next report (through retries and finishes)."""

from __future__ import annotations

from ...backend import Backend, Capability
from ...progress import Progress
from ..clock import FakeClock
from .support import KitBase, claim_one, enqueue, requires, stored


class ProgressTests(KitBase):
    """Progress: batched, fenced by lease token, readable, kept until reported again."""

    @requires(Capability.PROGRESS)
    async def test_progress_is_none_until_reported(self, b: Backend, clock: FakeClock) -> None:
        (task_id,) = await enqueue(b)
        assert (await stored(b, task_id)).progress is None
        assert (await claim_one(b)).progress is None

    @requires(Capability.PROGRESS)
    async def test_set_progress_stores_the_latest_value(self, b: Backend, clock: FakeClock) -> None:
        await enqueue(b, 2)
        one = await claim_one(b)
        two = await claim_one(b)
        assert one.lease_token and two.lease_token
        first = Progress(0.25, "step 1 of 4 ✓", clock())
        assert await b.set_progress({one.id: (one.lease_token, first)}) == {one.id}
        assert (await stored(b, one.id)).progress == first
        later = Progress(0.5, None, clock() + 1)
        both = {one.id: (one.lease_token, later), two.id: (two.lease_token, Progress(1.0))}
        assert await b.set_progress(both) == {one.id, two.id}
        assert (await stored(b, one.id)).progress == later
        (listed,) = [r for r in await b.list_tasks() if r.id == two.id]
        assert listed.progress == Progress(1.0)
        assert await b.set_progress({}) == set()

    @requires(Capability.PROGRESS)
    async def test_set_progress_is_fenced_by_lease(self, b: Backend, clock: FakeClock) -> None:
        await enqueue(b, 2)
        done = await claim_one(b)
        cancelled = await claim_one(b)
        assert done.lease_token and cancelled.lease_token
        assert await b.complete(done.id, done.lease_token, None)
        assert await b.cancel(cancelled.id)
        updates = {
            done.id: (done.lease_token, Progress(0.5)),
            cancelled.id: (cancelled.lease_token, Progress(0.5)),
            "no-such-task": ("x", Progress(0.5)),
        }
        assert await b.set_progress(updates) == set()
        assert (await stored(b, done.id)).progress is None
        assert (await stored(b, cancelled.id)).progress is None

    @requires(Capability.PROGRESS)
    async def test_progress_is_kept_through_retry_and_finish(
        self, b: Backend, clock: FakeClock
    ) -> None:
        (task_id,) = await enqueue(b)
        first = await claim_one(b)
        assert first.lease_token
        reported = Progress(0.4, "step 2 of 5", clock())
        await b.set_progress({task_id: (first.lease_token, reported)})
        assert await b.retry(task_id, first.lease_token, clock(), "ValueError: flaky")
        assert (await stored(b, task_id)).progress == reported  # shown with the retry
        second = await claim_one(b)
        assert second.progress == reported and second.attempts == 2
        assert second.lease_token
        # the old attempt's lease no longer writes
        assert await b.set_progress({task_id: (first.lease_token, Progress(0.9))}) == set()
        assert await b.complete(task_id, second.lease_token, b"ok")
        assert (await stored(b, task_id)).progress == reported


__all__ = ["ProgressTests"]
