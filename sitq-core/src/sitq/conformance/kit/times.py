"""Conformance tests of time: every time the backend stores or compares is a reading of its
`Backend.clock`, never of the wall clock."""

from __future__ import annotations

from ...backend import Backend
from ..clock import FakeClock
from .diagnosis import reads_wall_clock, wall_clock_message
from .support import LEASE, KitBase, backend_test, claim, claim_one, enqueue, stored


def clock_reading(
    b: Backend, clock: FakeClock, field: str, value: float | None, want: float
) -> str:
    """Why ``field`` holding ``value`` rather than ``want`` breaks the contract of time."""
    if reads_wall_clock(value, clock):
        return wall_clock_message(b, field, value, clock)
    return (
        f"{field} is {value!r}, expected {want!r}: the contract defines it from Backend.clock "
        f"(clock() is {clock()!r}; see the docstrings of Backend.clock and Backend.claim)"
    )


class TimeTests(KitBase):
    """Time: due checks, claim stamps, leases, releases and cancels read the backend's
    `clock`."""

    @backend_test
    async def test_times_are_readings_of_the_backend_clock(
        self, b: Backend, clock: FakeClock
    ) -> None:
        """Due means available_at <= clock(); started_at, lease_expires_at, the due time of a
        release and the finished_at of a cancel are clock() readings."""
        (later,) = await enqueue(b, available_at=clock() + 60)
        early = await claim(b)
        assert early == [], (
            f"claim took a task due at clock() + 60 s (available_at={clock() + 60!r}): due "
            "means available_at <= self.clock(); does the backend compare with time.time()?"
        )
        clock.advance(60)
        task = await claim_one(b)
        assert task.id == later and task.lease_token
        for field, value, want in (
            ("started_at", task.started_at, clock()),
            ("lease_expires_at", task.lease_expires_at, clock() + LEASE),
        ):
            assert value == want, clock_reading(b, clock, field, value, want)
        clock.advance(2)
        assert await b.release(task.id, task.lease_token)
        due = (await stored(b, task.id)).available_at
        assert due == clock(), clock_reading(
            b, clock, "available_at (after a release)", due, clock()
        )
        clock.advance(2)
        assert await b.cancel(task.id)
        finished_at = (await stored(b, task.id)).finished_at
        assert finished_at == clock(), clock_reading(
            b, clock, "finished_at (after a cancel)", finished_at, clock()
        )
