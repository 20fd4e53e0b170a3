"""Bad configuration is rejected when the Worker is built, with a message naming the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sitq import ConfigurationError, SQLiteBackend, SyncTaskQueue, Worker


@pytest.fixture
def store(tmp_path: Path) -> SQLiteBackend:
    """A backend that is never connected (construction does no I/O)."""
    return SQLiteBackend(tmp_path / "q.db")


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"worker_type": "fiber"}, "choose one of: async, process, thread"),
        ({"max_workers": 0}, "max_workers must be an int >= 1"),
        ({"max_workers": -2}, "max_workers must be an int >= 1"),
        ({"max_workers": 2.5}, "max_workers must be an int >= 1"),
        ({"max_workers": True}, "max_workers must be an int >= 1"),
        ({"timeout": -1}, "timeout must be a number of seconds > 0"),
        ({"timeout": 0}, "timeout must be a number of seconds > 0"),
        ({"poll_interval": -0.5}, "poll_interval must be a number of seconds > 0"),
        ({"graceful_shutdown": -1}, "graceful_shutdown must be a number of seconds >= 0"),
        ({"lease_seconds": 0}, "lease_seconds must be a number of seconds > 0"),
        ({"max_tasks": 0}, "max_tasks must be an int >= 1"),
        ({"retry_delay": -1}, "retry_delay must be a number of seconds >= 0"),
        ({"on_error": "print"}, "on_error must be callable"),
        ({"on_success": 3}, "on_success must be callable"),
        ({"max_memory_mb": 0}, "max_memory_mb must be a number of MiB > 0"),
        ({"max_memory_mb": -5}, "max_memory_mb must be a number of MiB > 0"),
        ({"max_cpu_percent": 0}, "max_cpu_percent must be a share"),
        ({"max_cpu_percent": 150}, "max_cpu_percent must be a share"),
        ({"queues": []}, "queues must be a list of queue names"),
        ({"queues": ["emails", ""]}, "queues must be a list of queue names"),
        ({"serializer": object()}, "has no dumps()/loads()"),
    ],
)
def test_bad_settings_are_rejected(
    store: SQLiteBackend, kwargs: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        Worker(store, **kwargs)
    assert fragment in str(info.value)


def test_what_a_worker_is_built_from(store: SQLiteBackend) -> None:
    with pytest.raises(ConfigurationError, match="Worker needs a TaskQueue"):
        Worker("sqlite:///tasks.db")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="not both"):
        Worker(store, backend=store)
    with pytest.raises(ConfigurationError, match="Worker needs a TaskQueue"):
        Worker()


def test_good_settings_are_kept(store: SQLiteBackend) -> None:
    worker = Worker(
        store,
        worker_id="w1",
        worker_type="thread",
        max_workers=3,
        poll_interval=0.5,
        max_tasks=10,
        timeout=2,
        graceful_shutdown=0,
        queues="emails",
        max_memory_mb=512,
        max_cpu_percent=75,
    )
    assert (worker.worker_id, worker.worker_type, worker.max_workers) == ("w1", "thread", 3)
    assert worker.queues == ("emails",) and worker.graceful_shutdown == 0.0
    assert worker.limits.max_memory_mb == 512 and worker.limits.max_cpu_percent == 75
    assert Worker(store, worker_type="process").max_workers >= 1  # one per CPU by default
    assert "w1" in repr(worker)


def test_run_rejects_a_negative_duration(tmp_path: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    with pytest.raises(ConfigurationError, match="duration"):
        Worker(queue).run(duration=-1)
    queue.close()
