"""What only the SQLite backend's workflows promise: joins exact across connections (the
triggers run in whichever connection ends a parent), cascades deeper than SQLite's trigger
recursion limit, a 10,000-member chord stored in a fixed number of statements beside its row
chunks, and the blocking enqueue carrying parents."""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace
from pathlib import Path

import pytest

from sitq import TaskStatus
from sitq.backend import Outcome, TaskRecord
from sitq.conformance import make_record
from sitq.errors import ConfigurationError
from sitq.workflow_state import parent_failed_error
from sitq_sqlite import SQLiteBackend
from sitq_sqlite.inserts import _ENQUEUE_CHUNK


def member(*parents: str, allow_failure: bool = False) -> TaskRecord:
    """A record of workflow ``wf`` waiting for ``parents``."""
    return replace(make_record(), parents=parents, workflow_id="wf", allow_failure=allow_failure)


async def status_of(backend: SQLiteBackend, task_id: str) -> TaskStatus:
    record = await backend.get_task(task_id)
    assert record is not None, f"{task_id} is not stored"
    return record.status


async def run_all(backend: SQLiteBackend, status: TaskStatus = TaskStatus.SUCCEEDED) -> list[str]:
    """Claim every due task and end it ``status``; the ids."""
    claimed = await backend.claim(worker_id="w", limit=100_000, lease_seconds=60)
    outcomes = [Outcome(r.id, r.lease_token or "", status, error="boom") for r in claimed]
    assert all(await backend.finish(outcomes))
    return [r.id for r in claimed]


def test_two_connections_ending_parents_at_once_release_the_join_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        one, two = SQLiteBackend(tmp_path / "t.db"), SQLiteBackend(tmp_path / "t.db")
        try:
            for _ in range(20):
                parents = [member() for _ in range(40)]
                join = member(*(p.id for p in parents))
                await one.enqueue_many([*parents, join])
                claimed = await one.claim(worker_id="w", limit=40, lease_seconds=60)
                halves = claimed[::2], claimed[1::2]
                await asyncio.gather(
                    *(
                        backend.finish([Outcome.succeeded(r.id, r.lease_token or "", None)])
                        for backend, half in zip((one, two), halves, strict=True)
                        for r in half
                    )
                )
                assert await status_of(two, join.id) is TaskStatus.PENDING
                assert await run_all(two) == [join.id]
        finally:
            await one.close()
            await two.close()

    asyncio.run(scenario())


def test_a_failure_cascades_down_a_chain_deeper_than_the_trigger_limit(tmp_path: Path) -> None:
    """SQLite stops nested triggers at 1,000 levels; the cascade is one recursive CTE."""

    async def scenario() -> None:
        backend = SQLiteBackend(tmp_path / "t.db")
        try:
            chain = [member()]
            for _ in range(1500):
                chain.append(member(chain[-1].id))
            await backend.enqueue_many(chain)
            assert await run_all(backend, TaskStatus.FAILED) == [chain[0].id]
            last = await backend.get_task(chain[-1].id)
            assert last is not None and last.status is TaskStatus.CANCELLED
            assert last.error == parent_failed_error(chain[-2].id, TaskStatus.CANCELLED)
            counts = await backend.counts()
            assert counts[TaskStatus.CANCELLED] == 1500 and counts[TaskStatus.WAITING] == 0
            assert await backend.requeue(chain[0].id)  # the whole chain waits again
            assert (await backend.counts())[TaskStatus.WAITING] == 1500
        finally:
            await backend.close()

    asyncio.run(scenario())


def test_a_requeued_parent_leaves_a_child_cancelled_for_another_failed_parent(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        backend = SQLiteBackend(tmp_path / "t.db")
        try:
            a, b = member(), member()
            child = member(a.id, b.id)
            grandchild = member(child.id)
            await backend.enqueue_many([a, b, child, grandchild])
            await run_all(backend, TaskStatus.FAILED)
            assert await backend.requeue(a.id)
            got = await backend.get_task(child.id)
            assert got is not None and got.status is TaskStatus.CANCELLED
            assert got.error == parent_failed_error(b.id, TaskStatus.FAILED)
            assert await status_of(backend, grandchild.id) is TaskStatus.CANCELLED
            assert await backend.requeue(b.id)
            assert await status_of(backend, child.id) is TaskStatus.WAITING
            assert await status_of(backend, grandchild.id) is TaskStatus.WAITING
            await run_all(backend)
            assert await run_all(backend) == [child.id]
            assert await run_all(backend) == [grandchild.id]
        finally:
            await backend.close()

    asyncio.run(scenario())


async def _statements_of_chord(path: Path, size: int) -> int:
    """How many statements (triggers' own steps left out) storing a chord of ``size``
    members takes."""
    backend = SQLiteBackend(path)
    try:
        await backend.connect()
        seen: list[str] = []
        db = await backend._db()
        # a statement is traced again at each trigger it fires: count it once
        await db.set_trace_callback(
            lambda sql: None if seen and seen[-1] == sql else seen.append(sql)
        )
        members = [member() for _ in range(size)]
        await backend.enqueue_many([*members, member(*(m.id for m in members))])
        await db.set_trace_callback(None)  # type: ignore[arg-type]  # None stops tracing
        assert (await backend.counts())[TaskStatus.WAITING] == 1
        return len(seen)
    finally:
        await backend.close()


def test_a_chord_is_stored_in_a_fixed_number_of_statements_beside_its_row_chunks(
    tmp_path: Path,
) -> None:
    small = asyncio.run(_statements_of_chord(tmp_path / "small.db", 100))
    big = asyncio.run(_statements_of_chord(tmp_path / "big.db", 10_000))
    assert big - small == math.ceil(10_001 / _ENQUEUE_CHUNK) - 1


def test_the_blocking_enqueue_carries_parents(tmp_path: Path) -> None:
    async def scenario() -> None:
        backend = SQLiteBackend(tmp_path / "t.db")
        try:
            await backend.connect()
            a = member()
            child = member(a.id)
            ids = await asyncio.to_thread(backend.enqueue_many_blocking, [a, child])
            assert ids == [a.id, child.id]
            assert await status_of(backend, child.id) is TaskStatus.WAITING
            with pytest.raises(ConfigurationError, match="no-such"):
                await asyncio.to_thread(
                    backend.enqueue_many_blocking, [member(), member("no-such")]
                )
            assert sum((await backend.counts()).values()) == 2
            await run_all(backend)
            assert await run_all(backend) == [child.id]
        finally:
            await backend.close()

    asyncio.run(scenario())


def test_purging_a_child_deletes_its_edges(tmp_path: Path) -> None:
    async def scenario() -> None:
        backend = SQLiteBackend(tmp_path / "t.db")
        try:
            a = member()
            child = member(a.id)
            await backend.enqueue_many([a, child])
            await run_all(backend, TaskStatus.FAILED)
            assert await backend.purge() == 2
            rows = await backend._fetchall("SELECT count(*) FROM sitq_tasks_edges")
            assert rows[0][0] == 0
        finally:
            await backend.close()

    asyncio.run(scenario())
