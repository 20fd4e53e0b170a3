"""The schedule states and fire rows of one memory store (`sitq.schedule_state`'s rules,
applied under the store's lock)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from sitq.schedule_state import FIRE_MEMORY, ScheduleState, fire_is_stale


class ScheduleTable:
    """Schedule states by name and the fire times stored per schedule. Not thread-safe: the
    caller holds the store's lock."""

    def __init__(self) -> None:
        self.states: dict[str, ScheduleState] = {}
        self.fires: dict[str, set[float]] = {}

    def add(self, definitions: Mapping[str, str], now: float) -> None:
        """Create a state, decided up to ``now``, for each name that has none; store each
        one's definition."""
        for name, definition in definitions.items():
            state = self.states.get(name) or ScheduleState(name, paused=False, decided_until=now)
            self.states[name] = replace(state, definition=definition)

    def claim_fire(self, schedule: str, fire_time: float) -> bool:
        """True if the fire ``(schedule, fire_time)`` may be stored now: not paused, not
        stale, not stored before. Does not record it (`record_fire` does)."""
        state = self.states.get(schedule)
        if state is None:
            return fire_time not in self.fires.get(schedule, ())
        if state.paused or fire_is_stale(fire_time, state.decided_until):
            return False
        return fire_time not in self.fires.get(schedule, ())

    def record_fire(self, schedule: str, fire_time: float, task_id: str) -> None:
        """Store the fire row and move the state forward; forget rows past `FIRE_MEMORY`."""
        state = self.states.get(schedule) or ScheduleState(schedule, False, fire_time)
        latest = state.last_fire is None or fire_time > state.last_fire
        state = replace(
            state,
            decided_until=max(state.decided_until, fire_time),
            last_fire=fire_time if latest else state.last_fire,
            last_task_id=task_id if latest else state.last_task_id,
        )
        self.states[schedule] = state
        fires = self.fires.setdefault(schedule, set())
        fires.add(fire_time)
        horizon = state.decided_until - FIRE_MEMORY
        if len(fires) > 64 and min(fires) <= horizon:
            fires.difference_update({t for t in fires if t <= horizon})

    def skip(self, schedule: str, until: float) -> None:
        """Fires up to ``until`` are decided."""
        state = self.states.get(schedule)
        if state is not None and until > state.decided_until:
            self.states[schedule] = replace(state, decided_until=until)

    def pause(self, schedule: str, paused: bool, now: float) -> bool:
        """Pause or resume (a resume decides everything up to ``now``)."""
        state = self.states.get(schedule)
        if state is None:
            return False
        decided = state.decided_until if paused else max(state.decided_until, now)
        self.states[schedule] = replace(state, paused=paused, decided_until=decided)
        return True
