"""Conformance tests of enqueueing: stored fields, batches, atomicity, task ids and dedupe keys."""

from __future__ import annotations

import pytest

from ...backend import Backend
from ...errors import ConfigurationError
from ...task import TaskStatus
from ..clock import FakeClock
from ..records import make_record
from .support import (
    LEASE,
    KitBase,
    backend_test,
    claim,
    claim_one,
    enqueue,
    ids_of,
    in_status,
    status_of,
    stored,
)


class EnqueueTests(KitBase):
    """Enqueue: every field stored, batches whole or not at all, dedupe keys."""

    @backend_test
    async def test_enqueue_stores_a_pending_record(self, b: Backend, clock: FakeClock) -> None:
        """Every field of the record is stored; the task starts pending with no attempt."""
        record = make_record(
            function="app.mail:send", payload=b"\x00\xffbinary", serializer="cloudpickle",
            queue="mail", priority=7, available_at=clock() + 5, max_retries=3, timeout=1.5,
            dedupe_key="welcome-42", created_at=clock(),
        )  # fmt: skip
        assert await b.enqueue(record) == record.id
        got = await stored(b, record.id)
        for name in ("function", "payload", "serializer", "queue", "priority", "available_at",
                     "max_retries", "timeout", "dedupe_key", "created_at"):  # fmt: skip
            assert getattr(got, name) == getattr(record, name), name
        assert got.status is TaskStatus.PENDING and got.attempts == 0
        for name in ("started_at", "finished_at", "worker_id", "lease_token",
                     "lease_expires_at", "result", "error", "traceback"):  # fmt: skip
            assert getattr(got, name) is None, name

    @backend_test
    async def test_enqueue_stores_as_pending_whatever_the_record_says(
        self, b: Backend, clock: FakeClock
    ) -> None:
        """A record arriving with a status, attempts or a lease is still stored fresh."""
        record = make_record()
        record.status, record.attempts = TaskStatus.RUNNING, 4
        record.lease_token, record.lease_expires_at, record.worker_id = "stolen", 1e12, "w9"
        await b.enqueue(record)
        got = await stored(b, record.id)
        assert got.status is TaskStatus.PENDING and got.attempts == 0
        assert got.lease_token is None and got.lease_expires_at is None
        assert ids_of(await claim(b)) == [record.id]

    @backend_test
    async def test_enqueue_many_returns_ids_in_order(self, b: Backend, clock: FakeClock) -> None:
        records = [make_record(queue=f"q{i % 3}") for i in range(20)]
        assert await b.enqueue_many(records) == ids_of(records)
        assert (await b.counts())[TaskStatus.PENDING] == 20
        assert await b.enqueue_many([]) == []

    @backend_test
    async def test_enqueue_many_large_batch(self, b: Backend, clock: FakeClock) -> None:
        """Thousands of records in one call (backends that chunk must keep order)."""
        records = [make_record() for _ in range(4500)]
        assert await b.enqueue_many(records) == ids_of(records)
        assert (await b.counts())[TaskStatus.PENDING] == 4500
        assert ids_of(await claim(b, 3)) == ids_of(records[:3])

    @backend_test
    async def test_enqueue_many_is_atomic(self, b: Backend, clock: FakeClock) -> None:
        """A batch reusing a stored id raises ConfigurationError and stores nothing."""
        (existing,) = await enqueue(b)
        for size in (5, 4500):
            batch = [make_record() for _ in range(size)]
            batch[-2] = make_record(id=existing)
            with pytest.raises(ConfigurationError):
                await b.enqueue_many(batch)
            assert (await b.counts())[TaskStatus.PENDING] == 1, f"batch of {size} half-stored"
            assert await b.get_task(batch[0].id) is None

    @backend_test
    async def test_enqueue_many_rejects_an_id_twice_in_one_batch(
        self, b: Backend, clock: FakeClock
    ) -> None:
        first = make_record()
        with pytest.raises(ConfigurationError):
            await b.enqueue_many([make_record(), first, make_record(id=first.id)])
        assert (await b.counts())[TaskStatus.PENDING] == 0

    @backend_test
    async def test_dedupe_returns_the_pending_task(self, b: Backend, clock: FakeClock) -> None:
        first = await b.enqueue(make_record(dedupe_key="k"))
        again = make_record(dedupe_key="k", queue="other", priority=9)
        assert await b.enqueue(again) == first
        assert await b.get_task(again.id) is None
        assert (await b.counts())[TaskStatus.PENDING] == 1

    @backend_test
    async def test_dedupe_returns_the_running_task(self, b: Backend, clock: FakeClock) -> None:
        first = await b.enqueue(make_record(dedupe_key="k"))
        await claim_one(b)
        assert await b.enqueue(make_record(dedupe_key="k")) == first
        assert sum((await b.counts()).values()) == 1

    @backend_test
    async def test_dedupe_holds_through_retry_and_release(
        self, b: Backend, clock: FakeClock
    ) -> None:
        first = await b.enqueue(make_record(dedupe_key="k"))
        task = await claim_one(b)
        assert task.lease_token and await b.retry(first, task.lease_token, clock() + 5, "boom")
        assert await b.enqueue(make_record(dedupe_key="k")) == first
        clock.advance(5)
        task = await claim_one(b)
        assert task.lease_token and await b.release(first, task.lease_token)
        assert await b.enqueue(make_record(dedupe_key="k")) == first

    @backend_test
    async def test_dedupe_allows_a_new_task_once_the_first_is_over(
        self, b: Backend, clock: FakeClock
    ) -> None:
        for status in (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.DEAD,
                       TaskStatus.CANCELLED):  # fmt: skip
            key = f"key-{status.value}"
            first = await in_status(b, status, dedupe_key=key)
            second = make_record(dedupe_key=key)
            assert await b.enqueue(second) == second.id, f"key still taken after {status}"
            assert await b.enqueue(make_record(dedupe_key=key)) == second.id
            assert first != second.id

    @backend_test
    async def test_dedupe_key_freed_by_a_lost_worker(self, b: Backend, clock: FakeClock) -> None:
        """A task killed by recover_expired no longer holds its key."""
        first = await b.enqueue(make_record(dedupe_key="k"))
        await claim_one(b)
        clock.advance(LEASE + 1)
        assert await b.recover_expired(max_attempts=1) == []
        assert await status_of(b, first) is TaskStatus.DEAD
        second = make_record(dedupe_key="k")
        assert await b.enqueue(second) == second.id

    @backend_test
    async def test_dedupe_within_one_batch(self, b: Backend, clock: FakeClock) -> None:
        r1, r2, r3 = make_record(dedupe_key="k"), make_record(dedupe_key="k"), make_record()
        assert await b.enqueue_many([r1, r2, r3]) == [r1.id, r1.id, r3.id]
        assert (await b.counts())[TaskStatus.PENDING] == 2

    @backend_test
    async def test_dedupe_keys_span_queues(self, b: Backend, clock: FakeClock) -> None:
        first = await b.enqueue(make_record(dedupe_key="k", queue="a"))
        assert await b.enqueue(make_record(dedupe_key="k", queue="b")) == first
