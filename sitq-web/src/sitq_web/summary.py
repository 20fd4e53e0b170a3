"""The live summary (``/api/summary``): counts per queue and status, workers, oldest pending.

`SummaryCache` reads it at most once per interval, however many viewers poll: the first
request after the interval reads it, the others wait for that read and share it. On a store
so big that a read takes long, the interval grows with it (`SLOWDOWN`), so watching the
dashboard never keeps the database busy. `Kept` is that rule for any reading (the overview's
throughput chart is kept the same way).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sitq.backend import Backend, TaskRecord
from sitq.task import TaskStatus

from .workers import WorkerView, workers_of

T = TypeVar("T")

#: Seconds a summary is served before the store is read again (the pages poll this often).
REFRESH_SECONDS = 2.0

#: A summary is kept at least this many times as long as its read took.
SLOWDOWN = 10

#: Running tasks read to find the workers: a bound, so a huge store costs one small read.
RUNNING_READ = 1000


@dataclass
class Summary:
    """One reading of the store.

    :param queues: task counts per queue and status.
    :param workers: the workers seen running tasks.
    :param oldest_pending: the pending task enqueued first, or None.
    :param workers_capped: True if more tasks run than the `RUNNING_READ` read to find the
        workers (some may be missing).
    :param read_at: when it was read (epoch seconds).
    """

    queues: dict[str, dict[TaskStatus, int]]
    workers: list[WorkerView]
    oldest_pending: TaskRecord | None
    workers_capped: bool = False
    read_at: float = field(default_factory=time.time)

    @property
    def totals(self) -> dict[TaskStatus, int]:
        """Counts per status over every queue."""
        return {s: sum(c.get(s, 0) for c in self.queues.values()) for s in TaskStatus}

    def oldest_pending_age(self) -> float | None:
        """Seconds since the oldest pending task was enqueued, or None."""
        if self.oldest_pending is None:
            return None
        return max(0.0, self.read_at - self.oldest_pending.created_at)

    def as_json(self) -> dict[str, Any]:
        """The JSON of ``/api/summary``."""
        return {
            "read_at": self.read_at,
            "totals": {s.value: n for s, n in self.totals.items()},
            "queues": {
                queue: {s.value: counts.get(s, 0) for s in TaskStatus}
                for queue, counts in sorted(self.queues.items())
            },
            "workers": [w.as_json() for w in self.workers],
            "oldest_pending": None
            if self.oldest_pending is None
            else {"id": self.oldest_pending.id, "age": self.oldest_pending_age()},
        }


async def read_summary(backend: Backend) -> Summary:
    """Read a `Summary`: one aggregate query and two bounded reads."""
    queues = await backend.queue_counts()
    oldest = await backend.list_tasks(statuses=[TaskStatus.PENDING], limit=1)
    running = await backend.list_tasks(statuses=[TaskStatus.RUNNING], limit=RUNNING_READ)
    capped = len(running) >= RUNNING_READ
    return Summary(queues, workers_of(running), oldest[0] if oldest else None, capped)


class Kept(Generic[T]):
    """A reading of the store (``read()``) taken at most once per ``interval`` seconds and
    shared by every viewer: the first request after the interval reads, the others wait for
    that read and share it; a read that took long is kept longer (`SLOWDOWN`)."""

    def __init__(self, read: Callable[[], Awaitable[T]], interval: float = REFRESH_SECONDS):
        self._read = read
        self.interval = interval
        self.slowdown = SLOWDOWN
        """A reading is kept at least this many times as long as it took."""
        self.reads = 0
        """How many times the store was read (tests count them)."""
        self._value: T | None = None
        self._read_at = 0.0
        self._read_seconds = 0.0
        self._lock: asyncio.Lock | None = None

    async def get(self) -> T:
        """The kept reading, read again if older than the interval."""
        if self._value is not None and self._fresh():
            return self._value
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._value is None or not self._fresh():
                started = time.monotonic()
                self._value = await self._read()
                self._read_at = time.monotonic()
                self._read_seconds = self._read_at - started
                self.reads += 1
            return self._value

    def invalidate(self) -> None:
        """Forget the kept reading (after an action changed the store)."""
        self._value = None

    def _fresh(self) -> bool:
        keep = max(self.interval, self.slowdown * self._read_seconds)
        return time.monotonic() - self._read_at < keep


class SummaryCache(Kept[Summary]):
    """The `Summary` of ``backend``, kept (see `Kept`)."""

    def __init__(self, backend: Backend, interval: float = REFRESH_SECONDS) -> None:
        super().__init__(lambda: read_summary(backend), interval)
        self.backend = backend
