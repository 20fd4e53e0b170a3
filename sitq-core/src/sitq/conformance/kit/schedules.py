"""Conformance tests of the optional `Capability.SCHEDULES` (periodic schedules): a fire is
stored once with its task, whoever races for it; paused, stale and skipped fires; the state
every scheduler reads (`sitq.schedule_state`)."""

from __future__ import annotations

import asyncio

import pytest

from ...backend import Backend, Capability
from ...errors import ConfigurationError
from ...schedule_state import FIRE_MEMORY, ScheduleState
from ...task import TaskStatus
from ..clock import FakeClock
from ..records import make_record
from .support import KitBase, backend_test, in_threads, requires, stored


async def _state(b: Backend, name: str) -> ScheduleState:
    found = {s.name: s for s in await b.schedule_states()}
    assert name in found, f"schedule {name!r} has no stored state"
    return found[name]


class ScheduleTests(KitBase):
    """Periodic schedules: the store decides each fire exactly once."""

    @backend_test
    async def test_schedules_are_declared_or_refused(self, b: Backend, clock: FakeClock) -> None:
        """A backend that does not declare the capability refuses with `ConfigurationError`
        (workers with schedules then refuse to start, naming the fix)."""
        if b.supports(Capability.SCHEDULES):
            assert await b.schedule_states() == []
        else:
            with pytest.raises(ConfigurationError):
                await b.enqueue_fire("s", clock(), make_record())

    @requires(Capability.SCHEDULES)
    async def test_a_fire_is_stored_once_with_its_task(self, b: Backend, clock: FakeClock) -> None:
        """The first write of a fire stores its task; a second one for the same fire time
        stores nothing and returns None."""
        await b.add_schedules({"sweep": "every 0:01:00"})
        start = await _state(b, "sweep")
        assert start == ScheduleState(
            "sweep", paused=False, decided_until=clock(), definition="every 0:01:00"
        )
        fire = clock() + 60
        first = make_record(meta={"sitq.schedule": "sweep"})
        assert await b.enqueue_fire("sweep", fire, first) == first.id
        second = make_record()
        assert await b.enqueue_fire("sweep", fire, second) is None
        assert await b.get_task(second.id) is None, "the losing write stored its task"
        record = await stored(b, first.id)
        assert record.status is TaskStatus.PENDING
        assert record.meta == {"sitq.schedule": "sweep"}
        state = await _state(b, "sweep")
        assert (state.last_fire, state.last_task_id) == (fire, first.id)
        assert state.decided_until == fire

    @requires(Capability.SCHEDULES)
    async def test_racing_writers_store_each_fire_once(self, b: Backend, clock: FakeClock) -> None:
        """Many coroutines, and threads with their own event loops, racing for the same fire
        times: exactly one write per fire time wins."""
        await b.add_schedules({"race": "every 0:00:01"})
        fires = [clock() + i for i in range(1, 6)]

        async def race(i: int) -> list[str | None]:
            return [await b.enqueue_fire("race", t, make_record()) for t in fires]

        gathered = await asyncio.gather(*(race(i) for i in range(8)))
        threaded = await asyncio.to_thread(in_threads, 3, race)
        for index in range(len(fires)):
            winners = [r[index] for r in [*gathered, *threaded] if r[index] is not None]
            assert len(winners) == 1, f"fire {index} stored {len(winners)} times"
        assert sum((await b.counts()).values()) == len(fires)

    @requires(Capability.SCHEDULES)
    async def test_a_paused_schedule_stores_no_fire(self, b: Backend, clock: FakeClock) -> None:
        """Paused: every fire is refused. Resumed: the fires of the pause are decided (its
        ``decided_until`` is at least the resume time) and later fires are stored."""
        await b.add_schedules({"p": "every 0:00:01"})
        assert await b.pause_schedule("p", True)
        assert (await _state(b, "p")).paused
        assert await b.enqueue_fire("p", clock() + 1, make_record()) is None
        assert sum((await b.counts()).values()) == 0
        clock.advance(100)
        assert await b.pause_schedule("p", False)
        state = await _state(b, "p")
        assert not state.paused and state.decided_until >= clock()
        record = make_record()
        assert await b.enqueue_fire("p", clock() + 1, record) == record.id
        assert not await b.pause_schedule("unknown", True), "a schedule with no state"

    @requires(Capability.SCHEDULES)
    async def test_stale_fires_are_refused(self, b: Backend, clock: FakeClock) -> None:
        """A fire older than `FIRE_MEMORY` behind ``decided_until`` is refused (its row may be
        gone); a fire behind the latest but within it is stored, and ``last_fire`` stays the
        latest."""
        await b.add_schedules({"s": "every 0:00:01"})
        now = clock()
        assert await b.enqueue_fire("s", now - FIRE_MEMORY - 1, make_record()) is None
        latest, earlier = make_record(), make_record()
        assert await b.enqueue_fire("s", now + 10, latest) == latest.id
        assert await b.enqueue_fire("s", now + 5, earlier) == earlier.id
        state = await _state(b, "s")
        assert (state.last_fire, state.last_task_id) == (now + 10, latest.id)

    @requires(Capability.SCHEDULES)
    async def test_skipped_fires_move_decided_until_forward_only(
        self, b: Backend, clock: FakeClock
    ) -> None:
        """`skip_fires` raises ``decided_until``, never lowers it; adding a schedule again
        replaces its definition and leaves the rest of its state alone."""
        await b.add_schedules({"s": "every 0:00:01"})
        now = clock()
        await b.skip_fires("s", now + 50)
        await b.skip_fires("s", now + 20)
        assert (await _state(b, "s")).decided_until == now + 50
        clock.advance(1000)
        await b.add_schedules({"s": "cron 0 * * * * (UTC)", "t": "every 0:00:01"})
        assert (await _state(b, "s")).decided_until == now + 50
        assert (await _state(b, "s")).definition == "cron 0 * * * * (UTC)"
        assert (await _state(b, "t")).decided_until == clock()

    @requires(Capability.SCHEDULES)
    async def test_a_fire_without_state_creates_it(self, b: Backend, clock: FakeClock) -> None:
        """A fire of a schedule no scheduler added yet is stored, and the schedule gets a
        state decided up to that fire."""
        record = make_record()
        assert await b.enqueue_fire("new", clock() + 3, record) == record.id
        state = await _state(b, "new")
        assert (state.decided_until, state.last_fire) == (clock() + 3, clock() + 3)
        assert state.definition is None

    @requires(Capability.SCHEDULES)
    async def test_a_fire_hitting_a_dedupe_key_points_to_its_holder(
        self, b: Backend, clock: FakeClock
    ) -> None:
        """A fire whose task's dedupe key is held by an active task stores no new task: the
        fire is the holder's (one run at a time of a slow periodic task)."""
        holder = make_record(dedupe_key="nightly")
        await b.enqueue_many([holder])
        assert await b.enqueue_fire("n", clock() + 1, make_record(dedupe_key="nightly")) == (
            holder.id
        )
        assert sum((await b.counts()).values()) == 1
        assert await b.enqueue_fire("n", clock() + 1, make_record()) is None
