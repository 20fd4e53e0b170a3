"""Waiters notice commits made by other processes to the file (its WAL changes) instead of
waiting for their next poll."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from sitq import TaskQueue
from sitq.conformance import make_record
from sitq.signals import Signal
from sitq_sqlite import SQLiteBackend
from sitq_sqlite.watch import PendingPeek, WalWatch

HERE = Path(__file__).parent


def add(a: int, b: int) -> int:
    """A task function the worker process can import (this module is on its path)."""
    return a + b


async def _create(path: Path) -> None:
    """Create the file and its schema before the worker process opens it."""
    backend = SQLiteBackend(path)
    await backend.connect()
    await backend.close()


def test_a_worker_polling_once_a_minute_runs_another_process_task(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    asyncio.run(_create(path))
    worker = subprocess.Popen(
        [sys.executable, str(HERE / "sqlite_wakeup_worker.py"), str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=HERE,
    )

    async def main() -> None:
        assert worker.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(worker.stdout.readline), 30)
        assert line.strip() == "ready"
        async with TaskQueue(SQLiteBackend(path)) as queue:
            task_id = await queue.enqueue("test_sqlite_wakeups:add", 2, 3)
            # far less than the worker's 60 s poll: it woke on the WAL change
            result = await queue.get_result(task_id, timeout=20)
            assert result.value == 5

    try:
        asyncio.run(main())
        assert worker.stdin is not None
        worker.stdin.close()
        worker.wait(30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)


def test_the_watch_sees_commits_of_other_connections(tmp_path: Path) -> None:
    async def main() -> None:
        path = str(tmp_path / "w.db")
        writer, waiter = SQLiteBackend(path), SQLiteBackend(path)
        try:
            await writer.connect()
            await waiter.connect()
            watch = WalWatch(path, interval=0.005)
            calls: list[int] = []

            def relevant() -> bool:
                calls.append(1)
                return len(calls) >= 2  # the first change does not count, the second does

            async def commit_twice() -> None:
                for _ in range(2):
                    await asyncio.sleep(0.05)
                    await writer.enqueue(make_record())

            quiet = Signal()
            writing = asyncio.ensure_future(commit_twice())
            await asyncio.wait_for(watch.wait(quiet, 30.0, relevant), 20)
            assert len(calls) >= 2
            await writing
            # with no change and no signal it waits out its timeout
            await asyncio.wait_for(watch.wait(quiet, 0.1, relevant), 5)
        finally:
            await writer.close()
            await waiter.close()

    asyncio.run(main())


def test_the_peek_tells_whether_work_is_due(tmp_path: Path) -> None:
    async def main() -> None:
        path = tmp_path / "p.db"
        backend = SQLiteBackend(path)
        try:
            await backend.connect()
            clock = [1000.0]
            peek = PendingPeek(str(path), backend.table, lambda: clock[0])
            assert not peek()
            await backend.enqueue(make_record(available_at=2000.0))
            assert not peek()  # pending, not due yet
            clock[0] = 3000.0
            assert peek()
            peek.close()
            peek.close()
            assert PendingPeek(str(tmp_path / "absent.db"), "t", time.time)()  # cannot tell: claim
            assert not (tmp_path / "absent.db").exists()  # never creates a file
        finally:
            await backend.close()

    asyncio.run(main())
