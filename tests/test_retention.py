"""Retention: workers delete finished tasks past ``retention`` / ``failed_retention`` in small
batches, a SQLite file stops growing under a steady load, and ``sitq prune`` / ``sitq vacuum``
/ ``sitq purge`` give the space back."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from sitq import SQLiteBackend, SyncTaskQueue, TaskStatus, Worker
from sitq.backend import Outcome
from sitq.cli import cli
from sitq.conformance.records import make_record
from sitq.errors import ConfigurationError
from sitq.retention import (
    DEFAULT_FAILED_RETENTION,
    DEFAULT_RETENTION,
    check_retention,
    prune_in_batches,
    retention_cutoffs,
)
from sitq.worker import WorkerConfig
from sitq.worker.settings import cli_options

pytestmark = [pytest.mark.needs_sqlite]

BOUND = 15.0  # seconds any single wait below may take before the test fails
DAY = 86400.0


def quick(x: int) -> int:
    return x


def fails() -> None:
    raise ValueError("boom")


# -- the settings ------------------------------------------------------------------------------


def test_retention_defaults_and_what_disables_it() -> None:
    config = WorkerConfig()
    assert config.retention == DEFAULT_RETENTION == 7 * DAY
    assert config.failed_retention == DEFAULT_FAILED_RETENTION == 30 * DAY
    assert config.prune_interval == 60.0
    off = WorkerConfig(retention=0, failed_retention=None)
    assert off.retention is None and off.failed_retention is None
    assert WorkerConfig(retention=timedelta(hours=2)).retention == 7200.0  # type: ignore[arg-type]


@pytest.mark.parametrize("wrong", [-1, float("nan"), float("inf"), "soon", True, [1]])
def test_bad_retention_is_refused_naming_the_option(wrong: object) -> None:
    with pytest.raises(ConfigurationError, match="retention must be a number of seconds"):
        WorkerConfig(retention=wrong)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="failed_retention"):
        check_retention("failed_retention", wrong)


def test_retention_reaches_the_command_line_and_environment() -> None:
    options = {o.name: o for o in cli_options()}
    assert options["retention"].flags == ("--retention",)
    assert options["failed_retention"].env == "SITQ_FAILED_RETENTION"
    assert options["retention"].read("SITQ_RETENTION", "12h") == 12 * 3600
    assert options["retention"].read("SITQ_RETENTION", "0") is None
    assert options["prune_interval"].read("--prune-interval", "30") == 30.0
    assert options["failed_retention"].read("failed_retention", "2w") == 14 * DAY


def test_retention_cutoffs_leave_out_what_is_kept_forever() -> None:
    assert retention_cutoffs(1000.0, None, None) == {}
    assert retention_cutoffs(1000.0, 10.0, None) == {
        TaskStatus.SUCCEEDED: 990.0,
        TaskStatus.CANCELLED: 990.0,
    }
    both = retention_cutoffs(1000.0, 10.0, 100.0)
    assert both[TaskStatus.FAILED] == both[TaskStatus.DEAD] == 900.0


# -- workers prune -----------------------------------------------------------------------------


def test_a_worker_deletes_tasks_past_their_retention(tmp_path: Path) -> None:
    """Succeeded tasks go once ``retention`` has passed; failed ones stay for the longer
    ``failed_retention``; pending ones are never touched."""
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "tasks.db"))
    done = [queue.enqueue(quick, i) for i in range(20)]
    failed = queue.enqueue(fails)
    later = queue.enqueue(quick, 99, eta=timedelta(hours=1))
    w = Worker(
        queue,
        poll_interval=0.05,
        lease_seconds=0.6,
        recovery_interval=0.05,
        retention=0.2,
        failed_retention=3600,
        prune_interval=0.05,
    )
    w.start()
    try:
        deadline = time.monotonic() + BOUND
        while any(queue.get_task(task_id) is not None for task_id in done):
            assert time.monotonic() < deadline, "finished tasks were never pruned"
            time.sleep(0.05)
    finally:
        w.stop()
    failed_task = queue.get_task(failed)
    assert failed_task is not None and failed_task.status is TaskStatus.FAILED
    later_task = queue.get_task(later)
    assert later_task is not None and later_task.status is TaskStatus.PENDING
    queue.close()


def test_a_worker_with_retention_off_keeps_everything(tmp_path: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "tasks.db"))
    task_id = queue.enqueue(quick, 1)
    w = Worker(queue, poll_interval=0.05, recovery_interval=0.05, retention=0, max_tasks=1)
    w.start()
    try:
        assert queue.get_result(task_id, timeout=BOUND).value == 1
        time.sleep(0.3)  # several recovery passes
    finally:
        w.stop()
    assert queue.get_task(task_id) is not None
    queue.close()


# -- the file stops growing --------------------------------------------------------------------


def _file_size(path: Path) -> int:
    """The size of the database file once its WAL is folded back in."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.stat().st_size


