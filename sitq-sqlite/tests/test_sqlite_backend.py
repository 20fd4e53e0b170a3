"""What only the SQLite backend promises: claims atomic across processes, a private file,
and its URLs."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import queue
import stat
from pathlib import Path

import pytest
from sqlite_claimer import claim_all, open_new_files

from sitq import TaskStatus
from sitq.conformance import make_record
from sitq.errors import ConfigurationError, QueueClosed
from sitq.plugins import get_plugin_manager
from sitq_sqlite import SQLiteBackend

TASKS = 2000
PROCESSES = 3


async def _fill(path: Path, n: int) -> list[str]:
    backend = SQLiteBackend(path)
    try:
        return await backend.enqueue_many([make_record() for _ in range(n)])
    finally:
        await backend.close()


async def _counts(path: Path) -> dict[TaskStatus, int]:
    backend = SQLiteBackend(path)
    try:
        return await backend.counts()
    finally:
        await backend.close()


def test_processes_never_claim_the_same_task(tmp_path: Path) -> None:
    """Several processes draining one file concurrently claim every task exactly once."""
    path = tmp_path / "shared.db"
    ids = asyncio.run(_fill(path, TASKS))
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=claim_all, args=(str(path), f"proc-{i}", start, results))
        for i in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    try:
        claimed: dict[str, list[str]] = {}
        for _ in procs:
            worker, mine = results.get(timeout=120)
            claimed[worker] = mine
        for p in procs:
            p.join(30)
            assert p.exitcode == 0, f"claimer {p.name} exited with {p.exitcode}"
    except queue.Empty:
        pytest.fail(
            f"a claimer reported nothing within 120 s (exit codes {[p.exitcode for p in procs]})"
        )
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(5)
    every = [tid for mine in claimed.values() for tid in mine]
    assert len(every) == len(set(every)), "a task was claimed by two processes"
    assert sorted(every) == sorted(ids)
    counts = asyncio.run(_counts(path))
    assert counts[TaskStatus.SUCCEEDED] == TASKS and counts[TaskStatus.RUNNING] == 0


def test_processes_opening_one_new_file_at_once_all_get_in(tmp_path: Path) -> None:
    """Creating the file, switching it to WAL and making the schema race between processes
    started together (two workers on a fresh file); none of them fails with "locked"."""
    rounds = 8
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(PROCESSES + 1)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=open_new_files, args=(str(tmp_path), rounds, start, results))
        for _ in range(PROCESSES + 1)
    ]
    for p in procs:
        p.start()
    try:
        errors = [error for _ in procs for error in results.get(timeout=120)]
        for p in procs:
            p.join(30)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(5)
    assert errors == []
    for n in range(rounds):
        counts = asyncio.run(_counts(tmp_path / f"new-{n}.db"))
        assert counts[TaskStatus.PENDING] == 2 * (PROCESSES + 1)


def test_database_file_is_private(tmp_path: Path) -> None:
    """The file (and SQLite's -wal and -shm beside it) is readable by its owner only."""
    path = tmp_path / "private.db"
    old_umask = os.umask(0o022)
    try:

        async def main() -> None:
            backend = SQLiteBackend(path)
            await backend.enqueue(make_record())
            for suffix in ("", "-wal", "-shm"):
                mode = stat.S_IMODE(os.stat(f"{path}{suffix}").st_mode)
                assert mode == 0o600, f"{path.name}{suffix} has mode {oct(mode)}"
            await backend.close()

        asyncio.run(main())
    finally:
        os.umask(old_umask)


def test_tasks_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "durable.db"
    ids = asyncio.run(_fill(path, 3))

    async def reopen() -> None:
        backend = SQLiteBackend(path)
        assert [r.id for r in await backend.claim(worker_id="w", limit=5, lease_seconds=9)] == ids
        await backend.close()

    asyncio.run(reopen())


def test_two_objects_on_one_file_share_wake_ups(tmp_path: Path) -> None:
    path = tmp_path / "wake.db"

    async def main() -> None:
        producer, consumer = SQLiteBackend(path), SQLiteBackend(path)
        assert producer.notify_key == consumer.notify_key
        await consumer.connect()
        waiter = asyncio.ensure_future(consumer.wait_for_work(60))
        await asyncio.sleep(0.01)
        await producer.enqueue(make_record())
        await asyncio.wait_for(waiter, 10)
        assert len(await consumer.claim(worker_id="w", limit=5, lease_seconds=9)) == 1
        await producer.close()
        await consumer.close()

    asyncio.run(main())


def test_closed_backend_refuses_work(tmp_path: Path) -> None:
    async def main() -> None:
        backend = SQLiteBackend(tmp_path / "closed.db")
        await backend.connect()
        await backend.close()
        with pytest.raises(QueueClosed):
            await backend.enqueue(make_record())

    asyncio.run(main())


# -- URLs and arguments --------------------------------------------------------------------------


def test_url_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    backend = SQLiteBackend.from_url("sqlite:///rel.db")
    assert backend.path == "rel.db" and not backend.in_memory
    asyncio.run(_use(backend))
    assert (tmp_path / "rel.db").is_file()


def test_url_absolute_path(tmp_path: Path) -> None:
    target = tmp_path / "sub dir" / "abs.db"
    target.parent.mkdir()
    backend = SQLiteBackend.from_url(f"sqlite:///{target}")  # "/" + "/tmp/…": four slashes
    assert backend.path == str(target)
    asyncio.run(_use(backend))
    assert target.is_file()
    assert SQLiteBackend.from_url("sqlite:////tmp/x%20y.db").path == "/tmp/x y.db"


def test_url_memory() -> None:
    backend = SQLiteBackend.from_url("sqlite://:memory:")
    assert backend.in_memory
    asyncio.run(_use(backend))
    assert SQLiteBackend.from_url("sqlite:///:memory:").in_memory


def test_url_through_the_plugin_registry(tmp_path: Path) -> None:
    backend = get_plugin_manager().backend_from_url(f"sqlite:///{tmp_path / 'r.db'}")
    assert isinstance(backend, SQLiteBackend) and backend.path == str(tmp_path / "r.db")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("sqlite://host/tasks.db", "three or four slashes"),
        ("sqlite://tasks.db", "three or four slashes"),
        ("sqlite://", "names no file"),
        ("sqlite:///", "names no file"),
        ("postgresql://localhost/db", "not a sqlite URL"),
        ("sqlite:///tasks.db?timeout=5", "not supported"),
    ],
)
def test_bad_urls(url: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        SQLiteBackend.from_url(url)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="table name"):
        SQLiteBackend(tmp_path / "x.db", table="tasks; DROP TABLE x")
    with pytest.raises(ConfigurationError, match="synchronous"):
        SQLiteBackend(tmp_path / "x.db", synchronous="SOMETIMES")
    with pytest.raises(ConfigurationError, match="file path"):
        SQLiteBackend("")


