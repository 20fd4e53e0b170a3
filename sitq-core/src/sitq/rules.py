"""The rules every backend applies alike, written once: status text, the attempt limit of a
task whose worker keeps dying, the errors of a taken task id, the checks of ``list_tasks`` and
``purge`` arguments, and the folding of per-status counts.

A backend imports these instead of restating them, so the three stores cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from .errors import ConfigurationError
from .task import FINAL_STATUSES, TaskStatus

#: Every status, in lifecycle order.
ALL_STATUSES = tuple(TaskStatus)

#: The orders `Backend.list_tasks` accepts.
LIST_ORDERS = ("oldest", "newest")

#: Stored text → status (a store keeps a status as its ``value``, e.g. ``"pending"``).
STATUS_BY_TEXT: Mapping[str, TaskStatus] = MappingProxyType({s.value: s for s in TaskStatus})

#: The error stored on a task that went ``dead`` because its lease lapsed once too often.
LOST_WORKER_ERROR = "the worker running this task was lost (its lease expired) too many times"


def status_from_text(text: str) -> TaskStatus:
    """The status stored as ``text``."""
    return STATUS_BY_TEXT[text]


# -- the attempt limit -------------------------------------------------------------------------


def attempt_limit(max_attempts: int, max_retries: int | None) -> int:
    """How many attempts a task may use before a lapsed lease kills it instead of requeueing
    it: ``max(max_attempts, max_retries + 1)`` (a task asking for more retries gets them)."""
    return max(max_attempts, (max_retries or 0) + 1)


def attempts_spent(attempts: int, max_attempts: int, max_retries: int | None) -> bool:
    """True if a task whose lease lapsed after ``attempts`` attempts goes ``dead``."""
    return attempts >= attempt_limit(max_attempts, max_retries)


def attempts_spent_sql(
    max_attempts: str, *, attempts: str = "attempts", max_retries: str = "max_retries",
    greatest: str = "MAX",
) -> str:  # fmt: skip
    """`attempts_spent` as a SQL condition over the given expressions (parameter, columns).

    ``greatest`` is the dialect's two-argument maximum: ``MAX`` in SQLite, ``greatest`` in
    PostgreSQL.
    """
    return f"{attempts} >= {greatest}({max_attempts}, coalesce({max_retries}, 0) + 1)"


# -- task ids ----------------------------------------------------------------------------------


def taken_id_error(task_id: str) -> ConfigurationError:
    """The error of an enqueue whose record has an id that is already stored."""
    return ConfigurationError(
        f"a task with id {task_id!r} already exists; let sitq choose task ids "
        "(nothing in this enqueue was stored)"
    )


def repeated_id_error(task_id: str) -> ConfigurationError:
    """The error of an enqueue naming one id twice in its batch."""
    return ConfigurationError(
        f"task id {task_id!r} appears twice in one enqueue_many; let sitq choose task ids "
        "(nothing in this enqueue was stored)"
    )


def first_repeated_id(task_ids: Iterable[str]) -> str | None:
    """The first id that appears a second time in ``task_ids``, or None."""
    seen: set[str] = set()
    for task_id in task_ids:
        if task_id in seen:
            return task_id
        seen.add(task_id)
    return None


# -- arguments of list_tasks and purge ---------------------------------------------------------


def check_statuses(statuses: Iterable[TaskStatus] | str | None) -> frozenset[TaskStatus] | None:
    """``statuses`` of `Backend.list_tasks` or `Backend.purge` as a set (None stays None).

    One status (``TaskStatus.FAILED`` or ``"failed"``) is taken as a list of one. Anything
    else that is not a status raises `ConfigurationError` naming the accepted values.
    """
    if statuses is None:
        return None
    if isinstance(statuses, (str, TaskStatus)):
        statuses = [statuses]  # type: ignore[list-item]
    try:
        return frozenset(TaskStatus(s) for s in statuses)
    except (ValueError, TypeError):
        raise ConfigurationError(
            f"statuses must be TaskStatus values ({', '.join(s.value for s in TaskStatus)}) "
            f"or one of them, got {statuses!r}"
        ) from None


def check_list_args(
    statuses: Iterable[TaskStatus] | str | None, limit: int | None, order: str
) -> frozenset[TaskStatus] | None:
    """Validate the arguments of `Backend.list_tasks`; return ``statuses`` as a set (or None).

    Raises `ConfigurationError` naming the bad argument.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ConfigurationError(f"limit must be an int >= 0 or None, got {limit!r}")
    if order not in LIST_ORDERS:
        raise ConfigurationError(f"order must be one of {', '.join(LIST_ORDERS)}, got {order!r}")
    return check_statuses(statuses)


def purge_statuses(statuses: Iterable[TaskStatus] | str | None) -> frozenset[TaskStatus]:
    """The statuses `Backend.purge` deletes: ``statuses`` checked as `check_statuses` does,
    every final status by default."""
    wanted = check_statuses(statuses)
    return FINAL_STATUSES if wanted is None else wanted


def status_texts(statuses: Iterable[TaskStatus]) -> list[str]:
    """The stored texts of ``statuses``, sorted (stable statement parameters)."""
    return sorted(s.value for s in statuses)


# -- counts ------------------------------------------------------------------------------------


def fold_counts(rows: Iterable[tuple[str | TaskStatus, int]]) -> dict[TaskStatus, int]:
    """``(status, n)`` rows summed into a count for every status, zero included."""
    counts = dict.fromkeys(ALL_STATUSES, 0)
    for status, n in rows:
        counts[TaskStatus(status)] += n
    return counts


def fold_queue_counts(
    rows: Iterable[tuple[str, str | TaskStatus, int]],
) -> dict[str, dict[TaskStatus, int]]:
    """``(queue, status, n)`` rows summed per queue, every status present in each queue seen
    (queues without a row are absent)."""
    found: dict[str, dict[TaskStatus, int]] = {}
    for queue, status, n in rows:
        found.setdefault(queue, dict.fromkeys(ALL_STATUSES, 0))[TaskStatus(status)] += n
    return found