async def _run_tasks(backend: SQLiteBackend, count: int, finished_at: float) -> None:
    """``count`` tasks enqueued, claimed and finished through the backend, as busy workers
    would (in rounds of 1,000)."""
    for _ in range(count // 1000):
        await backend.enqueue_many([make_record(payload=os.urandom(200)) for _ in range(1000)])
        tasks = await backend.claim(worker_id="w", limit=1000, lease_seconds=30)
        outcomes = [
            Outcome(
                t.id, t.lease_token or "", TaskStatus.SUCCEEDED, b"r" * 50, finished_at=finished_at
            )
            for t in tasks
        ]
        assert all(await backend.finish(outcomes))


def test_a_new_sqlite_file_has_incremental_vacuum_and_prunes_by_index(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"

    async def main() -> None:
        backend = SQLiteBackend(path)
        await backend.connect()
        await backend.close()

    asyncio.run(main())
    sql = SQLiteBackend(path)._sql.prune(2)  # the statement as the backend sends it
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
        plan = conn.execute(f"EXPLAIN QUERY PLAN {sql}", ["succeeded", "cancelled", 1.0, 10])
        assert "sitq_tasks_finished" in " ".join(str(row) for row in plan.fetchall())


def test_sqlite_file_stays_bounded_under_pruning(tmp_path: Path) -> None:
    """50,000 tasks (500,000 with ``SITQ_SOAK=1``) run through a file pruned as workers prune it:
    the file ends no larger than twice its size after the first 5,000."""
    total = 500_000 if os.environ.get("SITQ_SOAK") == "1" else 50_000
    path = tmp_path / "tasks.db"

    async def main() -> tuple[int, int, int]:
        backend = SQLiteBackend(path)
        await backend.connect()
        try:
            now = time.time()
            await _run_tasks(backend, 5000, now - 2 * DAY)
            first = _file_size(path)
            for _ in range(total // 5000 - 1):
                done = await prune_in_batches(backend, {TaskStatus.SUCCEEDED: now - DAY})
                assert done == (5000, True)
                await _run_tasks(backend, 5000, now - 2 * DAY)
            grown = _file_size(path)
            await prune_in_batches(backend, {TaskStatus.SUCCEEDED: now - DAY})
            assert sum((await backend.counts()).values()) == 0
            return first, grown, _file_size(path)
        finally:
            await backend.close()

    first, grown, emptied = asyncio.run(main())
    assert grown <= 2 * first, f"{grown} bytes after {total} tasks, {first} after 5,000"
    assert emptied < first / 2, f"pruning everything left {emptied} bytes ({first} at 5,000)"


def test_a_pass_stops_at_its_time_limit_and_says_so(tmp_path: Path) -> None:
    """A pass with no time left deletes one batch and reports the backlog; the next one goes
    on from there."""

    async def main() -> None:
        backend = SQLiteBackend(tmp_path / "tasks.db")
        try:
            now = time.time()
            await _run_tasks(backend, 2000, now - 2 * DAY)
            cutoff = {TaskStatus.SUCCEEDED: now - DAY}
            assert await prune_in_batches(backend, cutoff, max_seconds=0) == (1000, False)
            assert await prune_in_batches(backend, cutoff) == (1000, True)
            assert await prune_in_batches(backend, cutoff) == (0, True)
        finally:
            await backend.close()

    asyncio.run(main())


# -- the commands ------------------------------------------------------------------------------


def _old_tasks(path: Path, count: int, age: float) -> None:
    async def main() -> None:
        backend = SQLiteBackend(path)
        try:
            await _run_tasks(backend, count, time.time() - age)
        finally:
            await backend.close()

    asyncio.run(main())


def test_sitq_prune_deletes_by_retention(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    _old_tasks(path, 2000, 3 * DAY)
    runner = CliRunner()
    url = f"sqlite:///{path}"
    kept = runner.invoke(cli, ["prune", "-b", url, "--json"])
    assert kept.exit_code == 0, kept.output
    assert '"deleted": 0' in kept.output, "3 days is within the default 7"
    pruned = runner.invoke(cli, ["prune", "-b", url, "--retention", "2d"])
    assert pruned.exit_code == 0, pruned.output
    assert "deleted 2000 task(s)" in pruned.output
    bad = runner.invoke(cli, ["prune", "-b", url, "--retention", "soon"])
    assert bad.exit_code == 2 and "not a duration" in bad.output


def test_sitq_prune_reads_retention_from_pyproject(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _old_tasks(tmp_path / "tasks.db", 1000, 3 * DAY)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.sitq]\nbackend_url = "sqlite:///tasks.db"\nretention = "2d"\n'
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SITQ_RETENTION", raising=False)
    monkeypatch.delenv("SITQ_BACKEND_URL", raising=False)
    result = CliRunner().invoke(cli, ["prune", "--json"])
    assert result.exit_code == 0, result.output
    assert '"deleted": 1000' in result.output and '"retention": "2d"' in result.output


def test_purge_and_vacuum_shrink_the_file(tmp_path: Path) -> None:
    """``sitq purge`` gives the space back at once on a new file; ``sitq vacuum`` shrinks a
    file made without incremental auto-vacuum and turns it on."""
    path = tmp_path / "tasks.db"
    _old_tasks(path, 5000, DAY)
    full = _file_size(path)
    runner = CliRunner()
    url = f"sqlite:///{path}"
    purged = runner.invoke(cli, ["purge", "-b", url, "-y"])
    assert purged.exit_code == 0, purged.output
    assert _file_size(path) < full / 4

    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:  # a file as sitq-sqlite made them before
        conn.execute("PRAGMA auto_vacuum=NONE")
        conn.execute("CREATE TABLE placeholder (x)")  # writes the header: NONE sticks
        conn.execute("DROP TABLE placeholder")  # and leaves no table that is not sitq's
    _old_tasks(old, 5000, DAY)
    assert runner.invoke(cli, ["purge", "-b", f"sqlite:///{old}", "-y"]).exit_code == 0
    assert _file_size(old) >= full / 2, "without auto-vacuum the pages stay in the file"
    vacuumed = runner.invoke(cli, ["vacuum", "-b", f"sqlite:///{old}"])
    assert vacuumed.exit_code == 0, vacuumed.output
    assert _file_size(old) < full / 4
    with sqlite3.connect(old) as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
