"""Periodic schedules: `Schedule`, the catch-up rule (`plan_fires`), and declaring them.

``@queue.periodic(cron=..., tz=..., name=...)`` or ``@queue.periodic(every=timedelta(...))``
declares a task and its schedule in one go; ``queue.schedule(task.options(...), cron=...,
args=...)`` schedules a task declared already. Schedules are known by name (by default their
task's name); a worker's scheduler (`sitq.worker.scheduler`) fires them, and the store decides
each fire exactly once (`sitq.schedule_state`).

**Missed fires.** A fire time up to ``grace`` late is on time and always runs. Older ones were
missed (every scheduler was down); what runs of them is the schedule's ``catch_up``:

* ``"latest"`` (default): one run, for the most recent missed time;
* ``"all"``: every missed time within ``backfill`` of now (older ones are dropped);
* ``"none"``: none.

A paused schedule fires nothing, and on resume the fire times of the pause are not caught up.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from .errors import ConfigurationError
from .schedule_times import Cron, Trigger, trigger, tz_name
from .tasks import DeclaredTask, Enqueuer
from .validation import check_choice, check_seconds, check_stored_text

if TYPE_CHECKING:
    from .task import Task

CatchUp = Literal["latest", "all", "none"]
CATCH_UP_POLICIES: tuple[str, ...] = ("latest", "all", "none")

#: Header naming the schedule that made a task.
SCHEDULE_HEADER = "sitq.schedule"
#: Header with the fire time that made a task (ISO 8601, in the schedule's time zone).
FIRED_AT_HEADER = "sitq.fired_at"
#: The argument a task function takes to be given its fire time.
FIRED_AT_ARGUMENT = "fired_at"

DEFAULT_GRACE = timedelta(seconds=60)
DEFAULT_BACKFILL = timedelta(days=1)


def _seconds(name: str, value: timedelta | float) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    return check_seconds(name, seconds, allow_zero=True)


@dataclass(frozen=True)
class Schedule:
    """One periodic schedule: which task, when, with which arguments, and what to do with
    missed fires. Built by ``queue.periodic`` and ``queue.schedule``.

    :param name: the name it is stored and operated by (``sitq schedules pause NAME``).
    :param enqueuer: the declared task, or ``task.options(...)`` with the options to store
        its calls with.
    :param trigger: when it fires (`sitq.schedule_times.Cron` or `~sitq.schedule_times.Every`).
    :param args: positional arguments of every call.
    :param kwargs: keyword arguments of every call.
    :param catch_up: ``"latest"``, ``"all"`` or ``"none"`` (see the module docstring).
    :param grace: seconds a fire may be late and still count as on time.
    :param backfill: seconds back ``catch_up="all"`` runs missed fires.
    """

    name: str
    enqueuer: Enqueuer[Any, Any]
    trigger: Trigger
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    catch_up: CatchUp = "latest"
    grace: float = DEFAULT_GRACE.total_seconds()
    backfill: float = DEFAULT_BACKFILL.total_seconds()

    @property
    def task(self) -> DeclaredTask[Any, Any]:
        """The declared task it runs."""
        return self.enqueuer._declared

    @property
    def task_name(self) -> str:
        """The name of the task it runs."""
        return self.task.name

    @property
    def tz(self) -> tzinfo:
        """The time zone its fire times are shown in (and a cron is evaluated in)."""
        found: tzinfo = getattr(self.trigger, "tz", None) or timezone.utc
        return found

    @property
    def passes_fired_at(self) -> bool:
        """True if the task function takes a ``fired_at`` argument (it is then given it)."""
        return _takes(self.task.function, FIRED_AT_ARGUMENT)

    def describe(self) -> str:
        """``cron 0 6 * * MON-FRI (Europe/Berlin)`` or ``every 0:00:10``."""
        text = self.trigger.describe()
        return f"{text} ({tz_name(self.tz)})" if isinstance(self.trigger, Cron) else text

    def fired_at(self, fire_time: float) -> datetime:
        """A fire time as an aware datetime in the schedule's time zone."""
        return datetime.fromtimestamp(fire_time, self.tz)

    def task_for(self, fire_time: float) -> Task:
        """The `sitq.Task` of one fire: its call (``fired_at`` added if the function takes
        it), its task's options, and the headers naming the schedule and the fire time."""
        fired_at = self.fired_at(fire_time)
        kwargs = dict(self.kwargs)
        if self.passes_fired_at:
            kwargs[FIRED_AT_ARGUMENT] = fired_at
        task = self.enqueuer._task(self.args, kwargs)
        task.meta = {
            **task.meta,
            SCHEDULE_HEADER: self.name,
            FIRED_AT_HEADER: fired_at.isoformat(),
        }
        return task


def _takes(function: Callable[..., Any], name: str) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    found = parameters.get(name)
    return found is not None and found.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )


