"""Live workers, as the store shows them: the worker ids of running tasks and their leases.

sitq keeps no worker registry: a worker is seen while it runs a task. An idle worker holds no
lease, so it is not listed; its tasks' leases say whether a busy one is still alive (a lease
whose end is past means its heartbeat stopped, and the next recovery pass takes the task back).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sitq.backend import TaskRecord


@dataclass
class WorkerView:
    """One worker seen through its running tasks.

    :param id: its ``worker_id`` (``host:pid:random`` unless its owner named it).
    :param host: the host part of a default id, else None.
    :param pid: the process id part of a default id, else None.
    :param tasks: the ids of the tasks it runs now.
    :param lease_ends: the latest lease end of its tasks (epoch seconds): its last heartbeat
        plus the lease time.
    """

    id: str
    host: str | None = None
    pid: int | None = None
    tasks: list[str] = field(default_factory=list)
    lease_ends: float | None = None

    def as_json(self) -> dict[str, object]:
        """The worker as ``/api/summary`` lists it."""
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "running": len(self.tasks),
            "lease_ends": self.lease_ends,
        }


def split_worker_id(worker_id: str) -> tuple[str | None, int | None]:
    """The host and pid of a default worker id (``host:pid:random``); (None, None) for
    another name."""
    parts = worker_id.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit():
        return parts[0], int(parts[1])
    return None, None


def workers_of(running: Iterable[TaskRecord]) -> list[WorkerView]:
    """The workers running ``running`` tasks, by id."""
    found: dict[str, WorkerView] = {}
    for record in running:
        if record.worker_id is None:
            continue
        view = found.get(record.worker_id)
        if view is None:
            host, pid = split_worker_id(record.worker_id)
            view = found[record.worker_id] = WorkerView(record.worker_id, host, pid)
        view.tasks.append(record.id)
        if record.lease_expires_at is not None:
            view.lease_ends = max(view.lease_ends or 0.0, record.lease_expires_at)
    return sorted(found.values(), key=lambda w: w.id)
