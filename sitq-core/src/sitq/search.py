"""What `Backend.search_tasks` finds, the same on every backend: `TaskSearch` and its rule.

A search returns the newest tasks first (latest enqueued first), a page at a time: the next
page is the same search with ``before`` set to the id of the last task of this one (keyset
pages: each costs the same however deep, and tasks enqueued meanwhile shift nothing).

Text is matched as a substring: the function name and the error in any case (ASCII letters;
SQLite's ``LIKE``), the encoded arguments (``payload``) as exact bytes of its UTF-8 encoding
(a JSON argument ``"Ada"`` is found by ``Ada``; a pickle's strings too, as it stores them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .errors import ConfigurationError
from .records import TaskRecord
from .rules import check_statuses
from .task import TaskStatus

#: The most tasks one search returns.
MAX_SEARCH_LIMIT = 1000


@dataclass(frozen=True)
class TaskSearch:
    """One page of a task search (every field narrows it; None means any).

    :param statuses: only tasks in these statuses.
    :param queue: only tasks of this queue.
    :param function: only tasks whose function name holds this text (any case).
    :param text: only tasks holding this text in their function name or error (any case) or
        in their encoded arguments (exact bytes).
    :param before: only tasks enqueued before the task of this id (the last one of the
        previous page); an id no longer stored gives an empty page.
    :param limit: at most this many tasks (1 to `MAX_SEARCH_LIMIT`).
    """

    statuses: frozenset[TaskStatus] | None = None
    queue: str | None = None
    function: str | None = None
    text: str | None = None
    before: str | None = None
    limit: int = 50

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int):
            raise ConfigurationError(f"TaskSearch limit must be an int, got {self.limit!r}")
        if not 1 <= self.limit <= MAX_SEARCH_LIMIT:
            raise ConfigurationError(
                f"TaskSearch limit must be 1 to {MAX_SEARCH_LIMIT}, got {self.limit}; "
                "read further pages with before="
            )
        object.__setattr__(self, "statuses", check_statuses(self.statuses))
        for name in ("queue", "function", "text", "before"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ConfigurationError(f"TaskSearch {name} must be a str or None, got {value!r}")
            if value == "":
                object.__setattr__(self, name, None)

    def matches(self, record: TaskRecord) -> bool:
        """True if ``record`` passes every filter but ``before`` and ``limit`` (the rule the
        SQL of each backend follows)."""
        if self.statuses is not None and record.status not in self.statuses:
            return False
        if self.queue is not None and record.queue != self.queue:
            return False
        if self.function is not None and not _holds(record.function, self.function):
            return False
        if self.text is not None:
            return (
                _holds(record.function, self.text)
                or _holds(record.error or "", self.text)
                or self.text.encode() in record.payload
            )
        return True


def _holds(value: str, text: str) -> bool:
    """True if ``value`` holds ``text``, ASCII letters in any case (as SQL ``LIKE``)."""
    return _ascii_lower(text) in _ascii_lower(value)


_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _ascii_lower(value: str) -> str:
    return value.translate(_LOWER)


def like_pattern(text: str) -> str:
    """A ``LIKE`` pattern (escape character ``\\``) matching any value that holds ``text``."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def newest_page(records: Iterable[TaskRecord], search: TaskSearch) -> list[TaskRecord]:
    """The page of ``search`` among ``records`` given newest first (what a backend without
    an index of its own does)."""
    found: list[TaskRecord] = []
    started = search.before is None
    for record in records:
        if not started:
            started = record.id == search.before
            continue
        if search.matches(record):
            found.append(record)
            if len(found) >= search.limit:
                break
    return found


__all__ = ["MAX_SEARCH_LIMIT", "TaskSearch", "like_pattern", "newest_page"]
