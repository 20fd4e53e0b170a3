"""Schedulers on every backend, with a clock moved by hand: catch-up policies after every
scheduler was down, clock steps backwards, DST days in two time zones with two schedulers
racing, pause and resume, the hooks, and what a scheduled task is given."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from schedule_support import BACKENDS, StepClock, fired, store

import sitq
from sitq import TaskQueue
from sitq.backend import Capability
from sitq.errors import ConfigurationError
from sitq.plugins import get_plugin_manager
from sitq.scheduler import Scheduler
from sitq.schedules import FIRED_AT_HEADER, SCHEDULE_HEADER
from sitq_memory import MemoryBackend

pytestmark = [pytest.mark.needs_memory, pytest.mark.needs_sqlite, pytest.mark.needs_postgres]

#: 2026-01-05 00:00 UTC, a Monday.
START = datetime(2026, 1, 5, tzinfo=timezone.utc).timestamp()


def minutes(n: float) -> float:
    return n * 60.0


def declare(queue: TaskQueue, **schedule: Any) -> None:
    @queue.periodic(name="job", **schedule)
    def job(fired_at: datetime) -> None: ...


async def scheduler_on(
    backend: sitq.backend.Backend, clock: StepClock, **schedule: Any
) -> Scheduler:
    backend.clock = clock
    queue = TaskQueue(backend)
    declare(queue, **schedule)
    return Scheduler(queue)


@pytest.mark.parametrize("kind", BACKENDS)
@pytest.mark.parametrize(
    ("catch_up", "expected"),
    [
        # down from 00:00:30 to 01:00:30 (grace 60 s): 00:01 .. 00:59 were missed
        ("latest", [0, 59, 60]),
        ("none", [0, 60]),
        ("all", [0, *range(31, 61)]),  # backfill 30 min: 00:31 .. 00:59, then 01:00
    ],
)
def test_catch_up_policies_after_every_scheduler_was_down(
    kind: str, catch_up: str, expected: list[int], tmp_path: Path
) -> None:
    """An every-minute schedule, every scheduler down for an hour: each policy runs exactly
    what it promises, and a second pass runs nothing more."""

    async def main() -> list[datetime]:
        async with store(kind, tmp_path) as opener:
            clock = StepClock(START - 1)
            scheduler = await scheduler_on(
                opener(),
                clock,
                every=timedelta(minutes=1),
                catch_up=catch_up,
                backfill=timedelta(minutes=30),
            )
            try:
                await scheduler.tick()  # first seen at START - 1
                clock.now = START + 30
                await scheduler.tick()  # START itself, on time
                clock.now = START + minutes(60) + 30  # every scheduler was down meanwhile
                await scheduler.tick()
                await scheduler.tick()
                return await fired(scheduler.queue, "job")
            finally:
                await scheduler.queue.backend.close()

    found = asyncio.run(main())
    assert found == [datetime.fromtimestamp(START + minutes(m), timezone.utc) for m in expected]


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_clock_stepped_back_never_fires_twice(kind: str, tmp_path: Path) -> None:
    """Two schedulers, one whose clock steps back ten minutes and forward again: every fire
    time gets one task."""

    async def main() -> list[datetime]:
        async with store(kind, tmp_path) as opener:
            ahead, behind = StepClock(START), StepClock(START)
            one = await scheduler_on(opener(), ahead, every=timedelta(minutes=1))
            two = await scheduler_on(opener(), behind, every=timedelta(minutes=1))
            try:
                await one.tick()  # first seen at START
                for step in range(1, 21):
                    ahead.now = START + minutes(step)
                    behind.now = START + minutes(step - 10 if 8 <= step <= 14 else step)
                    await one.tick()
                    await two.tick()
                return await fired(one.queue, "job")
            finally:
                await one.queue.backend.close()
                await two.queue.backend.close()

    found = asyncio.run(main())
    assert found == [datetime.fromtimestamp(START + minutes(m), timezone.utc) for m in range(1, 21)]


@pytest.mark.parametrize("kind", BACKENDS)
@pytest.mark.parametrize(
    ("tz", "days"),
    [
        ("Europe/Berlin", [datetime(2026, 3, 28), datetime(2026, 10, 24)]),
        ("America/New_York", [datetime(2026, 3, 7), datetime(2026, 10, 31)]),
    ],
)
def test_a_daily_job_fires_once_per_day_across_dst(
    kind: str, tz: str, days: list[datetime], tmp_path: Path
) -> None:
    """``30 2 * * *`` in a zone with DST, two schedulers passing every 7 minutes over three
    days around each change: one task per day, at 02:30, or 03:00 on the day 02:30 does not
    exist, or the first 02:30 of the day it occurs twice."""
    zone = ZoneInfo(tz)

    async def main(day: datetime) -> list[datetime]:
        folder = tmp_path / f"{day:%m-%d}"
        folder.mkdir()
        async with store(kind, folder) as opener:
            start = day.replace(hour=12, tzinfo=zone).timestamp()
            clock = StepClock(start)
            one = await scheduler_on(opener(), clock, cron="30 2 * * *", tz=tz)
            two = await scheduler_on(opener(), clock, cron="30 2 * * *", tz=tz)
            try:
                while clock.now < start + 3 * 86400:
                    await one.tick()
                    await two.tick()
                    clock.now += minutes(7)
                return await fired(one.queue, "job")
            finally:
                await one.queue.backend.close()
                await two.queue.backend.close()

    spring, fall = days
    found = [f.astimezone(zone) for f in asyncio.run(main(spring))]
    assert [f.date() for f in found] == [(spring + timedelta(days=i)).date() for i in (1, 2, 3)]
    assert [(f.hour, f.minute) for f in found] == [(3, 0), (2, 30), (2, 30)]
    found = [f.astimezone(zone) for f in asyncio.run(main(fall))]
    assert [f.date() for f in found] == [(fall + timedelta(days=i)).date() for i in (1, 2, 3)]
    assert [(f.hour, f.minute) for f in found] == [(2, 30)] * 3
    wall = (fall + timedelta(days=1)).replace(hour=2, minute=30, tzinfo=zone)
    first = min(wall.replace(fold=0).timestamp(), wall.replace(fold=1).timestamp())
    assert found[0].timestamp() == first


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_paused_schedule_fires_nothing_and_resumes_without_catching_up(
    kind: str, tmp_path: Path
) -> None:
    async def main() -> list[datetime]:
        async with store(kind, tmp_path) as opener:
            clock = StepClock(START)
            scheduler = await scheduler_on(opener(), clock, every=timedelta(minutes=1))
            backend = scheduler.queue.backend
            try:
                await scheduler.tick()
                clock.now = START + minutes(1)
                await scheduler.tick()
                assert await backend.pause_schedule("job", True)
                for m in range(2, 6):
                    clock.now = START + minutes(m)
                    await scheduler.tick()
                assert await backend.pause_schedule("job", False)
                clock.now = START + minutes(6)
                await scheduler.tick()
                return await fired(scheduler.queue, "job")
            finally:
                await backend.close()

    found = asyncio.run(main())
    assert found == [datetime.fromtimestamp(START + minutes(m), timezone.utc) for m in (1, 6)]


def test_hooks_see_each_fire_once_and_each_skip() -> None:
    """``sitq_schedule_fired`` once per stored fire (the winning scheduler only), and
    ``sitq_schedule_skipped`` for the missed fires a policy dropped."""
    seen: list[tuple[str, Any]] = []

    class Plugin:
        @sitq.hookimpl
        def sitq_schedule_fired(self, schedule: Any, fired_at: datetime, task_id: str) -> None:
            seen.append(("fired", fired_at))

        @sitq.hookimpl
        def sitq_schedule_skipped(self, schedule: Any, fired_at: datetime, reason: str) -> None:
            seen.append(("skipped", reason))

    async def main() -> None:
        plugins = get_plugin_manager().with_plugins(Plugin())
        clock = StepClock(START)
        backend = MemoryBackend()
        backend.clock = clock
        queue = TaskQueue(backend, plugins=plugins)
        declare(queue, every=timedelta(minutes=1), catch_up="none")
        one, two = Scheduler(queue), Scheduler(queue)
        await one.tick()
        clock.now = START + minutes(1)
        await one.tick()
        await two.tick()
        clock.now = START + minutes(30)
        await one.tick()

    asyncio.run(main())
    assert seen[0] == ("fired", datetime.fromtimestamp(START + 60, timezone.utc))
    assert seen[1][0] == "skipped" and "catch_up='none'" in seen[1][1]
    assert seen[2:] == [("fired", datetime.fromtimestamp(START + minutes(30), timezone.utc))]


def test_a_scheduled_task_gets_its_fire_time_and_headers() -> None:
    """A function taking ``fired_at`` is given the fire time in the schedule's zone; the
    task's headers name the schedule and the fire time; ``queue.schedule`` passes ``args``
    with the options of ``task.options(...)``."""

    async def main() -> None:
        clock = StepClock(START)
        backend = MemoryBackend()
        backend.clock = clock
        queue = TaskQueue(backend)

        @queue.periodic(cron="*/5 * * * *", tz="Europe/Berlin", name="sweep")
        def sweep(fired_at: datetime) -> str:
            return str(fired_at)

        @queue.task
        def report(kind: str) -> str:
            return kind

        queue.schedule(report.options(queue="reports"), cron="*/10 * * * *", args=("daily",))
        scheduler = Scheduler(queue)
        await scheduler.tick()
        clock.now = START + minutes(10)
        await scheduler.tick()
        records = sorted(await backend.list_tasks(limit=None), key=lambda r: r.queue)
        assert [(r.queue, r.meta[SCHEDULE_HEADER]) for r in records] == [
            ("default", "sweep"),
            ("default", "sweep"),
            ("reports", report.name),
        ]
        assert records[-1].meta[FIRED_AT_HEADER] == "2026-01-05T00:10:00+00:00"
        worker = sitq.Worker(queue, scheduler=False, max_tasks=3, poll_interval=0.01)
        await worker.start()
        runs = [(await queue.get_result(r.id, timeout=5)).value for r in records]
        berlin = ZoneInfo("Europe/Berlin")
        assert sorted(runs) == sorted(
            [
                str(datetime.fromtimestamp(START + minutes(5), berlin)),
                str(datetime.fromtimestamp(START + minutes(10), berlin)),
                "daily",
            ]
        )

    asyncio.run(main())


def test_bad_declarations_fail_where_they_are_written() -> None:
    queue = TaskQueue("memory://")

    @queue.task
    def job() -> None: ...

    with pytest.raises(ConfigurationError, match="not a cron expression"):
        queue.periodic(cron="every day")(lambda: None)
    with pytest.raises(ConfigurationError, match="not a bare @queue"):
        queue.periodic(job)  # type: ignore[call-arg, arg-type]
    with pytest.raises(ConfigurationError, match="catch_up"):
        queue.schedule(job, every=60, catch_up="some")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="declared task"):
        queue.schedule(print, every=60)  # type: ignore[arg-type]
    queue.schedule(job, every=60)
    with pytest.raises(ConfigurationError, match="two schedules are named"):
        queue.schedule(job, every=30)
    assert list(queue.schedules) == [job.name]


def test_a_worker_refuses_schedules_its_backend_cannot_store() -> None:
    class NoSchedules(MemoryBackend):
        capabilities = MemoryBackend.capabilities - {Capability.SCHEDULES}

    queue = TaskQueue(NoSchedules())
    declare(queue, every=60)
    with pytest.raises(ConfigurationError, match="--no-scheduler"):
        sitq.Worker(queue)
    sitq.Worker(queue, scheduler=False)  # opting out is fine


def test_blueprint_schedules_join_the_queue_that_registers_them() -> None:
    blueprint = sitq.Blueprint()

    @blueprint.periodic(every=timedelta(hours=1), name="hourly")
    async def hourly() -> None: ...

    queue = TaskQueue("memory://")
    queue.register(blueprint)
    assert list(queue.schedules) == ["hourly"]
    assert queue.tasks["hourly"] is hourly
    sync = sitq.SyncTaskQueue("memory://")

    @sync.periodic(cron="@daily")
    def daily() -> None: ...

    assert list(sync.schedules) == [daily.name]
    sync.close()


def test_a_schedule_that_cannot_be_stored_is_refused_before_it_runs() -> None:
    """A schedule whose call cannot be encoded stops the worker (or scheduler) from starting,
    naming the schedule and the fix; one added later is logged at every pass while the
    others fire."""
    queue = TaskQueue(MemoryBackend(), serializer="json")
    declare(queue, every=timedelta(minutes=1))  # takes fired_at, a datetime json cannot encode
    with pytest.raises(ConfigurationError, match="schedule 'job' cannot store its task") as found:
        sitq.Worker(queue)
    assert "current_task().meta['sitq.fired_at']" in str(found.value)
    sitq.Worker(queue, scheduler=False)


def test_a_schedule_that_fails_at_a_pass_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> list[datetime]:
        clock = StepClock(START)
        backend = MemoryBackend()
        backend.clock = clock
        queue = TaskQueue(backend)
        declare(queue, every=timedelta(minutes=1))
        scheduler = Scheduler(queue)

        @queue.task
        def takes(thing: object) -> None: ...

        queue.schedule(takes, every=60, args=(threading.Lock(),), name="poisoned")
        await scheduler.tick()
        clock.now = START + minutes(2)
        await scheduler.tick()
        return await fired(queue, "job")

    assert asyncio.run(main()) == [
        datetime.fromtimestamp(START + minutes(m), timezone.utc) for m in (1, 2)
    ]
    assert "firing schedule 'poisoned' failed" in caplog.text
