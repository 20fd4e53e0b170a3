"""The task list's filter and pages: what ``/tasks?status=&queue=&task=&q=&page=`` shows.

Status and queue go to the backend (its indexes); the task name and the text (searched in
the function name, the encoded arguments and the error) are matched over the newest
`SCAN_LIMIT` tasks of that status and queue, so a page never reads the whole store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sitq.backend import Backend, TaskRecord
from sitq.errors import ConfigurationError
from sitq.rules import STATUS_BY_TEXT
from sitq.task import TaskStatus

#: Tasks on one page.
PAGE_SIZE = 50
#: The most tasks one listing reads: pages past it are not offered.
SCAN_LIMIT = 5000


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

    @property
    def narrows_in_memory(self) -> bool:
        """True if the task name or text is matched here rather than by the backend."""
        return bool(self.task or self.text)

    def as_params(self) -> dict[str, str]:
        """The filter as query parameters (empty ones left out)."""
        values = {
            "status": self.status.value if self.status else "",
            "queue": self.queue,
            "task": self.task,
            "q": self.text,
        }
        return {k: v for k, v in values.items() if v}

    def matches(self, record: TaskRecord) -> bool:
        """True if ``record`` passes the task-name and text parts of the filter."""
        if self.task and self.task.lower() not in record.function.lower():
            return False
        if self.text:
            needle = self.text.lower()
            haystacks = (
                record.function,
                record.error or "",
                record.payload.decode("utf-8", "replace"),
            )
            return any(needle in h.lower() for h in haystacks)
        return True


@dataclass(frozen=True)
class TaskPage:
    """One page of the list: its tasks and whether more follow."""

    tasks: list[TaskRecord]
    number: int
    has_next: bool
    capped: bool
    """True if the listing stopped at `SCAN_LIMIT` tasks read."""


async def matching_tasks(
    backend: Backend, wanted: TaskFilter, limit: int
) -> tuple[list[TaskRecord], bool]:
    """The newest tasks passing ``wanted``, at most ``limit``, reading at most `SCAN_LIMIT`;
    and True if that bound stopped the reading (older matches may exist)."""
    statuses = None if wanted.status is None else [wanted.status]
    read = SCAN_LIMIT if wanted.narrows_in_memory else min(limit, SCAN_LIMIT)
    records = await backend.list_tasks(
        statuses=statuses, queue=wanted.queue or None, limit=read, order="newest"
    )
    return [r for r in records if wanted.matches(r)][:limit], len(records) >= SCAN_LIMIT


async def task_page(backend: Backend, wanted: TaskFilter, number: int) -> TaskPage:
    """Page ``number`` (from 1) of the tasks passing ``wanted``, newest first."""
    number = max(1, number)
    end = number * PAGE_SIZE
    records, capped = await matching_tasks(backend, wanted, end + 1)
    return TaskPage(records[end - PAGE_SIZE : end], number, len(records) > end, capped)