def make_schedule(
    enqueuer: Enqueuer[Any, Any],
    *,
    cron: str | None = None,
    every: timedelta | float | None = None,
    tz: str | tzinfo | None = None,
    name: str | None = None,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    catch_up: CatchUp = "latest",
    grace: timedelta | float = DEFAULT_GRACE,
    backfill: timedelta | float = DEFAULT_BACKFILL,
) -> Schedule:
    """A checked `Schedule`; `ConfigurationError` names a bad argument and its fix."""
    if not isinstance(enqueuer, Enqueuer):
        raise ConfigurationError(
            f"schedule() takes a declared task (@queue.task) or task.options(...), got "
            f"{enqueuer!r}; declare the function with @queue.task first, or use "
            "@queue.periodic(...) on it"
        )
    schedule_name = enqueuer._declared.name if name is None else name
    if not isinstance(schedule_name, str) or not schedule_name.strip():
        raise ConfigurationError(f"a schedule's name= must be a non-empty string, got {name!r}")
    check_stored_text("schedule name=", schedule_name)
    if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
        raise ConfigurationError(f"args= must be a tuple of arguments, got {args!r}")
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise ConfigurationError(f"kwargs= must be a mapping of arguments, got {kwargs!r}")
    schedule = Schedule(
        name=schedule_name,
        enqueuer=enqueuer,
        trigger=trigger(cron=cron, every=every, tz=tz),
        args=tuple(args),
        kwargs=dict(kwargs or {}),
        catch_up=check_choice("catch_up", catch_up, CATCH_UP_POLICIES),  # type: ignore[arg-type]
        grace=_seconds("grace", grace),
        backfill=_seconds("backfill", backfill),
    )
    if schedule.passes_fired_at and FIRED_AT_ARGUMENT in schedule.kwargs:
        raise ConfigurationError(
            f"kwargs= of schedule {schedule_name!r} sets {FIRED_AT_ARGUMENT!r}, which the "
            "scheduler passes itself (the fire time); leave it out"
        )
    return schedule


@dataclass(frozen=True)
class FirePlan:
    """What one scheduler pass does for one schedule (`plan_fires`).

    :param run: the fire times to store, ascending.
    :param skipped: the latest missed fire time dropped by the catch-up policy, or None.
    :param reason: why it was dropped (for the ``sitq_schedule_skipped`` hook).
    """

    run: list[float]
    skipped: float | None = None
    reason: str = ""


def plan_fires(schedule: Schedule, decided_until: float, now: float) -> FirePlan:
    """The fire times of ``schedule`` to store at ``now``, its fires decided up to
    ``decided_until``: every on-time one (at most ``grace`` old) and the missed ones its
    ``catch_up`` keeps (see the module docstring). Pure: the same inputs give the same plan
    in every process."""
    when = schedule.trigger
    missed_until = now - schedule.grace
    run: list[float] = []
    skipped: float | None = None
    reason = ""
    if decided_until < missed_until:
        late = f"missed by more than {timedelta(seconds=schedule.grace)}"
        if schedule.catch_up == "all":
            start = max(decided_until, now - schedule.backfill)
            run.extend(when.between(start, missed_until))
            dropped = when.last_at(start) if start > decided_until else None
            if dropped is not None and dropped > decided_until:
                skipped, reason = dropped, f"{late}, before backfill; catch_up='all'"
        else:
            latest = when.last_at(missed_until)
            if latest is not None and latest > decided_until:
                if schedule.catch_up == "latest":
                    run.append(latest)
                    earlier = when.last_at(latest - 0.001)
                    if earlier is not None and earlier > decided_until:
                        skipped, reason = earlier, f"{late}; catch_up='latest'"
                else:
                    skipped, reason = latest, f"{late}; catch_up='none'"
    run.extend(when.between(max(decided_until, missed_until), now))
    return FirePlan(run, skipped, reason)


class ScheduleFields(TypedDict, total=False):
    """When and how a schedule fires, as keyword arguments of ``periodic`` and ``schedule``
    (see `make_schedule`)."""

    cron: str | None
    every: timedelta | float | None
    tz: str | tzinfo | None
    catch_up: CatchUp
    grace: timedelta | float
    backfill: timedelta | float


#: The keyword arguments of ``periodic`` that belong to the schedule (the rest are options).
SCHEDULE_FIELDS = frozenset(ScheduleFields.__annotations__)


class ScheduleBook(Mapping[str, Schedule]):
    """The schedules of one queue, by name (read-only; schedules are added by declaring)."""

    def __init__(self) -> None:
        self._by_name: dict[str, Schedule] = {}

    def add(self, schedule: Schedule) -> None:
        """Add ``schedule``; `ConfigurationError` if another one has its name."""
        other = self._by_name.get(schedule.name)
        if other is not None and other is not schedule:
            raise ConfigurationError(
                f"two schedules are named {schedule.name!r} (tasks {other.task_name!r} and "
                f"{schedule.task_name!r}); give one another name: name=..."
            )
        self._by_name[schedule.name] = schedule

    def __getitem__(self, name: str) -> Schedule:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def __repr__(self) -> str:
        return f"<ScheduleBook {list(self._by_name)}>"


__all__ = [
    "CATCH_UP_POLICIES",
    "FIRED_AT_HEADER",
    "SCHEDULE_HEADER",
    "CatchUp",
    "FirePlan",
    "Schedule",
    "ScheduleBook",
    "make_schedule",
    "plan_fires",
]
