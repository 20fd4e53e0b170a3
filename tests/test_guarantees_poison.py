"""Promise 5: poison is bounded. Attempts are counted at claim, so a task that kills its
worker runs at most ``max_attempts`` times, then goes dead; a payload that cannot be decoded,
or names a function or serializer that cannot be found, never runs and goes dead with a clear
error; the worker carries on and every normal task succeeds.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from test_guarantees_support import executions, rows, start_worker, stderr_of, stop_all, write_tasks

from sitq import MemoryBackend, SQLiteBackend, SyncTaskQueue, TaskStatus, Worker
from sitq.backend import TaskRecord
from sitq.task import new_task_id

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_memory]

MAX_ATTEMPTS = 3


def bad_records() -> dict[str, TaskRecord]:
    """Records a worker cannot run, by what is wrong with them."""

    def record(
        payload: bytes, serializer: str = "cloudpickle", function: str = "x:y"
    ) -> TaskRecord:
        return TaskRecord(
            id=new_task_id(), function=function, payload=payload, serializer=serializer
        )

    return {
        "garbage pickle": record(b"\x80\x05this is no pickle"),
        "truncated pickle": record(b"\x80\x05\x95\x10\x00\x00"),
        "garbage json": record(b"{not json", "json"),
        "garbage msgpack": record(b"\xc1\xc1", "msgpack"),
        "not a call": record(b"[1, 2]", "json"),
        "unknown function": record(b'["no_such_module_xyz:f", [], {}]', "json"),
        "unknown attribute": record(b'["os:no_such_function_xyz", [], {}]', "json"),
        "unknown serializer": record(b"whatever", "no-such-serializer"),
    }


def store(backend: MemoryBackend | SQLiteBackend, records: list[TaskRecord]) -> None:
    """Store raw records, as a buggy or hostile writer could (own backend object, own loop)."""

    async def main() -> None:
        await backend.connect()
        await backend.enqueue_many(records)
        if isinstance(backend, SQLiteBackend):
            await backend.close()

    asyncio.run(main())


def check_dead(queue: SyncTaskQueue, bad: dict[str, TaskRecord]) -> None:
    for what, record in bad.items():
        result = queue.get_result(record.id, timeout=0)
        assert result.status is TaskStatus.DEAD, f"{what}: {result.status}"
        assert result.error and ("PayloadError" in result.error or "Serializer" in result.error), (
            f"{what}: unclear error {result.error!r}"
        )
        assert result.attempts == 1, f"{what}: ran {result.attempts} times"


def ok(x: int) -> int:
    return x


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_undecodable_payloads_go_dead_unrun_and_the_worker_goes_on(
    kind: str, tmp_path: Path
) -> None:
    memory = MemoryBackend()
    queue = SyncTaskQueue(memory if kind == "memory" else SQLiteBackend(tmp_path / "tasks.db"))
    good = [queue.enqueue(ok, i) for i in range(3)]
    bad = bad_records()
    store(memory if kind == "memory" else SQLiteBackend(tmp_path / "tasks.db"), [*bad.values()])
    more = [queue.enqueue(ok, i) for i in range(3, 6)]
    worker = Worker(queue, poll_interval=0.05)
    worker.start()
    try:
        values = [queue.get_result(t, timeout=30).value for t in good + more]
        for record in bad.values():
            queue.get_result(record.id, timeout=30)
    finally:
        worker.stop()
    assert values == list(range(6))
    check_dead(queue, bad)
    assert worker.get_status().tasks_failed >= len(bad)
    queue.close()


def test_a_task_that_kills_its_worker_runs_max_attempts_times(tmp_path: Path) -> None:
    log = write_tasks(tmp_path)
    db = tmp_path / "tasks.db"
    queue = SyncTaskQueue(SQLiteBackend(db))
    crash = queue.enqueue("gtasks:crash")
    normal = [queue.enqueue("gtasks:ok", i) for i in range(10)]
    bad = bad_records()
    store(SQLiteBackend(db), list(bad.values()))
    everything = [crash, *normal, *(r.id for r in bad.values())]
    options = {
        "max_workers": 1,  # one task at a time: a crash takes no bystander with it
        "max_attempts": MAX_ATTEMPTS,
        "lease_seconds": 0.5,
        "recovery_interval": 0.1,
        "poll_interval": 0.05,
    }
    procs = [start_worker(tmp_path, db, options)]
    restarts = 0
    deadline = time.monotonic() + 60
    try:
        while True:
            statuses = rows(
                db,
                f"SELECT status FROM sitq_tasks WHERE id IN ({','.join('?' * len(everything))})",
                tuple(everything),
            )
            if all(TaskStatus(s).is_final for (s,) in statuses):
                break
            assert time.monotonic() < deadline, f"not done: {statuses}\n{stderr_of(tmp_path)}"
            if procs[-1].poll() is not None:  # the poison task killed it: restart
                assert procs[-1].returncode == 13
                restarts += 1
                procs.append(start_worker(tmp_path, db, options))
            time.sleep(0.05)
    finally:
        stop_all(procs)
    ran = executions(log)
    assert ran[crash] == MAX_ATTEMPTS, f"the poison task ran {ran[crash]} times"
    assert restarts == MAX_ATTEMPTS
    result = queue.get_result(crash, timeout=0)
    assert result.status is TaskStatus.DEAD and result.attempts == MAX_ATTEMPTS
    assert result.error and "lost" in result.error
    assert [queue.get_result(t, timeout=0).value for t in normal] == list(range(10))
    assert all(ran[t] == 1 for t in normal)
    check_dead(queue, bad)
    queue.close()
