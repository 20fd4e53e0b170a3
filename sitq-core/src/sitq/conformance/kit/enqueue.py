"""Conformance tests of enqueueing: stored fields, batches, atomicity, task ids and dedupe keys."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from ...backend import Backend, Capability, TaskRecord
from ...errors import ConfigurationError, QueueClosed
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
    requires,
    status_of,
    stored,
    woken,
)


class EnqueueTests(KitBase):
    """Enqueue: every field stored, batches whole or not at all, dedupe keys; the same through
    `Backend.enqueue_many_blocking` for a backend declaring `Capability.BLOCKING_ENQUEUE`."""

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

    # -- blocking enqueue (`Capability.BLOCKING_ENQUEUE`): `enqueue_many`'s contract, from
    # -- threads without an event loop

    @backend_test
    async def test_blocking_enqueue_is_declared_or_refused(
        self, b: Backend, clock: FakeClock
    ) -> None:
        """A backend that does not declare the capability refuses with `ConfigurationError`
        (`SyncTaskQueue` then goes through its event loop)."""
        if b.supports(Capability.BLOCKING_ENQUEUE):
            return
        with pytest.raises(ConfigurationError):
            await asyncio.to_thread(b.enqueue_many_blocking, [make_record()])

    @requires(Capability.BLOCKING_ENQUEUE)
    async def test_blocking_enqueue_stores_what_enqueue_many_stores(
        self, b: Backend, clock: FakeClock
    ) -> None:
        """Every field, pending, in order; the async path sees the tasks at once."""
        record = make_record(
            function="app.mail:send", payload=b"\x00\xffbinary", queue="mail", priority=7,
            available_at=clock() + 5, max_retries=3, timeout=1.5, dedupe_key="welcome-42",
            created_at=clock(), meta={"trace": "t-1"},
        )  # fmt: skip
        others = [make_record() for _ in range(3)]
        ids = await asyncio.to_thread(b.enqueue_many_blocking, [record, *others])
        assert ids == ids_of([record, *others])
        got = await stored(b, record.id)
        for name in ("function", "payload", "serializer", "queue", "priority", "available_at",
                     "max_retries", "timeout", "dedupe_key", "created_at", "meta"):  # fmt: skip
            assert getattr(got, name) == getattr(record, name), name
        assert got.status is TaskStatus.PENDING and got.attempts == 0
        assert ids_of(await claim(b, 3)) == ids_of(others)
        assert await asyncio.to_thread(b.enqueue_many_blocking, []) == []

    @requires(Capability.BLOCKING_ENQUEUE)
    async def test_blocking_enqueue_keeps_dedupe_keys(self, b: Backend, clock: FakeClock) -> None:
        """A dedupe hit gives the task holding the key, whichever path stored it."""
        first = await b.enqueue(make_record(dedupe_key="k"))
        r1, r2 = make_record(dedupe_key="k"), make_record(dedupe_key="j")
        r3 = make_record(dedupe_key="j")
        assert await asyncio.to_thread(b.enqueue_many_blocking, [r1, r2, r3]) == [
            first,
            r2.id,
            r2.id,
        ]
        assert await b.enqueue(make_record(dedupe_key="j")) == r2.id
        assert (await b.counts())[TaskStatus.PENDING] == 2

    @requires(Capability.BLOCKING_ENQUEUE)
    async def test_blocking_enqueue_is_atomic(self, b: Backend, clock: FakeClock) -> None:
        """A batch reusing a stored id, or one id twice, raises and stores nothing."""
        (existing,) = await enqueue(b)
        for size in (5, 4500):
            batch = [make_record() for _ in range(size)]
            batch[-2] = make_record(id=existing)
            with pytest.raises(ConfigurationError, match=existing):
                await asyncio.to_thread(b.enqueue_many_blocking, batch)
            assert await b.get_task(batch[0].id) is None, f"batch of {size} half-stored"
        twice = make_record()
        with pytest.raises(ConfigurationError):
            await asyncio.to_thread(b.enqueue_many_blocking, [twice, make_record(id=twice.id)])
        assert (await b.counts())[TaskStatus.PENDING] == 1

    @requires(Capability.BLOCKING_ENQUEUE)
    async def test_blocking_enqueue_wakes_waiters(self, b: Backend, clock: FakeClock) -> None:
        """A waiter for work on an event loop wakes when a thread enqueues."""
        waiter = asyncio.ensure_future(b.wait_for_work(60))
        await woken(waiter, lambda: asyncio.to_thread(b.enqueue_many_blocking, [make_record()]))

    @requires(Capability.BLOCKING_ENQUEUE)
    async def test_blocking_enqueue_from_many_threads(self, b: Backend, clock: FakeClock) -> None:
        """Threads enqueueing at once, one by one: every task stored once, none lost."""
        batches = [[make_record() for _ in range(25)] for _ in range(8)]
        returned: list[str] = []
        errors: list[BaseException] = []

        def one_by_one(records: list[TaskRecord]) -> None:
            try:
                for record in records:
                    returned.extend(b.enqueue_many_blocking([record]))
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=one_by_one, args=(r,)) for r in batches]
        await asyncio.to_thread(_run_all, threads)
        assert not errors, errors
        expected = sorted(r.id for records in batches for r in records)
        assert sorted(returned) == expected
        assert sorted(ids_of(await b.list_tasks(limit=None))) == expected

    @requires(Capability.BLOCKING_ENQUEUE)
    async def test_blocking_enqueue_after_close_does_as_enqueue_many(
        self, b: Backend, clock: FakeClock
    ) -> None:
        """Once the backend is closed (and what it held per thread with it), a blocking
        enqueue does what `enqueue_many` does then, in a thread that enqueued before and in a
        new one: raise `QueueClosed` if that does, store the task if it stores."""
        done, go = threading.Event(), threading.Event()
        outcome: list[BaseException | None] = []

        def enqueue_twice() -> None:
            b.enqueue_many_blocking([make_record()])
            done.set()
            go.wait(30)
            outcome.append(_error_of(b.enqueue_many_blocking, [make_record()]))

        thread = threading.Thread(target=enqueue_twice)
        thread.start()
        await asyncio.to_thread(done.wait, 30)
        await b.close()
        go.set()
        await asyncio.to_thread(thread.join, 30)
        try:
            await b.enqueue_many([make_record()])
            expected: type[BaseException] | None = None
        except QueueClosed:
            expected = QueueClosed
        fresh = await asyncio.to_thread(_error_of, b.enqueue_many_blocking, [make_record()])
        for got in (*outcome, fresh):
            assert (None if got is None else type(got)) is expected, (got, expected)


def _error_of(
    call: Callable[[list[TaskRecord]], object], records: list[TaskRecord]
) -> BaseException | None:
    """What ``call(records)`` raises, or None."""
    try:
        call(records)
    except BaseException as exc:  # returned to the test
        return exc
    return None


def _run_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
