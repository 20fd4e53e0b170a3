"""What only the PostgreSQL backend's workflows promise: joins exact under concurrent
transactions (two finishers of two parents of one child, an enqueue racing its parent's end),
enqueues of waiting tasks inside the caller's transaction, a 10,000-member chord stored in a
number of statements independent of its size, claims that never see a waiting task, and a
real worker running a chord and a chain."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any, TypeVar

import asyncpg
import pytest
from pg_support import PG_URL

import sitq
from sitq import TaskStatus
from sitq.backend import Outcome, TaskRecord
from sitq.conformance import make_record
from sitq.errors import ConfigurationError
from sitq.workflow_state import parent_failed_error
from sitq_postgres import PostgresBackend

pytestmark = pytest.mark.postgres

T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def member(*parents: str, allow_failure: bool = False) -> TaskRecord:
    """A record of workflow ``wf`` waiting for ``parents``."""
    return replace(make_record(), parents=parents, workflow_id="wf", allow_failure=allow_failure)


async def status_of(backend: PostgresBackend, task_id: str) -> TaskStatus:
    record = await backend.get_task(task_id)
    assert record is not None, f"{task_id} is not stored"
    return record.status


async def claim_ids(backend: PostgresBackend, *task_ids: str) -> dict[str, str]:
    """Claim ``task_ids`` by id; their lease tokens."""
    tokens = {}
    for task_id in task_ids:
        record = await backend.claim_by_id(task_id, worker_id="w", lease_seconds=60)
        assert record is not None and record.lease_token is not None
        tokens[task_id] = record.lease_token
    return tokens


def test_two_transactions_ending_two_parents_release_the_child_once(pg_url: str) -> None:
    async def scenario() -> None:
        one, two = PostgresBackend(pg_url), PostgresBackend(pg_url)
        try:
            for round_ in range(30):
                a, b = member(), member()
                child = member(a.id, b.id)
                await one.enqueue_many([a, b, child])
                tokens = await claim_ids(one, a.id, b.id)
                failing = round_ % 3 == 0
                await asyncio.gather(
                    one.finish([Outcome.succeeded(a.id, tokens[a.id], None)]),
                    two.finish(
                        [
                            Outcome.failed(b.id, tokens[b.id], "boom")
                            if failing
                            else Outcome.succeeded(b.id, tokens[b.id], None)
                        ]
                    ),
                )
                got = await one.get_task(child.id)
                assert got is not None
                if failing:
                    assert got.status is TaskStatus.CANCELLED
                    assert got.error == parent_failed_error(b.id, TaskStatus.FAILED)
                else:
                    assert got.status is TaskStatus.PENDING
                    claimed = await one.claim(worker_id="w", limit=10, lease_seconds=60)
                    assert [r.id for r in claimed] == [child.id]
                    assert await one.complete(child.id, claimed[0].lease_token or "", None)
        finally:
            await one.close()
            await two.close()

    run(scenario())


def test_an_enqueue_racing_its_parents_end_never_leaves_the_child_waiting(pg_url: str) -> None:
    async def scenario() -> None:
        one, two = PostgresBackend(pg_url), PostgresBackend(pg_url)
        try:
            for _ in range(30):
                parent = member()
                await one.enqueue_many([parent])
                tokens = await claim_ids(one, parent.id)
                child = member(parent.id)
                await asyncio.gather(
                    one.finish([Outcome.succeeded(parent.id, tokens[parent.id], None)]),
                    two.enqueue_many([child]),
                )
                assert await status_of(one, child.id) is TaskStatus.PENDING
                assert await one.cancel(child.id)
        finally:
            await one.close()
            await two.close()

    run(scenario())


def test_waiting_tasks_are_enqueued_in_the_callers_transaction(pg_url: str) -> None:
    async def scenario() -> None:
        backend = PostgresBackend(pg_url)
        conn = await asyncpg.connect(PG_URL)
        try:
            await backend.connect()
            a = member()
            await backend.enqueue_many([a])
            child = member(a.id)
            with pytest.raises(RuntimeError):
                async with conn.transaction():
                    await backend.enqueue_in(conn, [child])
                    raise RuntimeError("roll back")
            assert await backend.get_task(child.id) is None
            async with conn.transaction():
                assert await backend.enqueue_in(conn, [child]) == [child.id]
            assert await status_of(backend, child.id) is TaskStatus.WAITING
            with pytest.raises(ConfigurationError, match="no-such"):
                async with conn.transaction():
                    await backend.enqueue_in(conn, [member("no-such")])
        finally:
            await conn.close()
            await backend.close()

    run(scenario())


async def _statements_of_chord(backend: PostgresBackend, size: int) -> int:
    """How many statements storing a chord of ``size`` members sends (through `enqueue_in`
    on a connection of our own, whose queries are logged)."""
    conn = await asyncpg.connect(PG_URL)
    sent: list[Any] = []
    conn.add_query_logger(sent.append)
    try:
        members = [member() for _ in range(size)]
        async with conn.transaction():
            await backend.enqueue_in(conn, [*members, member(*(m.id for m in members))])
        return len(sent)
    finally:
        await conn.close()


def test_a_chord_is_stored_in_a_number_of_statements_independent_of_its_size(
    pg_url: str,
) -> None:
    async def scenario() -> None:
        backend = PostgresBackend(pg_url)
        try:
            small = await _statements_of_chord(backend, 100)
            big = await _statements_of_chord(backend, 10_000)
            assert small == big
            assert (await backend.counts())[TaskStatus.WAITING] == 2
        finally:
            await backend.close()

    run(scenario())


def test_a_failure_cascades_down_a_long_chain_and_requeue_resumes_it(pg_url: str) -> None:
    async def scenario() -> None:
        backend = PostgresBackend(pg_url)
        try:
            chain = [member()]
            for _ in range(1500):
                chain.append(member(chain[-1].id))
            await backend.enqueue_many(chain)
            tokens = await claim_ids(backend, chain[0].id)
            assert await backend.fail(chain[0].id, tokens[chain[0].id], "boom")
            counts = await backend.counts()
            assert counts[TaskStatus.CANCELLED] == 1500 and counts[TaskStatus.WAITING] == 0
            last = await backend.get_task(chain[-1].id)
            assert last is not None
            assert last.error == parent_failed_error(chain[-2].id, TaskStatus.CANCELLED)
            assert await backend.requeue(chain[0].id)
            assert (await backend.counts())[TaskStatus.WAITING] == 1500
        finally:
            await backend.close()

    run(scenario())


def test_claims_never_take_a_waiting_task(pg_url: str, prefix: str) -> None:
    async def scenario() -> None:
        backend = PostgresBackend(pg_url)
        try:
            a = member()
            await backend.enqueue_many([a, member(a.id)])
            claimed = await backend.claim(worker_id="w", limit=10, lease_seconds=60)
            assert [r.id for r in claimed] == [a.id]
            conn = await asyncpg.connect(PG_URL)
            try:
                index = await conn.fetchval(
                    "SELECT indexdef FROM pg_indexes WHERE indexname = $1", f"{prefix}tasks_pending"
                )
            finally:
                await conn.close()
            assert index.endswith("WHERE (status = 'pending'::text)")
        finally:
            await backend.close()

    run(scenario())


def test_the_blocking_enqueue_carries_parents(pg_url: str) -> None:
    backend = PostgresBackend(pg_url)
    try:
        a = member()
        child = member(a.id)
        assert backend.enqueue_many_blocking([a, child]) == [a.id, child.id]
        assert run(status_of(backend, child.id)) is TaskStatus.WAITING
        with pytest.raises(ConfigurationError, match="no-such"):
            backend.enqueue_many_blocking([member(), member("no-such")])
    finally:
        run(backend.close())


def test_purging_a_child_deletes_its_edges(pg_url: str, prefix: str) -> None:
    async def scenario() -> None:
        backend = PostgresBackend(pg_url)
        try:
            a = member()
            child = member(a.id)
            await backend.enqueue_many([a, child])
            tokens = await claim_ids(backend, a.id)
            assert await backend.fail(a.id, tokens[a.id], "boom")
            assert await backend.purge() == 2
            conn = await asyncpg.connect(PG_URL)
            try:
                assert await conn.fetchval(f"SELECT count(*) FROM {prefix}task_edges") == 0
            finally:
                await conn.close()
        finally:
            await backend.close()

    run(scenario())


def _add(x: int, y: int) -> int:
    return x + y


def _total(values: list[int]) -> int:
    return sum(values)


def test_a_worker_runs_a_chord_and_a_chain(pg_url: str) -> None:
    squeue = sitq.SyncTaskQueue(pg_url)
    try:
        add = squeue.task(name="wf.add")(_add)
        total = squeue.task(name="wf.total")(_total)
        worker = sitq.Worker(squeue, worker_type="thread", max_workers=4, poll_interval=0.05)
        worker.start()
        try:
            chord = squeue.enqueue(sitq.chord([add.s(i, i) for i in range(20)], total.s()))
            assert chord.result(timeout=60) == sum(2 * i for i in range(20))
            chain = squeue.enqueue(sitq.chain(add.s(1, 1), add.s(5), add.s(10)))
            assert chain.result(timeout=60) == 17
            assert chain.status() is TaskStatus.SUCCEEDED
        finally:
            worker.stop()
    finally:
        squeue.close()


def test_tables_dropped_by_hand_are_created_again(pg_url: str, prefix: str) -> None:
    """``DROP TABLE … CASCADE`` leaves the trigger functions behind; a new backend on the
    same prefix replaces them instead of failing."""

    async def scenario() -> None:
        first = PostgresBackend(pg_url)
        await first.connect()
        await first.close()
        conn = await asyncpg.connect(PG_URL)
        try:
            tables = ["tasks", "schema_version", "schedules", "schedule_fires", "task_edges"]
            await conn.execute(f"DROP TABLE {', '.join(prefix + t for t in tables)} CASCADE")
        finally:
            await conn.close()
        again = PostgresBackend(pg_url)
        try:
            a = member()
            await again.enqueue_many([a, member(a.id)])
            assert (await again.counts())[TaskStatus.WAITING] == 1
        finally:
            await again.close()

    run(scenario())