def test_missing_folder_is_named(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "no" / "such" / "tasks.db")
    with pytest.raises(ConfigurationError, match="does not exist"):
        asyncio.run(backend.connect())


async def _use(backend: SQLiteBackend) -> None:
    record = make_record()
    assert await backend.enqueue(record) == record.id
    assert (await backend.get_task(record.id)) is not None
    await backend.close()


def test_outcomes_apply_to_their_own_tasks_when_rowids_change(tmp_path: Path) -> None:
    """A finish finds the tasks its backend claimed by rowid, which a full VACUUM may change:
    a rowid now naming another task never touches that task, and the outcome still applies."""
    path = tmp_path / "q.db"

    async def main() -> None:
        backend = SQLiteBackend(path)
        try:
            await backend.enqueue_many([make_record() for _ in range(3)])
            first, second, third = await backend.claim(worker_id="w", limit=3, lease_seconds=60)
            # what a VACUUM may do: the first two tasks trade rowids
            one, two = await _rowid(backend, first.id), await _rowid(backend, second.id)
            move = "UPDATE sitq_tasks SET rowid = ? WHERE rowid = ?"
            for new, old in ((-1, one), (one, two), (two, -1)):
                await backend._execute(move, (new, old))
            assert first.lease_token and third.lease_token
            assert await backend.complete(first.id, first.lease_token, b"1")
            untouched = await backend.get_task(second.id)
            assert untouched is not None and untouched.status is TaskStatus.RUNNING
            assert await backend.fail(third.id, third.lease_token, "boom")
            done = await backend.get_task(first.id)
            assert done is not None and done.status is TaskStatus.SUCCEEDED
            assert done.result == b"1"
            again = SQLiteBackend(path)  # claimed nothing: finds the task by id
            try:
                assert second.lease_token
                assert await again.complete(second.id, second.lease_token, b"2")
            finally:
                await again.close()
        finally:
            await backend.close()

    asyncio.run(main())


async def _rowid(backend: SQLiteBackend, task_id: str) -> int:
    rows = await backend._fetchall("SELECT rowid FROM sitq_tasks WHERE id = ?", (task_id,))
    return int(rows[0][0])
