"""What a store keeps of each periodic schedule, and the rules every backend applies to it.

A schedule's fires are decided in the store: a fire is a unique ``(schedule, fire time)`` row
written in the same transaction as its task, so however many schedulers race for it, one
write wins and the others learn that it exists (`sitq.backend.Backend.enqueue_fire`). Next to
the fire rows, one `ScheduleState` per schedule says whether it is paused and up to when its
fires are decided, which is where every scheduler starts looking for due fire times.
"""

from __future__ import annotations

from dataclasses import dataclass

#: How far (seconds) behind a schedule's ``decided_until`` a fire row is kept. A fire time
#: older than that is refused (`fire_is_stale`), and its row may be deleted: no scheduler
#: looks back so far unless it stalled between reading the state and writing the fire.
FIRE_MEMORY = 3600.0


@dataclass(frozen=True)
class ScheduleState:
    """The stored state of one schedule (``sitq schedules`` shows it).

    :param name: the schedule's name.
    :param paused: True while ``sitq schedules pause`` holds it: no fire is stored.
    :param decided_until: epoch seconds up to which its fire times are decided (stored,
        skipped, or before it was first seen or last resumed); schedulers look after it.
    :param last_fire: the latest fire time stored, or None.
    :param last_task_id: the task stored for ``last_fire``, or None.
    :param definition: when it fires, as the scheduler started last described it
        (``Schedule.describe``); None if no scheduler added it.
    """

    name: str
    paused: bool
    decided_until: float
    last_fire: float | None = None
    last_task_id: str | None = None
    definition: str | None = None


def fire_is_stale(fire_time: float, decided_until: float) -> bool:
    """True if a fire at ``fire_time`` is too old to store (see `FIRE_MEMORY`)."""
    return fire_time <= decided_until - FIRE_MEMORY


__all__ = ["FIRE_MEMORY", "ScheduleState", "fire_is_stale"]
