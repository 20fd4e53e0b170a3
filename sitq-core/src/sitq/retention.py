"""How long finished tasks are kept: the retention settings, durations as people write them,
and the per-status cutoffs `Backend.prune` takes.

Succeeded and cancelled tasks are kept for ``retention`` (default 7 days), failed and dead
ones for ``failed_retention`` (default 30 days: someone may still want to read or retry them).
None or 0 keeps them until purged by hand.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, NamedTuple

from .errors import ConfigurationError
from .task import FINAL_STATUSES, TaskStatus
from .validation import check_seconds, is_number

if TYPE_CHECKING:
    from .backend import Backend

#: Seconds succeeded and cancelled tasks are kept by default.
DEFAULT_RETENTION = 7 * 86400.0
#: Seconds failed and dead tasks are kept by default.
DEFAULT_FAILED_RETENTION = 30 * 86400.0

#: Tasks deleted per `Backend.prune` call: one short write, so claims and finishes of busy
#: workers never wait long behind a pruner.
PRUNE_BATCH = 1000
#: Seconds between two batches, in which other writers take the lock.
PRUNE_PAUSE = 0.02

#: The statuses ``retention`` applies to.
KEPT_FOR_RETENTION = frozenset({TaskStatus.SUCCEEDED, TaskStatus.CANCELLED})
#: The statuses ``failed_retention`` applies to.
KEPT_FOR_FAILED_RETENTION = frozenset({TaskStatus.FAILED, TaskStatus.DEAD})

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*")

#: How to write a duration, for error messages.
DURATION_FORMS = "90, 90s, 15m, 12h, 7d or 2w"


def parse_duration(text: str) -> float | str:
    """Seconds from ``90``, ``90s``, ``15m``, ``12h``, ``7d`` or ``2w``; the text itself if it
    is none of these (the caller's check then refuses it, naming the option)."""
    match = _DURATION.fullmatch(text)
    if not match:
        return text
    return float(match[1]) * _UNITS[match[2] or "s"]


def check_retention(name: str, value: object) -> float | None:
    """A retention: seconds > 0, or None. A `timedelta` counts in seconds, and 0 means "keep
    forever", as None does. (Text such as ``"7d"`` is parsed where settings are read:
    `parse_duration`.)"""
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if not is_number(value):
        raise ConfigurationError(
            f"{name} must be a number of seconds >= 0 or a timedelta (0 or None: keep "
            f"forever; {DURATION_FORMS} in settings), got {value!r}"
        )
    seconds = check_seconds(name, value, allow_zero=True)
    return seconds or None


def retention_cutoffs(
    now: float, retention: float | None, failed_retention: float | None
) -> dict[TaskStatus, float]:
    """The ``finished_before`` of `Backend.prune` for these settings at ``now``: statuses kept
    forever are left out (an empty dict: nothing to prune)."""
    cutoffs: dict[TaskStatus, float] = {}
    for statuses, keep in (
        (KEPT_FOR_RETENTION, retention),
        (KEPT_FOR_FAILED_RETENTION, failed_retention),
    ):
        if keep:
            cutoffs.update(dict.fromkeys(statuses, now - keep))
    return cutoffs


class PrunePass(NamedTuple):
    """What one pass of `prune_in_batches` did."""

    #: Tasks deleted.
    deleted: int
    #: False if the pass stopped at its time limit with expired tasks left.
    complete: bool


async def prune_in_batches(
    backend: Backend, cutoffs: Mapping[TaskStatus, float], *, max_seconds: float | None = None
) -> PrunePass:
    """Delete the tasks past their cutoff through `Backend.prune`, `PRUNE_BATCH` at a time
    with a short pause between batches, until none is left or ``max_seconds`` have passed
    (None: no limit); then let the backend give the space back."""
    loop = asyncio.get_running_loop()
    deadline = None if max_seconds is None else loop.time() + max_seconds
    deleted = 0
    complete = False
    while True:
        count = await backend.prune(cutoffs, PRUNE_BATCH)
        deleted += count
        if count < PRUNE_BATCH:
            complete = True
            break
        if deadline is not None and loop.time() >= deadline:
            break
        await asyncio.sleep(PRUNE_PAUSE)
    if deleted:
        await backend.reclaim_space()
    return PrunePass(deleted, complete)


def check_prune_args(
    finished_before: Mapping[TaskStatus, float] | float, limit: int
) -> dict[TaskStatus, float]:
    """The arguments of `Backend.prune` checked, as ``{final status: cutoff}``: one number is
    the cutoff of every final status. Raises `ConfigurationError` for a status that is not
    final (pending and running tasks are never pruned), a cutoff that is not a finite number,
    or a ``limit`` that is not an int >= 1."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigurationError(f"limit must be an int >= 1, got {limit!r}")
    if not isinstance(finished_before, Mapping):
        finished_before = dict.fromkeys(FINAL_STATUSES, finished_before)
    cutoffs: dict[TaskStatus, float] = {}
    for status, cutoff in finished_before.items():
        try:
            final = TaskStatus(status)
        except ValueError:
            final = None
        if final is None or not final.is_final:
            raise ConfigurationError(
                f"prune takes cutoffs for final statuses only "
                f"({', '.join(sorted(s.value for s in FINAL_STATUSES))}), got {status!r}"
            )
        if not is_number(cutoff) or not math.isfinite(cutoff):
            raise ConfigurationError(
                f"the cutoff of {final.value} tasks must be a finite number of epoch seconds, "
                f"got {cutoff!r}"
            )
        cutoffs[final] = float(cutoff)
    return cutoffs


__all__ = [
    "DEFAULT_FAILED_RETENTION",
    "DEFAULT_RETENTION",
    "DURATION_FORMS",
    "KEPT_FOR_FAILED_RETENTION",
    "KEPT_FOR_RETENTION",
    "PRUNE_BATCH",
    "PRUNE_PAUSE",
    "PrunePass",
    "check_prune_args",
    "check_retention",
    "parse_duration",
    "prune_in_batches",
    "retention_cutoffs",
]
