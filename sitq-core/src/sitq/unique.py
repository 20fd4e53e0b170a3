"""Unique tasks: which stored task a ``dedupe_key`` refuses a duplicate of.

A record with a ``dedupe_key`` is refused, and the stored task's id returned, when a stored
task with the same key has a status in the record's ``unique_states`` and was created at or
after ``now - unique_for`` (`is_duplicate`). ``unique_states`` is named by a preset
(`UNIQUE_PRESETS`) or listed; `unique_states_from` reads either, once, where the user gives it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from .errors import ConfigurationError
from .task import TaskStatus

_QUEUED = frozenset({TaskStatus.WAITING, TaskStatus.PENDING})
_ACTIVE = _QUEUED | {TaskStatus.RUNNING}

#: The statuses a ``dedupe_key`` refuses duplicates of when ``unique_states`` is None.
DEFAULT_UNIQUE_STATES = _ACTIVE

#: Named sets of statuses for ``unique_states=`` (after Oban's named groups).
UNIQUE_PRESETS: dict[str, frozenset[TaskStatus]] = {
    "queued": _QUEUED,  # not started yet: a running task does not refuse a new one
    "active": _ACTIVE,  # the default: not ended yet
    "successful": _ACTIVE | {TaskStatus.SUCCEEDED},  # ... or ended well
    "all": frozenset(TaskStatus),
}

UniqueStates = str | TaskStatus | Iterable[str | TaskStatus]


def unique_states_from(value: UniqueStates | None) -> frozenset[TaskStatus] | None:
    """The statuses meant by ``value``: a preset name (`UNIQUE_PRESETS`), a status, or an
    iterable of statuses or their names; None stays None (the default)."""
    if value is None:
        return None
    if isinstance(value, str) and value in UNIQUE_PRESETS:
        return UNIQUE_PRESETS[value]
    items = [value] if isinstance(value, (str, TaskStatus)) else list(value)
    try:
        states = frozenset(TaskStatus(item) for item in items)
    except ValueError:
        states = frozenset()
    if not states:
        raise ConfigurationError(
            f"unique_states={value!r} names no task status; give a preset "
            f"({', '.join(repr(p) for p in UNIQUE_PRESETS)}) or statuses such as "
            "['pending', 'running', 'succeeded']"
        )
    return states


def unique_seconds(value: timedelta | float | None) -> float | None:
    """``unique_for`` as seconds (a `timedelta` or a number > 0); None stays None."""
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise ConfigurationError(
            f"unique_for must be a timedelta or a number of seconds > 0, got {value!r}"
        )
    return float(seconds)


def check_unique(
    dedupe_key: str | None,
    unique_for: timedelta | float | None,
    unique_states: UniqueStates | None,
) -> tuple[float | None, frozenset[TaskStatus] | None]:
    """``unique_for`` in seconds and ``unique_states`` as statuses, checked; they widen a
    ``dedupe_key``, so `ConfigurationError` without one."""
    if dedupe_key is None and (unique_for is not None or unique_states is not None):
        raise ConfigurationError(
            "unique_for and unique_states say how long and over which states a dedupe_key "
            "holds; give the task a dedupe_key too, e.g. .options(dedupe_key=f'report:{day}', "
            "unique_for=timedelta(hours=1))"
        )
    return unique_seconds(unique_for), unique_states_from(unique_states)


def is_duplicate(
    stored_status: TaskStatus,
    stored_created_at: float,
    unique_states: frozenset[TaskStatus] | None,
    unique_for: float | None,
    now: float,
) -> bool:
    """True if a stored task (same ``dedupe_key``) refuses a new record whose uniqueness is
    ``unique_states`` / ``unique_for``, at ``now``."""
    states = DEFAULT_UNIQUE_STATES if unique_states is None else unique_states
    if stored_status not in states:
        return False
    return unique_for is None or stored_created_at >= now - unique_for


__all__ = [
    "DEFAULT_UNIQUE_STATES",
    "UNIQUE_PRESETS",
    "UniqueStates",
    "check_unique",
    "is_duplicate",
    "unique_seconds",
    "unique_states_from",
]
