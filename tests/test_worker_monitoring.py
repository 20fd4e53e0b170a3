"""Callbacks and hooks, get_status(), get_metrics() and logging."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from test_worker_helpers import (
    add,
    async_sleep_then,
    backend_fixture,
    fail,
    sleep_then,
    wait_until,
)

from sitq import SQLiteBackend, SyncTaskQueue, TaskQueue, TaskStatus, Worker, hookimpl
from sitq.backend import Backend
from sitq.errors import TaskTimeout
from sitq.plugins import PluginManager

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_memory]

backend = backend_fixture()

# -- callbacks ----------------------------------------------------------------------------------


def test_callbacks_receive_the_documented_arguments(backend: Backend) -> None:
    errors: list[tuple[str, BaseException, int]] = []
    successes: list[tuple[str, Any]] = []
    queue = SyncTaskQueue(backend)
    worker = Worker(
        queue,
        max_retries=1,
        retry_delay=0.01,
        on_error=lambda task_id, error, retry_count: errors.append((task_id, error, retry_count)),
        on_success=lambda task_id, result: successes.append((task_id, result)),
    )
    ok = queue.enqueue(add, 2, 3)
    bad = queue.enqueue(fail, "bad input")
    worker.process_tasks([ok, bad])
    assert successes == [(ok, 5)]
    assert [(t, type(e), str(e), n) for t, e, n in errors] == [
        (bad, ValueError, "bad input", 1),
        (bad, ValueError, "bad input", 2),
    ]
    queue.close()


def test_async_callbacks_are_awaited_and_timeouts_reported(tmp_path: Path) -> None:
    seen: list[Any] = []

    async def on_error(task_id: str, error: BaseException, retry_count: int) -> None:
        await asyncio.sleep(0)
        seen.append(type(error))

    async def on_success(task_id: str, result: Any) -> None:
        await asyncio.sleep(0)
        seen.append(result)

    async def main() -> None:
        queue = TaskQueue(SQLiteBackend(tmp_path / "q.db"))
        worker = Worker(queue, timeout=0.1, on_error=on_error, on_success=on_success)
        await worker.process_task_async(await queue.enqueue(async_sleep_then, 0, "fast"))
        await worker.process_task_async(await queue.enqueue(async_sleep_then, 10))
        await queue.close()

    asyncio.run(main())
    assert seen == ["fast", TaskTimeout]


def test_a_raising_callback_is_logged_and_never_breaks_the_worker(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("callback bug")

    queue = SyncTaskQueue(backend)
    ids = [queue.enqueue(add, 1, 1), queue.enqueue(fail), queue.enqueue(add, 2, 2)]
    worker = Worker(queue, on_error=broken, on_success=broken, max_tasks=3, poll_interval=0.05)
    with caplog.at_level(logging.ERROR, logger="sitq.plugins"):
        worker.run(duration=20)
    statuses = [queue.get_task(i).status for i in ids]  # type: ignore[union-attr]
    assert statuses == [TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.SUCCEEDED]
    assert queue.get_result(ids[2], timeout=0).value == 4
    logged = [r for r in caplog.records if r.name == "sitq.plugins"]
    assert len(logged) == 3 and all("callback bug" in (r.exc_text or "") for r in logged)
    queue.close()


def test_callbacks_belong_to_their_worker_and_hook_plugins_see_everything(
    tmp_path: Path,
) -> None:
    events: list[str] = []

    class Recorder:
        @hookimpl
        def sitq_worker_started(self, worker: Worker) -> None:
            events.append(f"started {worker.worker_id}")

        @hookimpl
        def sitq_task_succeeded(self, task: Any, result: Any, worker: Worker) -> None:
            events.append(f"{worker.worker_id} ran {result.value}")

    plugins = PluginManager(autoload=False, plugins=[Recorder()])
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"), plugins=plugins)
    mine: list[Any] = []
    a = Worker(queue, worker_id="a", on_success=lambda task_id, value: mine.append(value))
    b = Worker(queue, worker_id="b")
    a.process_task(queue.enqueue(add, 1, 0))
    b.process_task(queue.enqueue(add, 2, 0))
    b.run(duration=0)
    assert mine == [1]
    assert events == ["a ran 1", "b ran 2", "started b"]
    queue.close()


# -- status and metrics -------------------------------------------------------------------------


def test_status_and_metrics_match_what_was_run(backend: Backend) -> None:
    queue = SyncTaskQueue(backend)
    worker = Worker(queue, max_workers=1, poll_interval=0.05, max_retries=1, retry_delay=0.01)
    before = worker.get_status()
    assert (before.is_running, before.tasks_processed, before.uptime) == (False, 0, 0.0)
    assert worker.get_metrics().success_rate == 0.0

    slow = queue.enqueue(sleep_then, 0.3, "slow")
    worker.start()
    wait_until(lambda: worker.get_status().current_task_id == slow, what="slow task running")
    running = worker.get_status()
    assert running.is_running and running.running_task_ids == (slow,)
    ids = [queue.enqueue(sleep_then, 0.05, i) for i in range(2)] + [queue.enqueue(fail)]
    for task_id in ids:
        queue.get_result(task_id, timeout=20)
    worker.stop()

    status = worker.get_status()
    # 3 successes + 1 task failing twice (its first failure retried)
    assert status.is_running is False and status.current_task_id is None
    assert status.tasks_processed == 5
    assert status.tasks_succeeded == 3
    assert status.tasks_failed == 2 and status.tasks_retried == 1
    assert status.uptime > 0.3
    time.sleep(0.05)
    assert worker.get_status().uptime == status.uptime  # frozen once stopped

    metrics = worker.get_metrics()
    assert metrics.tasks_processed == 5
    assert metrics.success_rate == pytest.approx(3 / 5)
    assert metrics.error_rate == pytest.approx(2 / 5)
    assert metrics.tasks_per_second == pytest.approx(5 / status.uptime)
    # durations: 0.3 + 0.05 + 0.05 + two near-instant failures
    assert 0.4 / 5 <= metrics.avg_task_duration < 2.0
    assert metrics.max_task_duration >= 0.3
    queue.close()


# -- logging ------------------------------------------------------------------------------------


def test_logging_options_on_a_custom_logger_never_configure_root(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root_handlers = list(logging.getLogger().handlers)
    root_level = logging.getLogger().level
    logger = logging.getLogger("my_worker")
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    ok = queue.enqueue(sleep_then, 0.15, "ok")
    bad = queue.enqueue(fail, "kaput")
    worker = Worker(
        queue,
        logger=logger,
        log_level=logging.INFO,
        log_tasks=True,
        log_errors=True,
        log_performance=True,
        performance_interval=0.05,
        max_tasks=2,
        poll_interval=0.05,
    )
    with caplog.at_level(logging.INFO, logger="my_worker"):
        worker.run(duration=20)
    mine = [r for r in caplog.records if r.name == "my_worker"]
    messages = [r.getMessage() for r in mine]
    assert any(m.startswith(f"task {ok}") and "started" in m for m in messages)
    assert any(m.startswith(f"task {ok}") and "succeeded in" in m for m in messages)
    error = next(r for r in mine if r.levelno == logging.ERROR)
    assert bad in error.getMessage() and "kaput" in error.getMessage()
    assert error.exc_info is not None and "ValueError" in (caplog.text or "")
    assert any("tasks/s" in m for m in messages)  # performance line
    assert any("started:" in m for m in messages) and any("stopped:" in m for m in messages)
    assert logging.getLogger().handlers == root_handlers
    assert logging.getLogger().level == root_level
    queue.close()


def test_quiet_by_default_and_log_errors_false_silences_failures(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    worker = Worker(queue, log_errors=False)
    with caplog.at_level(logging.DEBUG, logger="sitq.worker"):
        worker.process_task(queue.enqueue(fail))
        worker.process_task(queue.enqueue(add, 1, 2))
    assert [r for r in caplog.records if r.levelno >= logging.INFO] == []
    queue.close()
