"""The task list's filter and pages: what ``/tasks?status=&queue=&task=&q=&before=`` shows.

Every filter goes to the backend's `search_tasks` (`sitq.search`), newest first, a page at a
time: the next page starts before the last task shown (keyset), so a deep page costs what the
first does, and no page counts the whole store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sitq.backend import Backend, TaskRecord
from sitq.errors import ConfigurationError
from sitq.rules import STATUS_BY_TEXT
from sitq.search import MAX_SEARCH_LIMIT, TaskSearch
from sitq.task import TaskStatus

#: Tasks on one page.
PAGE_SIZE = 50
#: The most tasks one bulk action over a whole filter changes (the flash says if more match).
BULK_LIMIT = 10_000


@dataclass(frozen=True)
class TaskFilter:
    """What the task list shows: each field narrows it; empty means any."""

    status: TaskStatus | None = None
    queue: str = ""
    task: str = ""
    text: str = ""

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> TaskFilter:
        """The filter of a query string or form (``status``, ``queue``, ``task``, ``q``);
        an unknown status is a `ConfigurationError` naming the choices."""
        status_text = params.get("status", "").strip()
        status = None
        if status_text:
            status = STATUS_BY_TEXT.get(status_text)
            if status is None:
                choices = ", ".join(s.value for s in TaskStatus)
                raise ConfigurationError(f"unknown status {status_text!r}; choose one of {choices}")
        return cls(
            status,
            params.get("queue", "").strip(),
            params.get("task", "").strip(),
            params.get("q", "").strip(),
        )

    def as_params(self) -> dict[str, str]:
        """The filter as query parameters (empty ones left out)."""
        values = {
            "status": self.status.value if self.status else "",
            "queue": self.queue,
            "task": self.task,
            "q": self.text,
        }
        return {k: v for k, v in values.items() if v}

    def search(self, before: str | None, limit: int) -> TaskSearch:
        """The backend search of this filter: ``limit`` tasks enqueued before ``before``."""
        return TaskSearch(
            statuses=None if self.status is None else frozenset([self.status]),
            queue=self.queue or None,
            function=self.task or None,
            text=self.text or None,
            before=before or None,
            limit=limit,
        )


@dataclass(frozen=True)
class TaskPage:
    """One page of the list: its tasks, and the cursor of the next page (None: last page)."""

    tasks: list[TaskRecord]
    next_before: str | None
    first: bool


async def task_page(backend: Backend, wanted: TaskFilter, before: str | None) -> TaskPage:
    """The page of tasks passing ``wanted`` enqueued before task ``before`` (None: the
    newest)."""
    found = await backend.search_tasks(wanted.search(before, PAGE_SIZE + 1))
    tasks = found[:PAGE_SIZE]
    more = len(found) > PAGE_SIZE
    return TaskPage(tasks, tasks[-1].id if more else None, before is None)


async def every_match(backend: Backend, wanted: TaskFilter) -> tuple[list[str], bool]:
    """The ids of the tasks passing ``wanted``, newest first, at most `BULK_LIMIT`; and True
    if more match. Read before any is changed, so an action cannot move the pages."""
    ids: list[str] = []
    before: str | None = None
    while len(ids) < BULK_LIMIT:
        page = await backend.search_tasks(wanted.search(before, MAX_SEARCH_LIMIT))
        ids.extend(r.id for r in page)
        if len(page) < MAX_SEARCH_LIMIT:
            return ids[:BULK_LIMIT], len(ids) > BULK_LIMIT
        before = page[-1].id
    return ids[:BULK_LIMIT], True
