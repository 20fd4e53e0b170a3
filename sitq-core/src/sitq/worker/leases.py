"""`LeaseTable`: the leases a worker holds, shared by its event loop and its heartbeat thread.

One `Lease` per claimed task holds everything both sides need: its token, whether the
heartbeat found it lost, whether the worker interrupted its execution, the asyncio task and
`TaskContext` of that execution, and the time after which the heartbeat stops extending it.
Every read and write goes through the table, under one lock, so the two threads never see
half an update.

A task id has at most one held lease at a time; a newer claim of the same task (after this
worker lost it and took it again) replaces the older lease, whose execution then finds it no
longer held and stores nothing.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..context import TaskContext


@dataclass(eq=False, slots=True)
class Lease:
    """One claim of one task. Change it only through its `LeaseTable`."""

    task_id: str
    token: str
    #: the heartbeat found the backend no longer holds it (cancelled, or recovered elsewhere)
    lost: bool = False
    #: the worker cancelled its execution because it was lost
    interrupted: bool = False
    #: the asyncio task awaiting its execution, while it runs
    job: asyncio.Task[Any] | None = None
    #: what the running function sees as `sitq.current_task()`, while it runs
    context: TaskContext | None = None
    #: monotonic time after which the heartbeat no longer extends it (None: never)
    deadline: float | None = None
    #: monotonic time its execution's timeout ends (None: no timeout)
    timeout_at: float | None = None
    #: the heartbeat already reported it (overdue or lost), not to repeat
    reported: bool = False


@dataclass(frozen=True)
class RunningTask:
    """What a running execution is, as the heartbeat thread reports it."""

    task_id: str
    function: str
    attempt: int


class LeaseTable:
    """The leases a worker holds, by task id, under one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, Lease] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._held)

    def hold(self, task_id: str, token: str) -> Lease:
        """Start holding a claim (or return the one held with that token)."""
        with self._lock:
            lease = self._held.get(task_id)
            if lease is None or lease.token != token:
                lease = self._held[task_id] = Lease(task_id, token)
            return lease

    def hold_all(self, claims: list[tuple[str, str]]) -> list[Lease]:
        """`hold` for each ``(task_id, token)`` of one claim, under one lock."""
        held = self._held
        leases = []
        with self._lock:
            for task_id, token in claims:
                lease = held.get(task_id)
                if lease is None or lease.token != token:
                    lease = held[task_id] = Lease(task_id, token)
                leases.append(lease)
        return leases

    def release(self, lease: Lease) -> None:
        """Stop holding ``lease`` (a no-op if a newer claim replaced it)."""
        with self._lock:
            if self._held.get(lease.task_id) is lease:
                del self._held[lease.task_id]

    def is_held(self, task_id: str, token: str) -> bool:
        """True if the lease ``token`` on ``task_id`` is held."""
        with self._lock:
            lease = self._held.get(task_id)
            return lease is not None and lease.token == token

    def tokens(self) -> dict[str, str]:
        """A snapshot: task id → lease token of every held lease."""
        with self._lock:
            return {task_id: lease.token for task_id, lease in self._held.items()}

    # -- the execution's side ----------------------------------------------------------------

    def start(
        self,
        lease: Lease,
        job: asyncio.Task[Any] | None,
        context: TaskContext,
        timeout: float | None,
        lease_seconds: float,
    ) -> bool:
        """Record that ``lease``'s execution runs in ``job`` with ``context``, and stop
        extending it ``timeout + lease_seconds`` from now (no timeout: never); False (and
        nothing recorded) if the lease was lost before it could start."""
        with self._lock:
            if lease.lost:
                return False
            if timeout is not None:
                lease.timeout_at = time.monotonic() + timeout
                lease.deadline = lease.timeout_at + lease_seconds
            lease.job, lease.context = job, context
            return True

    def running_token(self, task_id: str) -> str | None:
        """The lease token of ``task_id``'s execution while its function runs, else None."""
        with self._lock:
            lease = self._held.get(task_id)
            return lease.token if lease is not None and lease.context is not None else None

    def finished(self, lease: Lease) -> None:
        """Record that ``lease``'s execution returned (its outcome is not stored yet)."""
        with self._lock:
            lease.job = lease.context = None

    def was_lost(self, lease: Lease) -> bool:
        """True if the heartbeat found ``lease`` lost."""
        with self._lock:
            return lease.lost

    def was_interrupted(self, lease: Lease) -> bool:
        """True if the worker cancelled ``lease``'s execution because it was lost."""
        with self._lock:
            return lease.interrupted

    # -- the heartbeat's side ----------------------------------------------------------------

    def past_timeout(self, now: float) -> bool:
        """True if an execution runs past its timeout (only a wedged event loop lets one)."""
        with self._lock:
            return any(
                lease.timeout_at is not None
                and lease.timeout_at < now
                and lease.context is not None
                for lease in self._held.values()
            )

    def running_tasks(self) -> list[RunningTask]:
        """A snapshot of the executions running now (held leases whose function started)."""
        with self._lock:
            contexts = [lease.context for lease in self._held.values()]
        return [
            RunningTask(context.task_id, context.function, context.attempt)
            for context in contexts
            if context is not None
        ]

    def to_extend(self, now: float) -> tuple[dict[str, str], list[str]]:
        """The leases to extend now (task id → token), and the task ids whose deadline passed
        since the last call (to warn about once; they are no longer extended)."""
        wanted: dict[str, str] = {}
        overdue: list[str] = []
        with self._lock:
            for task_id, lease in self._held.items():
                if lease.deadline is not None and lease.deadline < now:
                    if not lease.reported:
                        lease.reported = True
                        overdue.append(task_id)
                else:
                    wanted[task_id] = lease.token
        return wanted, overdue

    def mark_lost(self, lost: dict[str, str]) -> list[Lease]:
        """Mark the leases in ``lost`` (task id → token) lost; returns those still held and
        not reported before (the ones whose executions must stop)."""
        newly: list[Lease] = []
        with self._lock:
            for task_id, token in lost.items():
                lease = self._held.get(task_id)
                if lease is None or lease.token != token or lease.reported:
                    continue  # its outcome was stored meanwhile, or already reported
                lease.lost = lease.reported = True
                newly.append(lease)
        return newly

    def interrupt(self, lease: Lease) -> tuple[asyncio.Task[Any] | None, TaskContext | None]:
        """The job and context of a lost lease's running execution, marking the job
        interrupted if it is still running (call on the worker's loop, then cancel it)."""
        with self._lock:
            job, context = lease.job, lease.context
            if job is not None and not job.done():
                lease.interrupted = True
            return job, context


__all__ = ["Lease", "LeaseTable", "RunningTask"]
