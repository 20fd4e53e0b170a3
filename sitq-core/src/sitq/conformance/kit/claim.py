"""Conformance tests of claims: limits, due times, order, queue filters, exclusions, races,
claims by id."""

from __future__ import annotations

import asyncio

from ...backend import Backend
from ...task import TaskStatus
from ..clock import FakeClock
from ..records import make_record
from .support import (
    KitBase,
    backend_test,
    claim,
    claim_one,
    enqueue,
    ids_of,
    in_status,
    in_threads,
    status_of,
    stored,
)


class ClaimTests(KitBase):
    """Claim: which tasks, in which order, never two claimers for one task."""

    @backend_test
    async def test_claim_respects_limit(self, b: Backend, clock: FakeClock) -> None:
        await enqueue(b, 5)
        assert await claim(b, 0) == []
        assert len(await claim(b, 2)) == 2
        assert len(await claim(b, 10)) == 3
        assert await claim(b, 10) == []

    @backend_test
    async def test_claim_takes_only_due_tasks(self, b: Backend, clock: FakeClock) -> None:
        (now_id,) = await enqueue(b, available_at=clock())
        (later,) = await enqueue(b, available_at=clock() + 10, priority=9)
        assert ids_of(await claim(b, 5)) == [now_id]
        clock.advance(9.5)
        assert await claim(b, 5) == []
        clock.advance(0.5)  # due exactly now counts as due
        assert ids_of(await claim(b, 5)) == [later]

    @backend_test
    async def test_claim_order(self, b: Backend, clock: FakeClock) -> None:
        """Highest priority first, then earliest available_at, then enqueue order."""
        now = clock()
        specs = [(0, -1), (5, -1), (0, -3), (-1, -5), (5, -2), (0, -1), (0, -3), (5, -2), (2, 0)]
        for one_by_one in (False, True):
            records = [make_record(priority=p, available_at=now + d) for p, d in specs]
            for r in records[:4]:
                await b.enqueue(r)
            await b.enqueue_many(records[4:])
            ranked = sorted(range(len(specs)), key=lambda i: (-specs[i][0], specs[i][1], i))
            expected = [records[i].id for i in ranked]
            if one_by_one:
                got = [(await claim_one(b)).id for _ in specs]
            else:
                got = ids_of(await claim(b, len(specs) + 3))
            assert got == expected

    @backend_test
    async def test_a_task_put_back_keeps_its_place(self, b: Backend, clock: FakeClock) -> None:
        """Enqueue order means first enqueue: a released or retried task does not go last."""
        ids = await enqueue(b, 3, available_at=clock())
        task = await claim_one(b)
        assert task.id == ids[0] and task.lease_token
        assert await b.release(task.id, task.lease_token)  # due again at clock(), like the rest
        task = await claim_one(b)
        assert task.id == ids[0] and task.lease_token
        assert await b.retry(task.id, task.lease_token, clock(), "flaky")
        assert ids_of(await claim(b, 3)) == ids

    @backend_test
    async def test_claim_filters_queues(self, b: Backend, clock: FakeClock) -> None:
        a = await enqueue(b, 2, queue="a")
        bq = await enqueue(b, 2, queue="b")
        c = await enqueue(b, 2, queue="c")
        assert await claim(b, 10, queues=[]) == []
        assert sorted(ids_of(await claim(b, 10, queues=["a", "c"]))) == sorted(a + c)
        assert await claim(b, 10, queues=["a", "missing"]) == []
        assert sorted(ids_of(await claim(b, 10, queues=None))) == sorted(bq)

    @backend_test
    async def test_claim_skips_excluded_ids(self, b: Backend, clock: FakeClock) -> None:
        ids = await enqueue(b, 4)
        got = await claim(b, 4, exclude=[ids[0], ids[2], "unknown"])
        assert ids_of(got) == [ids[1], ids[3]]
        assert await status_of(b, ids[0]) is TaskStatus.PENDING
        assert ids_of(await claim(b, 4, exclude=iter([ids[2]]))) == [ids[0]]
        assert ids_of(await claim(b, 4)) == [ids[2]]

    @backend_test
    async def test_claim_sets_attempts_and_lease(self, b: Backend, clock: FakeClock) -> None:
        record = make_record(payload=b"payload-bytes", dedupe_key="d", max_retries=2)
        await b.enqueue(record)
        clock.advance(3)
        got = await b.claim(worker_id="worker-7", limit=1, lease_seconds=12.5)
        (task,) = got
        assert task.status is TaskStatus.RUNNING and task.attempts == 1
        assert task.worker_id == "worker-7" and task.started_at == clock()
        assert task.lease_token and task.lease_expires_at == clock() + 12.5
        assert task.payload == record.payload and task.function == record.function
        assert task.max_retries == 2 and task.dedupe_key == "d"
        assert await stored(b, task.id) == task
        assert await b.release(task.id, task.lease_token)
        (again,) = await claim(b)
        assert again.attempts == 1, "a released attempt is given back"
        assert again.lease_token and again.lease_token != task.lease_token
        assert await b.retry(again.id, again.lease_token, clock(), "boom")
        assert (await claim_one(b)).attempts == 2

    @backend_test
    async def test_concurrent_claims_never_share_a_task(self, b: Backend, clock: FakeClock) -> None:
        ids = await enqueue(b, 100)
        batches = await asyncio.gather(*(claim(b, 7, worker=f"w{i}") for i in range(25)))
        claimed = [r.id for batch in batches for r in batch]
        assert len(claimed) == len(set(claimed)), "a task was claimed twice"
        assert sorted(claimed) == sorted(ids)
        assert (await b.counts())[TaskStatus.RUNNING] == 100

    @backend_test
    async def test_claims_from_several_event_loops(self, b: Backend, clock: FakeClock) -> None:
        """One backend object used from threads, each with its own loop, never double-claims."""
        ids = await enqueue(b, 300)

        async def drain(i: int) -> list[str]:
            mine: list[str] = []
            while batch := await claim(b, 5, worker=f"thread-{i}"):
                for task in batch:
                    assert task.lease_token
                    assert await b.complete(task.id, task.lease_token, None)
                mine.extend(ids_of(batch))
            return mine

        results = await asyncio.to_thread(in_threads, 3, drain)
        claimed = [tid for mine in results for tid in mine]
        assert len(claimed) == len(set(claimed)), "a task was claimed twice"
        assert sorted(claimed) == sorted(ids)
        assert (await b.counts())[TaskStatus.SUCCEEDED] == 300

    @backend_test
    async def test_claim_by_id(self, b: Backend, clock: FakeClock) -> None:
        (later,) = await enqueue(b, available_at=clock() + 3600)
        task = await b.claim_by_id(later, worker_id="w5", lease_seconds=20)
        assert task is not None and task.id == later, "claim_by_id ignores the due time"
        assert task.status is TaskStatus.RUNNING and task.attempts == 1
        assert task.worker_id == "w5" and task.started_at == clock()
        assert task.lease_token and task.lease_expires_at == clock() + 20
        assert await b.claim_by_id(later, worker_id="w6", lease_seconds=20) is None
        assert await b.claim_by_id("no-such-task", worker_id="w6", lease_seconds=20) is None
        for status in (TaskStatus.SUCCEEDED, TaskStatus.CANCELLED, TaskStatus.FAILED):
            task_id = await in_status(b, status)
            assert await b.claim_by_id(task_id, worker_id="w6", lease_seconds=20) is None
            assert await status_of(b, task_id) is status
