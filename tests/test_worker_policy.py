"""Limits and policy: max_tasks, retries with delay/backoff/jitter, retry_failed,
continue_on_error, per-task overrides, priority order, polling."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_worker_helpers import (
    REGISTRY,
    add,
    backend_fixture,
    fail,
    sleep_then,
)

from sitq import SQLiteBackend, SyncTaskQueue, Task, TaskQueue, TaskStatus, Worker
from sitq.backend import Backend
from sitq.errors import ConfigurationError
from sitq.retry import RetryPolicy

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_memory]

backend = backend_fixture()


def record_call(name: str, label: str) -> str:
    """Append ``label`` to the list registered as ``name`` (runs in this process)."""
    REGISTRY[name].append(label)
    return label


def fail_until(name: str, successes_after: int) -> str:
    """Fail the first ``successes_after`` calls counted under ``name``, then succeed."""
    REGISTRY[name] = REGISTRY.get(name, 0) + 1
    if REGISTRY[name] <= successes_after:
        raise RuntimeError(f"attempt {REGISTRY[name]} fails")
    return f"succeeded on attempt {REGISTRY[name]}"


def fail_and_record_start(name: str) -> None:
    """Record when this attempt started (backend clock: time.time), then fail."""
    REGISTRY.setdefault(name, []).append(time.time())
    raise ValueError("always")


def gaps(name: str) -> list[float]:
    """Seconds between the starts of consecutive attempts recorded under ``name``."""
    return [b - a for a, b in itertools.pairwise(REGISTRY[name])]


# -- max_tasks ----------------------------------------------------------------------------------


def test_max_tasks_stops_after_exactly_that_many(backend: Backend) -> None:
    queue = SyncTaskQueue(backend)
    ids = [queue.enqueue(add, i, i) for i in range(10)]
    worker = Worker(queue, max_tasks=3, max_workers=100, poll_interval=0.05)
    began = time.monotonic()
    worker.run(duration=30)  # returns as soon as the 3rd task is done
    assert time.monotonic() - began < 10
    counts = queue.counts()
    assert counts[TaskStatus.SUCCEEDED] == 3 and counts[TaskStatus.PENDING] == 7
    assert worker.get_status().tasks_processed == 3
    assert [queue.get_task(i).status for i in ids[:3]] == [TaskStatus.SUCCEEDED] * 3  # type: ignore[union-attr]
    queue.close()


def test_max_tasks_in_async_code_with_concurrent_slow_tasks(backend: Backend) -> None:
    async def main() -> None:
        queue = TaskQueue(backend)
        for _ in range(6):
            await queue.enqueue(sleep_then, 0.05)
        worker = Worker(queue, max_tasks=4, max_workers=3, poll_interval=0.05)
        await asyncio.wait_for(worker.start(), 20)  # stops by itself
        counts = await queue.counts()
        assert counts[TaskStatus.SUCCEEDED] == 4 and counts[TaskStatus.PENDING] == 2
        await queue.close()

    asyncio.run(main())


# -- retries ------------------------------------------------------------------------------------


def test_retries_happen_max_retries_times_with_the_delay(backend: Backend) -> None:
    calls: list[int] = []
    REGISTRY.pop("starts", None)
    queue = SyncTaskQueue(backend)
    worker = Worker(
        queue,
        max_retries=3,
        retry_delay=0.05,
        on_error=lambda task_id, error, retry_count: calls.append(retry_count),
    )
    result = worker.process_task(queue.enqueue(fail_and_record_start, "starts"))
    assert result.is_error and result.status is TaskStatus.FAILED
    assert result.attempts == 4 and calls == [1, 2, 3, 4]
    assert len(REGISTRY["starts"]) == 4
    # each retry starts at least retry_delay after the previous attempt started
    assert all(gap >= 0.05 for gap in gaps("starts")), gaps("starts")
    queue.close()


def test_a_running_worker_wakes_for_its_retries_without_waiting_a_poll(backend: Backend) -> None:
    calls: list[int] = []
    REGISTRY.pop("backoff", None)
    queue = SyncTaskQueue(backend)
    task_id = queue.enqueue(fail_and_record_start, "backoff")
    worker = Worker(
        queue,
        poll_interval=10,  # retries are due long before the next poll
        max_retries=2,
        retry_delay=0.05,
        retry_backoff=2,
        on_error=lambda task_id, error, retry_count: calls.append(retry_count),
    )
    worker.start()
    result = queue.get_result(task_id, timeout=8)  # well before the next poll
    worker.stop()
    assert result.attempts == 3 and calls == [1, 2, 3]
    first, second = gaps("backoff")
    assert first >= 0.05 and second >= 0.1  # exponential backoff: 0.05 then 0.1
    queue.close()


def test_a_flaky_task_succeeds_on_a_retry(tmp_path: Path) -> None:
    REGISTRY.pop("flaky", None)
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    worker = Worker(queue, max_retries=5, retry_delay=0.01)
    result = worker.process_task(queue.enqueue(fail_until, "flaky", 2))
    assert result.is_success and result.value == "succeeded on attempt 3"
    assert result.attempts == 3
    queue.close()


def test_retry_failed_false_turns_every_retry_off(tmp_path: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    worker = Worker(queue, max_retries=3, retry_delay=0.01, retry_failed=False)
    assert worker.process_task(queue.enqueue(fail)).attempts == 1
    assert worker.process_task(queue.enqueue(fail, max_retries=2)).attempts == 1
    queue.close()


def test_a_tasks_own_max_retries_wins(tmp_path: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    none_by_default = Worker(queue, retry_delay=0.01)
    assert none_by_default.process_task(queue.enqueue(fail, max_retries=2)).attempts == 3
    task = Task(function=fail, args=["x"], max_retries=0)
    assert (
        Worker(queue, max_retries=5, retry_delay=0.01).process_task(queue.enqueue(task)).attempts
        == 1
    )
    queue.close()


def test_retry_policy_delays_backoff_cap_and_jitter() -> None:
    constant = RetryPolicy(retry_delay=2.0)
    assert [constant.delay(n) for n in (1, 2, 3)] == [2.0, 2.0, 2.0]
    doubling = RetryPolicy(retry_delay=1.0, retry_backoff=2.0, max_retry_delay=5.0)
    assert [doubling.delay(n) for n in (1, 2, 3, 4, 50_000)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    full = RetryPolicy(retry_delay=1.0, retry_backoff=2.0, retry_jitter=True)
    samples = [full.delay(3) for _ in range(200)]
    assert all(0 <= d <= 4.0 for d in samples) and len(set(samples)) > 1
    partial = RetryPolicy(retry_delay=10.0, retry_jitter=0.2)
    assert all(8.0 <= partial.delay(1) <= 10.0 for _ in range(200))
    assert RetryPolicy(max_retries=2).will_retry(2, None)
    assert not RetryPolicy(max_retries=2).will_retry(3, None)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_retries": -1},
        {"max_retries": 1.5},
        {"retry_delay": -1},
        {"retry_backoff": 0.5},
        {"retry_jitter": 2},
        {"retry_jitter": "yes"},
    ],
)
def test_bad_retry_settings_are_rejected(kwargs: dict[str, object], tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        Worker(SQLiteBackend(tmp_path / "q.db"), **kwargs)  # type: ignore[arg-type]


# -- continue_on_error --------------------------------------------------------------------------


def test_continue_on_error_false_stops_after_a_final_failure(backend: Backend) -> None:
    queue = SyncTaskQueue(backend)
    first = queue.enqueue(fail, priority=1)
    rest = [queue.enqueue(add, 1, 1) for _ in range(3)]
    worker = Worker(queue, max_workers=1, continue_on_error=False, poll_interval=0.05)
    worker.run(duration=20)  # returns once the failure stops it
    assert queue.get_task(first).status is TaskStatus.FAILED  # type: ignore[union-attr]
    assert [queue.get_task(i).status for i in rest] == [TaskStatus.PENDING] * 3  # type: ignore[union-attr]
    queue.close()


def test_continue_on_error_true_goes_on(backend: Backend) -> None:
    queue = SyncTaskQueue(backend)
    queue.enqueue(fail, priority=1)
    ok = queue.enqueue(add, 1, 1)
    worker = Worker(queue, max_workers=1, max_tasks=2, poll_interval=0.05)
    worker.run(duration=20)
    assert queue.get_result(ok, timeout=0).value == 2
    queue.close()


# -- priority -----------------------------------------------------------------------------------


def test_tasks_run_in_priority_order_fifo_within_a_priority(backend: Backend) -> None:
    REGISTRY["order"] = []
    queue = SyncTaskQueue(backend)
    for label, priority in [("a", 0), ("b", 5), ("c", 0), ("d", 10), ("e", 5), ("f", -1)]:
        queue.enqueue(record_call, "order", label, priority=priority)
    worker = Worker(queue, max_workers=1, max_tasks=6, poll_interval=0.05)
    worker.run(duration=20)
    assert REGISTRY["order"] == ["d", "b", "e", "a", "c", "f"]
    queue.close()


# -- polling ------------------------------------------------------------------------------------


def test_tasks_enqueued_by_another_process_are_found_by_polling(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    queue = SyncTaskQueue(SQLiteBackend(db))
    worker = Worker(queue, poll_interval=0.1)
    worker.start()
    enqueue = (
        "import sys, operator; from sitq import SQLiteBackend, SyncTaskQueue; "
        "q = SyncTaskQueue(SQLiteBackend(sys.argv[1])); print(q.enqueue(operator.add, 2, 3)); "
        "q.close()"
    )
    done = subprocess.run(
        [sys.executable, "-c", enqueue, str(db)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert queue.get_result(done.stdout.strip(), timeout=10).value == 5
    worker.stop()
    queue.close()
