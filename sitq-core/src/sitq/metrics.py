"""What a worker reports about itself: `WorkerStatus`, `WorkerMetrics` and their counters."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from .progress import Progress


@dataclass(frozen=True)
class WorkerStatus:
    """A snapshot of a worker (``worker.get_status()``).

    ``current_task_id`` is one running task (the oldest); ``running_task_ids`` lists them all.
    ``tasks_processed`` counts finished attempts (succeeded, failed, or retried);
    ``tasks_failed`` those that raised, timed out or could not be decoded (``tasks_retried``
    of them were put back for another attempt). ``uptime`` is in seconds, from start to now
    (or to stop). ``throttled`` says which resource limit keeps the worker from taking new
    tasks right now, or is None. ``progress`` maps each running task that reported progress
    (``set_progress``) to its latest `Progress`.
    """

    worker_id: str
    is_running: bool
    tasks_processed: int
    tasks_succeeded: int
    tasks_failed: int
    tasks_retried: int
    current_task_id: str | None
    running_task_ids: tuple[str, ...]
    uptime: float
    throttled: str | None = None
    progress: Mapping[str, Progress] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkerMetrics:
    """Rates and averages since the worker started (``worker.get_metrics()``).

    ``avg_task_duration`` is in seconds; ``tasks_per_second`` is finished attempts per second of
    uptime; ``success_rate`` + ``error_rate`` = 1 once anything ran (both 0.0 before).
    """

    tasks_processed: int
    avg_task_duration: float
    min_task_duration: float
    max_task_duration: float
    tasks_per_second: float
    success_rate: float
    error_rate: float
    uptime: float


@dataclass
class Counters:
    """The worker's running totals (updated on its event loop only)."""

    started_at: float | None = None
    stopped_at: float | None = None
    processed: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    total_duration: float = 0.0
    min_duration: float = field(default=float("inf"))
    max_duration: float = 0.0

    def record(self, duration: float, *, ok: bool, retried: bool) -> None:
        """Count one finished attempt."""
        self.processed += 1
        if ok:
            self.succeeded += 1
        else:
            self.failed += 1
            if retried:
                self.retried += 1
        self.total_duration += duration
        if duration < self.min_duration:
            self.min_duration = duration
        if duration > self.max_duration:
            self.max_duration = duration

    def uptime(self) -> float:
        """Seconds since start (until stop, once stopped)."""
        if self.started_at is None:
            return 0.0
        end = self.stopped_at if self.stopped_at is not None else time.monotonic()
        return end - self.started_at

    def metrics(self) -> WorkerMetrics:
        """The derived rates."""
        n = self.processed
        uptime = self.uptime()
        return WorkerMetrics(
            tasks_processed=n,
            avg_task_duration=self.total_duration / n if n else 0.0,
            min_task_duration=self.min_duration if n else 0.0,
            max_task_duration=self.max_duration,
            tasks_per_second=n / uptime if uptime > 0 else 0.0,
            success_rate=self.succeeded / n if n else 0.0,
            error_rate=self.failed / n if n else 0.0,
            uptime=uptime,
        )
