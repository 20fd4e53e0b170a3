"""Conformance tests of recovery: lapsed leases go back to pending, or dead past the attempt
limit."""

from __future__ import annotations

from ...backend import Backend
from ...task import TaskStatus
from ..clock import FakeClock
from .support import LEASE, KitBase, backend_test, claim, claim_one, enqueue, status_of, stored


class RecoveryTests(KitBase):
    """Recovery: `recover_expired` and the attempt limit of `sitq.rules`."""

    @backend_test
    async def test_recover_expired_requeues_lapsed_leases(
        self, b: Backend, clock: FakeClock
    ) -> None:
        (task_id,) = await enqueue(b)
        task = await claim_one(b)
        clock.advance(LEASE)
        assert await b.recover_expired(max_attempts=3) == [], "the lease holds until it expires"
        clock.advance(0.5)
        assert await b.recover_expired(max_attempts=3) == [task_id]
        got = await stored(b, task_id)
        assert got.status is TaskStatus.PENDING and got.attempts == 1
        assert got.available_at == clock()
        assert got.lease_token is None and got.lease_expires_at is None
        assert await b.recover_expired(max_attempts=3) == []
        again = await claim_one(b)
        assert again.id == task_id and again.lease_token != task.lease_token

    @backend_test
    async def test_recover_expired_kills_after_max_attempts(
        self, b: Backend, clock: FakeClock
    ) -> None:
        (task_id,) = await enqueue(b)
        await claim_one(b)
        clock.advance(LEASE + 1)
        assert await b.recover_expired(max_attempts=2) == [task_id]
        await claim_one(b)
        clock.advance(LEASE + 1)
        assert await b.recover_expired(max_attempts=2) == []
        got = await b.get_result(task_id)
        assert got is not None and got.status is TaskStatus.DEAD and got.attempts == 2
        assert got.error, "a task killed by recovery says why"
        assert got.finished_at is not None and got.lease_token is None
        assert await claim(b) == []

    @backend_test
    async def test_recover_expired_honours_max_retries(self, b: Backend, clock: FakeClock) -> None:
        """The limit is max(max_attempts, max_retries + 1)."""
        (task_id,) = await enqueue(b, max_retries=3)
        for attempt in range(1, 5):
            assert (await claim_one(b)).attempts == attempt
            clock.advance(LEASE + 1)
            recovered = await b.recover_expired(max_attempts=1)
            assert recovered == ([task_id] if attempt < 4 else [])
        assert await status_of(b, task_id) is TaskStatus.DEAD

    @backend_test
    async def test_recover_expired_leaves_live_leases(self, b: Backend, clock: FakeClock) -> None:
        await enqueue(b, 3)
        t1, t2, t3 = await claim(b, 3)
        assert t1.lease_token
        clock.advance(LEASE - 1)
        assert await b.extend_leases({t1.id: t1.lease_token}, LEASE) == {t1.id}
        clock.advance(2)
        assert sorted(await b.recover_expired(max_attempts=5)) == sorted([t2.id, t3.id])
        assert await status_of(b, t1.id) is TaskStatus.RUNNING
