"""Conformance tests of leases: heartbeats push back the leases still held."""

from __future__ import annotations

from ...backend import Backend
from ..clock import FakeClock
from .support import LEASE, KitBase, backend_test, claim, enqueue, stored


class LeaseTests(KitBase):
    """Leases: `extend_leases` keeps held leases and reports lost ones."""

    @backend_test
    async def test_extend_leases_pushes_back_held_leases(
        self, b: Backend, clock: FakeClock
    ) -> None:
        await enqueue(b, 2)
        t1, t2 = await claim(b, 2)
        assert t1.lease_token and t2.lease_token
        clock.advance(20)
        held = await b.extend_leases({t1.id: t1.lease_token, t2.id: t2.lease_token}, 30)
        assert held == {t1.id, t2.id}
        assert (await stored(b, t1.id)).lease_expires_at == clock() + 30
        clock.advance(25)  # past the first lease, within the extended one
        assert await b.recover_expired(max_attempts=5) == []
        assert await b.complete(t1.id, t1.lease_token, None)

    @backend_test
    async def test_extend_leases_omits_lost_leases(self, b: Backend, clock: FakeClock) -> None:
        await enqueue(b, 3)
        done, lost, kept = await claim(b, 3)
        assert done.lease_token and lost.lease_token and kept.lease_token
        assert await b.complete(done.id, done.lease_token, None)
        clock.advance(LEASE + 1)
        assert await b.extend_leases({kept.id: kept.lease_token}, LEASE) == {kept.id}
        assert await b.recover_expired(max_attempts=5) == [lost.id]
        leases = {
            done.id: done.lease_token,
            lost.id: lost.lease_token,
            kept.id: "not-the-token",
            "no-such-task": "x",
        }
        assert await b.extend_leases(leases, LEASE) == set()
        assert await b.extend_leases({}, LEASE) == set()
        assert (await stored(b, kept.id)).lease_token == kept.lease_token
