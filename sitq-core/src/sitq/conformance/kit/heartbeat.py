"""Conformance tests of the optional `Capability.HEARTBEAT_BACKEND`."""

from __future__ import annotations

import asyncio

from ...backend import Backend, Capability
from ..clock import FakeClock
from .support import LEASE, KitBase, backend_test, claim_one, enqueue, in_threads, requires, stored


class HeartbeatBackendTests(KitBase):
    """A heartbeat backend extends leases from a thread and loop of its own."""

    @backend_test
    async def test_heartbeat_backend_matches_the_declaration(
        self, b: Backend, clock: FakeClock
    ) -> None:
        """`heartbeat_backend` returns a backend exactly when the capability is declared."""
        side = b.heartbeat_backend()
        declared = b.supports(Capability.HEARTBEAT_BACKEND)
        assert (side is not None) == declared, (
            f"heartbeat_backend() returned {side!r}, but Capability.HEARTBEAT_BACKEND is "
            f"{'' if declared else 'not '}declared"
        )
        if side is not None and side is not b:
            await side.close()

    @requires(Capability.HEARTBEAT_BACKEND)
    async def test_heartbeat_backend_works_from_another_thread(
        self, b: Backend, clock: FakeClock
    ) -> None:
        """What `heartbeat_backend` returns extends leases from a thread and loop of its own."""
        side = b.heartbeat_backend()
        (task_id,) = await enqueue(b)
        record = await claim_one(b)
        assert record.lease_token
        clock.advance(20)

        async def beat(_: int) -> set[str]:
            assert side is not None and record.lease_token is not None
            await side.connect()
            try:
                return await side.extend_leases({task_id: record.lease_token}, LEASE)
            finally:
                if side is not b:
                    await side.close()

        assert await asyncio.to_thread(in_threads, 1, beat) == [{task_id}]
        assert (await stored(b, task_id)).lease_expires_at == clock() + LEASE
