"""Flow control on PostgreSQL beyond the conformance kit: limits held by claimers on many
connections at once (and no deadlock between them), rules and pauses changed by another
backend seen at the next claim, no head-of-line blocking past the claim's first window, unique
tasks enqueued at once from many connections, and both inside the caller's transaction."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
from pg_support import PG_URL

from sitq import TaskStatus
from sitq.backend import Outcome, TaskRecord
from sitq.conformance import make_record
from sitq.conformance.kit.flow_control import limited
from sitq.conformance.kit.support import woken
from sitq.flow_control import LimitRule
from sitq_postgres import PostgresBackend

pytestmark = [pytest.mark.postgres, pytest.mark.needs_postgres]

CLAIMERS = 5


def run(pg_url: str, body: Callable[[list[PostgresBackend]], Awaitable[None]], n: int = 1) -> None:
    """Run ``body`` with ``n`` backends on ``pg_url`` (each with its own pool), bounded."""

    async def main() -> None:
        backends = [PostgresBackend(pg_url, pool_max_size=2) for _ in range(n)]
        try:
            for b in backends:
                await b.connect()
            await asyncio.wait_for(body(backends), 120)
        finally:
            for b in backends:
                await b.close()

    asyncio.run(main())


async def _claim(b: PostgresBackend, limit: int = 10) -> list[TaskRecord]:
    return await b.claim(worker_id="w", limit=limit, lease_seconds=300)


async def _running_holding(b: PostgresBackend, key: str) -> int:
    return sum(s.running for s in await b.limit_states() if s.key == key)


def test_concurrent_claimers_never_exceed_a_limit(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Claimers on five connections drain tasks holding limited keys (two keys at once, named
    in both orders), finishing as they go, while a monitor reads the running counts: no
    count ever passes its limit, every task runs, and no claim met a deadlock."""
    caplog.set_level(logging.INFO, logger="sitq.postgres")

    async def body(backends: list[PostgresBackend]) -> None:
        admin = backends[0]
        await admin.set_limits(
            [LimitRule("pair", concurrency=2), LimitRule("tenant:*", concurrency=3)]
        )
        records = [limited("pair") for _ in range(30)]
        records += [limited("tenant:a", "tenant:b") for _ in range(20)]
        records += [limited("tenant:b", "tenant:a") for _ in range(20)]
        records += [make_record() for _ in range(30)]
        await admin.enqueue_many(records)
        peaks = {"pair": 0, "tenant:a": 0, "tenant:b": 0}
        done: set[str] = set()

        async def claimer(b: PostgresBackend, seed: int) -> None:
            rng = random.Random(seed)
            held: list[TaskRecord] = []
            while len(done) < len(records):
                held += await _claim(b, 3)
                rng.shuffle(held)
                finishing, held = held[: len(held) // 2 + 1], held[len(held) // 2 + 1 :]
                outcomes = [Outcome.succeeded(r.id, r.lease_token or "", None) for r in finishing]
                assert all(await b.finish(outcomes))
                done.update(r.id for r in finishing)
                await asyncio.sleep(0)

        async def monitor() -> None:
            while len(done) < len(records):
                for key in peaks:
                    peaks[key] = max(peaks[key], await _running_holding(admin, key))

        await asyncio.gather(monitor(), *(claimer(b, i) for i, b in enumerate(backends[1:])))
        assert peaks["pair"] <= 2 and peaks["tenant:a"] <= 3 and peaks["tenant:b"] <= 3, peaks
        assert (await admin.counts())[TaskStatus.SUCCEEDED] == len(records)

    run(pg_url, body, CLAIMERS + 1)
    retried = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert not retried, f"a claim was retried (a deadlock?): {retried}"


def test_claimers_at_once_take_exactly_the_limits(pg_url: str) -> None:
    """Claimers on five connections at once, never finishing, take exactly the concurrency
    of a key and the burst of a rate, and every task without keys."""

    async def body(backends: list[PostgresBackend]) -> None:
        await backends[0].set_limits(
            [LimitRule("pair", concurrency=2), LimitRule("rare", rate=1 / 3600, burst=5)]
        )
        pair = await backends[0].enqueue_many([limited("pair") for _ in range(40)])
        rare = await backends[0].enqueue_many([limited("rare") for _ in range(40)])
        free = await backends[0].enqueue_many([make_record() for _ in range(40)])

        async def claimer(b: PostgresBackend) -> list[str]:
            got, empty = [], 0
            while empty < 3:
                batch = await _claim(b, 3)
                got += [r.id for r in batch]
                empty = 0 if batch else empty + 1
            return got

        taken = [tid for ids in await asyncio.gather(*map(claimer, backends)) for tid in ids]
        assert len(taken) == len(set(taken))
        assert len(set(taken) & set(pair)) == 2
        assert len(set(taken) & set(rare)) == 5
        assert set(free) <= set(taken)

    run(pg_url, body, CLAIMERS)


def test_another_backends_changes_are_seen_at_the_next_claim(pg_url: str) -> None:
    """A worker's cached copy of rules and pauses is checked by every claim."""

    async def body(backends: list[PostgresBackend]) -> None:
        worker, admin = backends
        await worker.enqueue_many([make_record(priority=1)])
        assert len(await _claim(worker)) == 1  # the worker has read the (empty) flow state
        await worker.enqueue_many([limited("k") for _ in range(4)])
        await admin.set_limits([LimitRule("k", concurrency=1)])
        assert len(await _claim(worker)) == 1, "a rule stored elsewhere was not seen"
        await admin.delete_limits(["k"])
        await admin.pause_queue("default", True)
        assert await _claim(worker) == [], "a pause stored elsewhere was not seen"
        await admin.pause_queue("default", False)
        assert len(await _claim(worker)) == 3

    run(pg_url, body, 2)


def test_blocked_tasks_past_the_first_window_block_nothing(pg_url: str) -> None:
    """Hundreds of due tasks of an exhausted key, ahead of a task of a free key and one
    without keys, are read past, not waited on."""

    async def body(backends: list[PostgresBackend]) -> None:
        (b,) = backends
        await b.set_limits([LimitRule("busy", concurrency=1), LimitRule("calm", rate=5)])
        (first,) = await b.enqueue_many([limited("busy", priority=5)])
        assert [r.id for r in await _claim(b, 1)] == [first]
        await b.enqueue_many([limited("busy", priority=5) for _ in range(500)])
        calm = await b.enqueue_many([limited("calm")])
        plain = await b.enqueue_many([make_record()])
        assert sorted(r.id for r in await _claim(b)) == sorted(calm + plain)

    run(pg_url, body)


def test_unique_tasks_enqueued_at_once(pg_url: str) -> None:
    """Five connections enqueueing the same unique task at once store it once, and each
    gets its id."""

    async def body(backends: list[PostgresBackend]) -> None:
        def record(b: PostgresBackend) -> TaskRecord:
            r = make_record(dedupe_key="daily", created_at=b.clock())
            r.unique_for = 3600.0
            return r

        got = await asyncio.gather(*(b.enqueue_many([record(b)]) for b in backends))
        assert len({ids[0] for ids in got}) == 1
        assert (await backends[0].counts())[TaskStatus.PENDING] == 1

    run(pg_url, body, CLAIMERS)


def test_unique_and_limited_tasks_in_the_callers_transaction(pg_url: str) -> None:
    """`enqueue_in`: a unique duplicate is refused inside the caller's transaction, and a
    rolled-back enqueue leaves no task behind."""

    async def body(backends: list[PostgresBackend]) -> None:
        (b,) = backends
        await b.set_limits([LimitRule("k", concurrency=1)])
        first = limited("k", dedupe_key="once", created_at=b.clock(), unique_for=60.0)
        conn = await asyncpg.connect(PG_URL)
        try:
            async with conn.transaction():
                assert await b.enqueue_in(conn, [first]) == [first.id]
                again = limited("k", dedupe_key="once", created_at=b.clock(), unique_for=60.0)
                assert await b.enqueue_in(conn, [again]) == [first.id]
            with pytest.raises(RuntimeError):
                async with conn.transaction():
                    await b.enqueue_in(conn, [limited("k")])
                    raise RuntimeError("roll back")
        finally:
            await conn.close()
        assert [r.id for r in await _claim(b)] == [first.id]

    run(pg_url, body)


def test_a_key_without_its_state_row_is_still_claimed(prefix: str, pg_url: str) -> None:
    """A key whose state row is missing (the enqueue makes it; here it was deleted) gets one
    at the claim, rather than keeping its tasks pending for ever."""

    async def body(backends: list[PostgresBackend]) -> None:
        (b,) = backends
        await b.set_limits([LimitRule("k", concurrency=1)])
        (task_id,) = await b.enqueue_many([limited("k")])
        conn = await asyncpg.connect(PG_URL)
        try:
            await conn.execute(f"DELETE FROM {prefix}limit_keys")
        finally:
            await conn.close()
        assert [r.id for r in await _claim(b)] == [task_id]

    run(pg_url, body)


def test_an_ended_run_wakes_the_workers_waiting_for_work(pg_url: str) -> None:
    """With limits stored, a finished task may have freed a slot: workers waiting for work
    on another backend wake (NOTIFY), rather than at their next poll."""

    async def body(backends: list[PostgresBackend]) -> None:
        finisher, waiting = backends
        await finisher.set_limits([LimitRule("k", concurrency=1)])
        await finisher.enqueue_many([limited("k") for _ in range(40)])
        await waiting.wait_for_work(0.01)

        async def finish_one() -> None:
            (task,) = await _claim(finisher, 1)
            assert await finisher.complete(task.id, task.lease_token or "", None)

        await woken(asyncio.ensure_future(waiting.wait_for_work(60)), finish_one)

    run(pg_url, body, 2)
