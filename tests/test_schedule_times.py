"""Fire times of cron and interval schedules, as pure functions: DST in two time zones, the
shortcuts and the seconds field, interval multiples, and the catch-up plan (`plan_fires`)."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

import sitq
from sitq.errors import ConfigurationError
from sitq.schedule_times import Cron, Every, trigger
from sitq.schedules import Schedule, make_schedule, plan_fires

pytestmark = [pytest.mark.needs_memory]

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")

#: Spring-forward and fall-back days of 2026: Berlin jumps 02:00 -> 03:00 on 29 March and
#: repeats 02:00-03:00 on 25 October; New York jumps 02:00 -> 03:00 on 8 March and repeats
#: 01:00-02:00 on 1 November.
DST_DAYS = [
    (BERLIN, datetime(2026, 3, 29), datetime(2026, 10, 25), "30 2 * * *"),
    (NEW_YORK, datetime(2026, 3, 8), datetime(2026, 11, 1), "30 2 * * *"),
    (NEW_YORK, datetime(2026, 3, 8), datetime(2026, 11, 1), "30 1 * * *"),
]


def fires(cron: str, tz: ZoneInfo, start: datetime, days: int) -> list[datetime]:
    """The fire times of ``cron`` over ``days`` days from noon the day before ``start``."""
    after = start.replace(hour=12, tzinfo=tz) - timedelta(days=1)
    until = after + timedelta(days=days)
    return [
        datetime.fromtimestamp(t, tz)
        for t in Cron(cron, tz).between(after.timestamp(), until.timestamp())
    ]


@pytest.mark.parametrize(("tz", "spring", "fall", "cron"), DST_DAYS)
def test_a_daily_job_runs_once_on_each_dst_day(
    tz: ZoneInfo, spring: datetime, fall: datetime, cron: str
) -> None:
    """One run per day across both DST changes: on the spring-forward day a wall time that
    does not exist runs at the first valid wall time after it, and on the fall-back day a
    wall time that occurs twice runs once, at its first occurrence."""
    minute, hour = (int(field) for field in cron.split()[:2])
    for day in (spring, fall):
        found = fires(cron, tz, day, 3)
        assert [f.date() for f in found] == [(day + timedelta(days=i)).date() for i in range(3)]
    spring_fire = fires(cron, tz, spring, 1)[0]
    exists = datetime.fromtimestamp(
        spring.replace(hour=hour, minute=minute, tzinfo=tz).timestamp(), tz
    )
    if (exists.hour, exists.minute) != (hour, minute):  # a wall time the day skips
        assert (spring_fire.hour, spring_fire.minute) == (3, 0)
    else:
        assert (spring_fire.hour, spring_fire.minute) == (hour, minute)
    fall_fire = fires(cron, tz, fall, 1)[0]
    assert (fall_fire.hour, fall_fire.minute) == (hour, minute)
    wall = fall.replace(hour=hour, minute=minute, tzinfo=tz)
    first, second = wall.replace(fold=0), wall.replace(fold=1)
    assert fall_fire.timestamp() == min(first.timestamp(), second.timestamp())


@pytest.mark.parametrize(
    ("tz", "day", "hours"),
    [
        (BERLIN, datetime(2026, 3, 29), 23),
        (BERLIN, datetime(2026, 10, 25), 25),
        (NEW_YORK, datetime(2026, 3, 8), 23),
        (NEW_YORK, datetime(2026, 11, 1), 25),
    ],
)
def test_a_wildcard_job_runs_by_elapsed_time_across_dst(
    tz: ZoneInfo, day: datetime, hours: int
) -> None:
    """``*/30 * * * *`` runs every 30 real minutes: the repeated hour of the fall-back day
    runs twice, the skipped hour of the spring-forward day not at all."""
    start = day.replace(tzinfo=tz).timestamp()
    end = (day + timedelta(days=1)).replace(tzinfo=tz).timestamp()
    found = list(Cron("*/30 * * * *", tz).between(start - 1, end - 1))
    assert len(found) == hours * 2
    assert all(b - a == 1800 for a, b in itertools.pairwise(found))


def test_shortcuts_and_the_seconds_field() -> None:
    """``@hourly`` and friends expand to their five fields; six fields start with seconds."""
    base = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()
    assert list(Cron("@hourly").between(base, base + 3 * 3600)) == [
        base + 3600,
        base + 7200,
        base + 10800,
    ]
    assert Cron("@daily").next_after(base) == base + 86400
    assert list(Cron("*/20 * * * * *").between(base, base + 60)) == [
        base + 20,
        base + 40,
        base + 60,
    ]
    assert Cron("0 6 * * MON-FRI").last_at(base) is not None


@given(
    step=st.integers(min_value=1, max_value=86_400),
    after=st.floats(min_value=0, max_value=4e9),
    span=st.floats(min_value=0, max_value=50_000),
)
def test_an_interval_fires_at_its_multiples(step: int, after: float, span: float) -> None:
    """Every process computes the same fire times: the multiples of the interval in
    ``(after, until]``, ascending; `last_at` is the last of them at or before a time."""
    found = list(Every(step).between(after, after + span))
    assert found == sorted(set(found))
    assert all(after < t <= after + span and t % step == 0 for t in found)
    assert len(found) == int((after + span) // step) - int(after // step)
    last = Every(step).last_at(after + span)
    assert last is not None and last <= after + span < last + step


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cron": "61 * * * *"}, "not a cron expression"),
        ({"cron": "* * *"}, "not a cron expression"),
        ({"cron": "@sometimes"}, "not a cron expression"),
        ({}, "exactly one of"),
        ({"cron": "* * * * *", "every": 5}, "exactly one of"),
        ({"every": 0.5}, "at least 1 s"),
        ({"every": timedelta(seconds=5), "tz": "Europe/Berlin"}, "cron schedules only"),
        ({"cron": "* * * * *", "tz": "Mars/Olympus"}, "IANA time zone"),
    ],
)
def test_bad_schedules_are_refused_where_declared(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        trigger(cron=kwargs.get("cron"), every=kwargs.get("every"), tz=kwargs.get("tz"))  # type: ignore[arg-type]


def _schedule(catch_up: str, **fields: object) -> Schedule:
    queue = sitq.TaskQueue("memory://")

    @queue.task
    def job() -> None: ...

    return make_schedule(job, every=60, catch_up=catch_up, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("catch_up", "runs", "skipped"),
    [
        ("latest", [3000.0 - 60 * 2, 3000.0 - 60, 3000.0], 3000.0 - 60 * 3),
        ("none", [3000.0 - 60, 3000.0], 3000.0 - 60 * 2),
        ("all", [float(t) for t in range(1260, 3001, 60)], 1200.0),
    ],
)
def test_catch_up_policies_plan_exactly_their_runs(
    catch_up: str, runs: list[float], skipped: float
) -> None:
    """Decided up to 0, now 3000, grace 100 s, backfill 1800 s, every minute: the on-time
    fires (2940, 3000) always run; of the missed ones ``latest`` runs the last, ``none``
    nothing, ``all`` those within the backfill window."""
    schedule = _schedule(catch_up, grace=100, backfill=1800)
    plan = plan_fires(schedule, 0.0, 3000.0)
    assert plan.run == runs
    assert plan.skipped == skipped
    assert catch_up in plan.reason


def test_nothing_missed_plans_only_on_time_fires() -> None:
    schedule = _schedule("none", grace=100)
    plan = plan_fires(schedule, 2900.0, 3000.0)
    assert (plan.run, plan.skipped) == ([2940.0, 3000.0], None)
    assert plan_fires(schedule, 3000.0, 3000.0).run == []
    assert plan_fires(schedule, 3100.0, 3000.0).run == [], "a clock stepped back plans nothing"
