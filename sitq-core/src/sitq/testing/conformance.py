"""`BackendConformance`: the pytest suite every `Backend` passes unchanged.

Subclass it in a test module and say how to build an empty backend::

    from sitq.testing import BackendConformance
    from sitq_memory import MemoryBackend

    class TestMemoryConformance(BackendConformance):
        async def make_backend(self, tmp_path):
            return MemoryBackend()

Every test gets a fresh backend from ``make_backend`` with its ``clock`` replaced by a
`FakeClock`, so due times and leases are tested without sleeping. Tests are plain functions
driving their own event loop: no pytest-asyncio needed. The suite ends with
`BackendStateMachine`, random operation sequences checked against a model of the queue.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import settings

from ..backend import ALL_STATUSES, Backend, Outcome, TaskRecord
from ..errors import ConfigurationError
from ..task import TaskStatus
from .clock import FakeClock
from .records import make_record
from .runner import LoopRunner
from .statemachine import run_backend_state_machine

#: Bound, in seconds, on waiting for a wake-up that should come at once.
WAKE_BOUND = 10.0
LEASE = 30.0

BackendTestBody = Callable[[Any, Backend, FakeClock], Awaitable[None]]


def backend_test(body: BackendTestBody) -> Callable[[Any, Path], None]:
    """Turn ``async def test_x(self, backend, clock)`` into a pytest test.

    The test gets a fresh, connected backend from ``self.make_backend(tmp_path)`` whose clock
    is a `FakeClock`, runs on a private event loop and closes the backend afterwards.
    """

    def test(self: BackendConformance, tmp_path: Path) -> None:
        with LoopRunner() as runner:
            clock = FakeClock()
            backend = runner.run(self.make_backend(tmp_path))
            backend.clock = clock
            try:
                runner.run(backend.connect())
                runner.run(body(self, backend, clock))
            finally:
                runner.run(backend.close())

    test.__name__ = body.__name__
    test.__qualname__ = body.__qualname__
    test.__doc__ = body.__doc__
    test.__module__ = body.__module__
    return test


# -- helpers -----------------------------------------------------------------------------------


async def enqueue(b: Backend, n: int = 1, **fields: Any) -> list[str]:
    """Enqueue ``n`` records built with ``fields``; return their ids."""
    return await b.enqueue_many([make_record(**fields) for _ in range(n)])


async def claim(b: Backend, limit: int = 1, *, worker: str = "w1", **kw: Any) -> list[TaskRecord]:
    """Claim up to ``limit`` tasks with a 30-second lease."""
    return await b.claim(worker_id=worker, limit=limit, lease_seconds=LEASE, **kw)


async def claim_one(b: Backend, **kw: Any) -> TaskRecord:
    """Claim exactly one task (fails the test if none is claimable)."""
    got = await claim(b, 1, **kw)
    assert len(got) == 1, f"expected to claim one task, claimed {len(got)}"
    return got[0]


async def stored(b: Backend, task_id: str) -> TaskRecord:
    """The stored record of a task that must exist."""
    record = await b.get_task(task_id)
    assert record is not None, f"get_task({task_id!r}) returned None"
    return record


async def status_of(b: Backend, task_id: str) -> TaskStatus:
    """The stored status of a task that must exist."""
    return (await stored(b, task_id)).status


def ids_of(records: Iterable[TaskRecord]) -> list[str]:
    """The ids of ``records``, in order."""
    return [r.id for r in records]


async def in_status(b: Backend, status: TaskStatus, **fields: Any) -> str:
    """A new task brought to ``status`` through the contract's own operations."""
    (task_id,) = await enqueue(b, **fields)
    if status is TaskStatus.PENDING:
        return task_id
    if status is TaskStatus.CANCELLED:
        assert await b.cancel(task_id)
        return task_id
    record = await b.claim_by_id(task_id, worker_id="w1", lease_seconds=LEASE)
    assert record is not None and record.lease_token is not None
    if status is TaskStatus.SUCCEEDED:
        assert await b.complete(task_id, record.lease_token, b"ok")
    elif status is TaskStatus.FAILED:
        assert await b.fail(task_id, record.lease_token, "ValueError: boom", "Traceback: ...")
    elif status is TaskStatus.DEAD:
        assert await b.finish([Outcome.dead(task_id, record.lease_token, "cannot decode")])
    return task_id


async def woken(waiter: asyncio.Task[Any], poke: Callable[[], Awaitable[Any]]) -> None:
    """Assert ``waiter`` finishes soon after ``poke``; pokes again now and then, in case the
    backend needed a moment to start listening."""
    deadline = asyncio.get_running_loop().time() + WAKE_BOUND
    await asyncio.sleep(0.01)
    while not waiter.done():
        assert asyncio.get_running_loop().time() < deadline, "no wake-up within 10 s"
        await poke()
        await asyncio.wait([waiter], timeout=0.5)
    waiter.result()


def in_threads(count: int, work: Callable[[int], Awaitable[Any]]) -> list[Any]:
    """Run ``work(i)`` for ``i in range(count)``, each on its own thread and event loop."""
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def main(i: int) -> None:
        try:
            results[i] = asyncio.run(asyncio.wait_for(work(i), 60))
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=main, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not any(t.is_alive() for t in threads), "a thread did not finish within 90 s"
    if errors:
        raise errors[0]
    return results


# -- the suite ---------------------------------------------------------------------------------


class BackendConformance:
    """The conformance suite; subclass it and implement `make_backend`.

    Set ``state_machine_settings`` to a `hypothesis.settings` to run the state machine longer
    or shorter than `DEFAULT_SETTINGS`, or with shrinking on (`SHRINKING_SETTINGS`) to turn a
    failing sequence into a minimal one.
    """

    state_machine_settings: ClassVar[settings | None] = None

    async def make_backend(self, tmp_path: Path) -> Backend:
        """A new backend on an empty store; ``tmp_path`` is a private folder for its files.

        The suite connects it, replaces its clock and closes it.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must define `async def make_backend(self, tmp_path)` "
            "returning a new backend on an empty store"
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def test_connect_and_close_are_idempotent(self, tmp_path: Path) -> None:
        """connect() and close() may be called twice."""
        with LoopRunner() as runner:
            b = runner.run(self.make_backend(tmp_path))
            runner.run(b.connect())
            runner.run(b.connect())
            assert runner.run(enqueue(b))
            runner.run(b.close())
            runner.run(b.close())

    # -- enqueue -----------------------------------------------------------------------------

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

    # -- dedupe ------------------------------------------------------------------------------

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

    # -- claim -------------------------------------------------------------------------------

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

    # -- leases ------------------------------------------------------------------------------

    @backend_test
    async def test_extend_leases_pushes_back_held_leases(
        self, b: Backend, clock: FakeClock
    ) -> None:
        await enqueue(b, 2)
        t1, t2 = await claim(b, 2)
        assert t1.lease_token and t2.lease_token
        clock.advance(20)
        held = await b.extend_leases({t1.id: t1.lease_token, t2.id: t2.lease_token}, 30)
        assert held == {t1.id, t2.id}
        assert (await stored(b, t1.id)).lease_expires_at == clock() + 30
        clock.advance(25)  # past the first lease, within the extended one
        assert await b.recover_expired(max_attempts=5) == []
        assert await b.complete(t1.id, t1.lease_token, None)

    @backend_test
    async def test_extend_leases_omits_lost_leases(self, b: Backend, clock: FakeClock) -> None:
        await enqueue(b, 3)
        done, lost, kept = await claim(b, 3)
        assert done.lease_token and lost.lease_token and kept.lease_token
        assert await b.complete(done.id, done.lease_token, None)
        clock.advance(LEASE + 1)
        assert await b.extend_leases({kept.id: kept.lease_token}, LEASE) == {kept.id}
        assert await b.recover_expired(max_attempts=5) == [lost.id]
        leases = {
            done.id: done.lease_token,
            lost.id: lost.lease_token,
            kept.id: "not-the-token",
            "no-such-task": "x",
        }
        assert await b.extend_leases(leases, LEASE) == set()
        assert await b.extend_leases({}, LEASE) == set()
        assert (await stored(b, kept.id)).lease_token == kept.lease_token

    # -- finish ------------------------------------------------------------------------------

    @backend_test
    async def test_complete_stores_the_result(self, b: Backend, clock: FakeClock) -> None:
        (task_id,) = await enqueue(b)
        assert await b.get_result(task_id) is None
        task = await claim_one(b)
        assert await b.get_result(task_id) is None
        assert task.lease_token and await b.complete(task_id, task.lease_token, b"\x00result")
        got = await b.get_result(task_id)
        assert got is not None and got.status is TaskStatus.SUCCEEDED
        assert got.result == b"\x00result" and got.error is None and got.attempts == 1
        assert got.finished_at is not None and got.started_at == clock()
        assert got.lease_token is None and got.lease_expires_at is None

    @backend_test
    async def test_fail_stores_error_and_traceback(self, b: Backend, clock: FakeClock) -> None:
        (task_id,) = await enqueue(b)
        task = await claim_one(b)
        assert task.lease_token
        assert await b.fail(task_id, task.lease_token, "ValueError: bad", "Traceback (most…)")
        got = await b.get_result(task_id)
        assert got is not None and got.status is TaskStatus.FAILED
        assert got.error == "ValueError: bad" and got.traceback == "Traceback (most…)"
        assert got.finished_at is not None and got.lease_token is None and got.result is None

    @backend_test
    async def test_dead_outcome(self, b: Backend, clock: FakeClock) -> None:
        (task_id,) = await enqueue(b)
        task = await claim_one(b)
        assert task.lease_token
        outcome = Outcome.dead(task_id, task.lease_token, "PayloadError: cannot decode", "tb")
        assert await b.finish([outcome]) == [True]
        got = await b.get_result(task_id)
        assert got is not None and got.status is TaskStatus.DEAD
        assert got.error == "PayloadError: cannot decode" and got.traceback == "tb"
        assert got.finished_at == outcome.finished_at

    @backend_test
    async def test_retry_keeps_the_attempt_and_the_error(
        self, b: Backend, clock: FakeClock
    ) -> None:
        (task_id,) = await enqueue(b)
        task = await claim_one(b)
        assert task.lease_token
        assert await b.retry(task_id, task.lease_token, clock() + 5, "OSError: flaky", "tb1")
        got = await stored(b, task_id)
        assert got.status is TaskStatus.PENDING and got.attempts == 1
        assert got.available_at == clock() + 5 and got.lease_token is None
        assert got.error == "OSError: flaky" and got.traceback == "tb1"
        assert await b.get_result(task_id) is None
        assert await claim(b) == []
        clock.advance(5)
        assert (await claim_one(b)).attempts == 2

    @backend_test
    async def test_release_gives_the_attempt_back(self, b: Backend, clock: FakeClock) -> None:
        (task_id,) = await enqueue(b, available_at=clock() - 100)
        task = await claim_one(b)
        assert task.lease_token
        assert await b.retry(task_id, task.lease_token, clock(), "first error", "tb")
        task = await claim_one(b)
        assert task.attempts == 2 and task.lease_token
        clock.advance(1)
        assert await b.release(task_id, task.lease_token)
        got = await stored(b, task_id)
        assert got.status is TaskStatus.PENDING and got.attempts == 1
        assert got.available_at == clock(), "available_at=None means now"
        assert got.error == "first error" and got.traceback == "tb", "a release keeps the error"
        task = await claim_one(b)
        assert task.lease_token
        release_later = Outcome.release(task_id, task.lease_token, available_at=clock() + 60)
        assert await b.finish([release_later]) == [True]
        got = await stored(b, task_id)
        assert got.available_at == clock() + 60 and got.attempts == 1
        assert await claim(b) == []

    @backend_test
    async def test_finish_reports_each_outcome(self, b: Backend, clock: FakeClock) -> None:
        """One call, many outcomes of every kind; the answer says which applied."""
        await enqueue(b, 6)
        tasks = await claim(b, 6)
        tokens = [t.lease_token or "" for t in tasks]
        ids = ids_of(tasks)
        outcomes = [
            Outcome.succeeded(ids[0], tokens[0], b"r"),
            Outcome.failed(ids[1], "stale-token", "err"),
            Outcome.retry(ids[2], tokens[2], clock() + 1, "err"),
            Outcome.release(ids[3], tokens[3]),
            Outcome.dead(ids[4], tokens[4], "dead"),
            Outcome.succeeded("no-such-task", "x", None),
            Outcome.failed(ids[5], tokens[5], "err"),
        ]
        assert await b.finish(outcomes) == [True, False, True, True, True, False, True]
        statuses = [await status_of(b, tid) for tid in ids]
        assert statuses == [
            TaskStatus.SUCCEEDED, TaskStatus.RUNNING, TaskStatus.PENDING, TaskStatus.PENDING,
            TaskStatus.DEAD, TaskStatus.FAILED,
        ]  # fmt: skip
        assert await b.finish([]) == []

    @backend_test
    async def test_finish_is_fenced_by_the_lease_token(self, b: Backend, clock: FakeClock) -> None:
        """A worker that lost its lease can no longer change the task."""
        (task_id,) = await enqueue(b)
        old = await claim_one(b)
        assert old.lease_token
        assert not await b.complete(task_id, "forged", b"x")
        assert (await stored(b, task_id)).lease_token == old.lease_token
        clock.advance(LEASE + 1)
        assert await b.recover_expired(max_attempts=5) == [task_id]
        new = await claim_one(b, worker="w2")
        assert new.lease_token and new.lease_token != old.lease_token
        stale = old.lease_token
        assert not await b.complete(task_id, stale, b"late")
        assert not await b.fail(task_id, stale, "late")
        assert not await b.retry(task_id, stale, clock(), "late")
        assert not await b.release(task_id, stale)
        assert await b.extend_leases({task_id: stale}, LEASE) == set()
        got = await stored(b, task_id)
        assert got.status is TaskStatus.RUNNING and got.lease_token == new.lease_token
        assert got.worker_id == "w2" and got.attempts == 2
        assert await b.complete(task_id, new.lease_token, b"ok")

    @backend_test
    async def test_finishing_twice_is_rejected(self, b: Backend, clock: FakeClock) -> None:
        (task_id,) = await enqueue(b)
        task = await claim_one(b)
        assert task.lease_token
        assert await b.complete(task_id, task.lease_token, b"first")
        assert not await b.complete(task_id, task.lease_token, b"second")
        assert not await b.fail(task_id, task.lease_token, "late")
        assert not await b.retry(task_id, task.lease_token, clock(), "late")
        assert not await b.release(task_id, task.lease_token)
        got = await stored(b, task_id)
        assert got.status is TaskStatus.SUCCEEDED and got.result == b"first"

    @backend_test
    async def test_two_outcomes_for_one_task_in_one_call(
        self, b: Backend, clock: FakeClock
    ) -> None:
        """Outcomes apply in order: the first clears the lease, so the second is refused."""
        await enqueue(b, 2)
        t1, t2 = await claim(b, 2)
        assert t1.lease_token and t2.lease_token
        outcomes = [
            Outcome.succeeded(t1.id, t1.lease_token, b"r"),
            Outcome.failed(t1.id, t1.lease_token, "err"),
            Outcome.release(t2.id, t2.lease_token),
            Outcome.release(t2.id, t2.lease_token),
        ]
        assert await b.finish(outcomes) == [True, False, True, False]
        assert await status_of(b, t1.id) is TaskStatus.SUCCEEDED
        assert (await stored(b, t2.id)).attempts == 0, "released once, not twice"

    @backend_test
    async def test_finish_needs_a_claim(self, b: Backend, clock: FakeClock) -> None:
        (task_id,) = await enqueue(b)
        assert await b.finish([Outcome.succeeded(task_id, "", None)]) == [False]
        assert not await b.release(task_id, "anything")
        got = await stored(b, task_id)
        assert got.status is TaskStatus.PENDING and got.attempts == 0

    # -- recovery ----------------------------------------------------------------------------

    @backend_test
    async def test_recover_expired_requeues_lapsed_leases(
        self, b: Backend, clock: FakeClock
    ) -> None:
        (task_id,) = await enqueue(b)
        task = await claim_one(b)
        clock.advance(LEASE)
        assert await b.recover_expired(max_attempts=3) == [], "the lease holds until it expires"
        clock.advance(0.5)
        assert await b.recover_expired(max_attempts=3) == [task_id]
        got = await stored(b, task_id)
        assert got.status is TaskStatus.PENDING and got.attempts == 1
        assert got.available_at == clock()
        assert got.lease_token is None and got.lease_expires_at is None
        assert await b.recover_expired(max_attempts=3) == []
        again = await claim_one(b)
        assert again.id == task_id and again.lease_token != task.lease_token

    @backend_test
    async def test_recover_expired_kills_after_max_attempts(
        self, b: Backend, clock: FakeClock
    ) -> None:
        (task_id,) = await enqueue(b)
        await claim_one(b)
        clock.advance(LEASE + 1)
        assert await b.recover_expired(max_attempts=2) == [task_id]
        await claim_one(b)
        clock.advance(LEASE + 1)
        assert await b.recover_expired(max_attempts=2) == []
        got = await b.get_result(task_id)
        assert got is not None and got.status is TaskStatus.DEAD and got.attempts == 2
        assert got.error, "a task killed by recovery says why"
        assert got.finished_at is not None and got.lease_token is None
        assert await claim(b) == []

    @backend_test
    async def test_recover_expired_honours_max_retries(self, b: Backend, clock: FakeClock) -> None:
        """The limit is max(max_attempts, max_retries + 1)."""
        (task_id,) = await enqueue(b, max_retries=3)
        for attempt in range(1, 5):
            assert (await claim_one(b)).attempts == attempt
            clock.advance(LEASE + 1)
            recovered = await b.recover_expired(max_attempts=1)
            assert recovered == ([task_id] if attempt < 4 else [])
        assert await status_of(b, task_id) is TaskStatus.DEAD

    @backend_test
    async def test_recover_expired_leaves_live_leases(self, b: Backend, clock: FakeClock) -> None:
        await enqueue(b, 3)
        t1, t2, t3 = await claim(b, 3)
        assert t1.lease_token
        clock.advance(LEASE - 1)
        assert await b.extend_leases({t1.id: t1.lease_token}, LEASE) == {t1.id}
        clock.advance(2)
        assert sorted(await b.recover_expired(max_attempts=5)) == sorted([t2.id, t3.id])
        assert await status_of(b, t1.id) is TaskStatus.RUNNING

    # -- control -----------------------------------------------------------------------------

    @backend_test
    async def test_cancel_pending_tasks(self, b: Backend, clock: FakeClock) -> None:
        (due,) = await enqueue(b)
        (later,) = await enqueue(b, available_at=clock() + 60)
        assert await b.cancel(due) and await b.cancel(later)
        got = await stored(b, due)
        assert got.status is TaskStatus.CANCELLED and got.finished_at is not None
        assert await b.get_result(due) is not None
        assert not await b.cancel(due), "cancelling twice"
        clock.advance(60)
        assert await claim(b, 5) == [], "a cancelled task never runs"
        for status in (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.DEAD):
            task_id = await in_status(b, status)
            assert not await b.cancel(task_id), f"cancel of a {status} task"
            assert await status_of(b, task_id) is status
        assert not await b.cancel("no-such-task")

    @backend_test
    async def test_cancel_running_task_takes_its_lease(self, b: Backend, clock: FakeClock) -> None:
        """A running task is cancelled at once; its worker can store nothing and its next
        heartbeat finds the lease gone."""
        (task_id,) = await enqueue(b, dedupe_key="k")
        record = await claim_one(b)
        assert record.lease_token
        assert await b.cancel(task_id)
        got = await stored(b, task_id)
        assert got.status is TaskStatus.CANCELLED and got.finished_at is not None
        assert got.lease_token is None and got.lease_expires_at is None
        assert await b.extend_leases({task_id: record.lease_token}, LEASE) == set()
        assert not await b.complete(task_id, record.lease_token, b"late")
        assert not await b.release(task_id, record.lease_token)
        assert not await b.cancel(task_id), "cancelling twice"
        clock.advance(LEASE + 1)
        assert await b.recover_expired(max_attempts=5) == []
        assert await status_of(b, task_id) is TaskStatus.CANCELLED
        assert (await stored(b, task_id)).result is None
        (other,) = await enqueue(b, dedupe_key="k")
        assert other != task_id, "a cancelled task frees its dedupe key"

    @backend_test
    async def test_requeue_failed_dead_and_cancelled(self, b: Backend, clock: FakeClock) -> None:
        for status in (TaskStatus.FAILED, TaskStatus.DEAD, TaskStatus.CANCELLED):
            task_id = await in_status(b, status, available_at=clock() + 100)
            clock.advance(1)
            assert await b.requeue(task_id), f"requeue of a {status} task"
            got = await stored(b, task_id)
            assert got.status is TaskStatus.PENDING and got.attempts == 0
            assert got.available_at == clock(), "requeued tasks are due now"
            assert got.error is None and got.traceback is None and got.result is None
            assert got.finished_at is None and got.lease_token is None
            assert ids_of(await claim(b)) == [task_id]
            assert not await b.requeue(task_id), "requeue of a running task"

    @backend_test
    async def test_requeue_refuses_other_statuses(self, b: Backend, clock: FakeClock) -> None:
        for status in (TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.SUCCEEDED):
            task_id = await in_status(b, status)
            assert not await b.requeue(task_id), f"requeue of a {status} task"
            assert await status_of(b, task_id) is status
        assert not await b.requeue("no-such-task")

    @backend_test
    async def test_requeue_refuses_a_taken_dedupe_key(self, b: Backend, clock: FakeClock) -> None:
        old = await in_status(b, TaskStatus.CANCELLED, dedupe_key="k")
        (new,) = await enqueue(b, dedupe_key="k")
        assert new != old
        assert not await b.requeue(old), "two active tasks would share a dedupe key"
        assert await status_of(b, old) is TaskStatus.CANCELLED
        assert await b.cancel(new) and await b.requeue(old)
        assert await b.enqueue(make_record(dedupe_key="k")) == old

    @backend_test
    async def test_expire_results_leaves_tombstones(self, b: Backend, clock: FakeClock) -> None:
        """Optional (result_ttl): finished tasks lose payload, result and traceback; the rest
        of the row stays, so an expired task is told apart from an unknown one."""
        finished = {s: await in_status(b, s) for s in ALL_STATUSES if s.is_final}
        pending = await in_status(b, TaskStatus.PENDING)
        running = await in_status(b, TaskStatus.RUNNING)
        try:
            count = await b.expire_results(finished_before=-1.0)
        except ConfigurationError:
            pytest.skip(f"{type(b).__name__} does not implement the optional expire_results")
        assert count == 0, "nothing finished before -1"
        before = {s: await stored(b, t) for s, t in finished.items()}
        assert await b.expire_results(finished_before=1e15) == len(finished)
        assert await b.expire_results(finished_before=1e15) == 0, "tombstones stay tombstones"
        for status, task_id in finished.items():
            got = await stored(b, task_id)
            assert got.expired and got.payload == b"" and got.result is None
            assert got.traceback is None and got.status is status
            assert got.error == before[status].error and got.finished_at is not None
            assert got.attempts == before[status].attempts
            assert not await b.requeue(task_id), "a tombstone has nothing left to run"
        for task_id, status in ((pending, TaskStatus.PENDING), (running, TaskStatus.RUNNING)):
            got = await stored(b, task_id)
            assert got.status is status and got.payload and not got.expired
        assert await b.purge() == len(finished), "tombstones are purged like finished tasks"

    @backend_test
    async def test_heartbeat_backend_works_from_another_thread(
        self, b: Backend, clock: FakeClock
    ) -> None:
        """What `heartbeat_backend` returns extends leases from a thread and loop of its own."""
        side = b.heartbeat_backend()
        if side is None:
            pytest.skip(f"{type(b).__name__} keeps its heartbeat on the worker's loop")
        (task_id,) = await enqueue(b)
        record = await claim_one(b)
        assert record.lease_token
        clock.advance(20)

        async def beat(_: int) -> set[str]:
            assert side is not None and record.lease_token is not None
            await side.connect()
            try:
                return await side.extend_leases({task_id: record.lease_token}, LEASE)
            finally:
                if side is not b:
                    await side.close()

        assert await asyncio.to_thread(in_threads, 1, beat) == [{task_id}]
        assert (await stored(b, task_id)).lease_expires_at == clock() + LEASE

    # -- reading -----------------------------------------------------------------------------

    @backend_test
    async def test_get_task_and_get_result_of_unknown_ids(
        self, b: Backend, clock: FakeClock
    ) -> None:
        assert await b.get_task("no-such-task") is None
        assert await b.get_result("no-such-task") is None

    @backend_test
    async def test_get_result_only_when_final(self, b: Backend, clock: FakeClock) -> None:
        for status in ALL_STATUSES:
            task_id = await in_status(b, status)
            got = await b.get_result(task_id)
            if status.is_final:
                assert got is not None and got.status is status
            else:
                assert got is None, f"get_result of a {status} task"

    @backend_test
    async def test_counts(self, b: Backend, clock: FakeClock) -> None:
        assert await b.counts() == dict.fromkeys(ALL_STATUSES, 0)
        assert await b.counts("nothing-here") == dict.fromkeys(ALL_STATUSES, 0)
        for status in ALL_STATUSES:
            await in_status(b, status, queue="a")
        await in_status(b, TaskStatus.PENDING, queue="b")
        await in_status(b, TaskStatus.FAILED, queue="b")
        expected_a = dict.fromkeys(ALL_STATUSES, 1)
        assert await b.counts("a") == expected_a
        expected_b = dict.fromkeys(ALL_STATUSES, 0)
        expected_b[TaskStatus.PENDING] = expected_b[TaskStatus.FAILED] = 1
        assert await b.counts("b") == expected_b
        total = {s: expected_a[s] + expected_b[s] for s in ALL_STATUSES}
        assert await b.counts() == total

    @backend_test
    async def test_list_tasks_filters_and_orders(self, b: Backend, clock: FakeClock) -> None:
        """Oldest first by created_at, ties in enqueue order; filters, limit, complete records."""
        early = make_record(queue="a", created_at=clock() - 50)
        same_time = [make_record(queue=q, created_at=clock()) for q in ("b", "a", "b")]
        await b.enqueue_many([*same_time[:2], early])
        await b.enqueue(same_time[2])
        done = await in_status(b, TaskStatus.FAILED, queue="a", created_at=clock() + 5)
        oldest = [early.id, *ids_of(same_time), done]
        assert ids_of(await b.list_tasks()) == oldest
        assert ids_of(await b.list_tasks(order="newest")) == oldest[::-1]
        assert ids_of(await b.list_tasks(limit=2)) == oldest[:2]
        assert ids_of(await b.list_tasks(limit=None, order="newest")) == oldest[::-1]
        assert await b.list_tasks(limit=0) == []
        assert ids_of(await b.list_tasks(queue="b")) == [same_time[0].id, same_time[2].id]
        assert ids_of(await b.list_tasks(statuses=[TaskStatus.FAILED])) == [done]
        pending_a = await b.list_tasks(statuses=[TaskStatus.PENDING], queue="a")
        assert ids_of(pending_a) == [early.id, same_time[1].id]
        assert pending_a[0] == await stored(b, early.id), "records are complete"
        (failed,) = await b.list_tasks(statuses=[TaskStatus.FAILED])
        assert failed.error == "ValueError: boom" and failed.traceback == "Traceback: ..."
        assert await b.list_tasks(statuses=[]) == []
        assert await b.list_tasks(queue="nothing-here") == []

    @backend_test
    async def test_list_tasks_rejects_bad_arguments(self, b: Backend, clock: FakeClock) -> None:
        for kwargs in ({"limit": -1}, {"limit": 2.5}, {"order": "random"},
                       {"statuses": ["no-such-status"]}):  # fmt: skip
            with pytest.raises(ConfigurationError):
                await b.list_tasks(**kwargs)

    @backend_test
    async def test_queue_counts(self, b: Backend, clock: FakeClock) -> None:
        assert await b.queue_counts() == {}
        await in_status(b, TaskStatus.PENDING, queue="a")
        await in_status(b, TaskStatus.RUNNING, queue="a")
        await in_status(b, TaskStatus.SUCCEEDED, queue="b")
        zero = dict.fromkeys(ALL_STATUSES, 0)
        assert await b.queue_counts() == {
            "a": {**zero, TaskStatus.PENDING: 1, TaskStatus.RUNNING: 1},
            "b": {**zero, TaskStatus.SUCCEEDED: 1},
        }
        await b.purge()
        assert set(await b.queue_counts()) == {"a"}, "a queue holding no task is absent"

    # -- purge -------------------------------------------------------------------------------

    async def _one_of_each(self, b: Backend) -> dict[TaskStatus, str]:
        return {status: await in_status(b, status) for status in ALL_STATUSES}

    @backend_test
    async def test_purge_deletes_final_tasks_by_default(self, b: Backend, clock: FakeClock) -> None:
        ids = await self._one_of_each(b)
        assert await b.purge() == 4
        for status, task_id in ids.items():
            if status.is_final:
                assert await b.get_task(task_id) is None, f"{status} task survived purge()"
            else:
                assert await status_of(b, task_id) is status
        assert await b.purge() == 0

    @backend_test
    async def test_purge_named_statuses(self, b: Backend, clock: FakeClock) -> None:
        ids = await self._one_of_each(b)
        assert await b.purge([TaskStatus.FAILED, TaskStatus.CANCELLED]) == 2
        assert await b.get_task(ids[TaskStatus.FAILED]) is None
        assert await b.get_task(ids[TaskStatus.SUCCEEDED]) is not None
        assert await b.purge([]) == 0
        assert await b.purge([TaskStatus.PENDING]) == 1
        assert await b.get_task(ids[TaskStatus.PENDING]) is None

    @backend_test
    async def test_purge_spares_running_tasks_unless_asked(
        self, b: Backend, clock: FakeClock
    ) -> None:
        ids = await self._one_of_each(b)
        not_running = [s for s in ALL_STATUSES if s is not TaskStatus.RUNNING]
        assert await b.purge(not_running) == 5
        assert await status_of(b, ids[TaskStatus.RUNNING]) is TaskStatus.RUNNING
        assert await b.purge([TaskStatus.RUNNING]) == 1
        assert sum((await b.counts()).values()) == 0

    @backend_test
    async def test_purge_older_than(self, b: Backend, clock: FakeClock) -> None:
        now = clock()
        await enqueue(b, 3)
        tasks = await claim(b, 3)
        outcomes = [
            Outcome(t.id, t.lease_token or "", TaskStatus.SUCCEEDED, finished_at=now - age)
            for t, age in zip(tasks, (100, 50, 10), strict=True)
        ]
        assert await b.finish(outcomes) == [True, True, True]
        assert await b.purge(older_than=now - 30) == 2
        assert [await b.get_task(t.id) is not None for t in tasks] == [False, False, True]
        assert await b.purge(older_than=now - 30) == 0
        assert await b.purge(older_than=now) == 1

    @backend_test
    async def test_purge_frees_dedupe_keys(self, b: Backend, clock: FakeClock) -> None:
        await b.enqueue(make_record(dedupe_key="k"))
        assert await b.purge([TaskStatus.PENDING]) == 1
        fresh = make_record(dedupe_key="k")
        assert await b.enqueue(fresh) == fresh.id

    # -- wake-ups ----------------------------------------------------------------------------

    @backend_test
    async def test_wait_for_work_wakes_on_enqueue(self, b: Backend, clock: FakeClock) -> None:
        waiter = asyncio.ensure_future(b.wait_for_work(60))
        await woken(waiter, lambda: enqueue(b))

    @backend_test
    async def test_wait_for_work_wakes_on_retry(self, b: Backend, clock: FakeClock) -> None:
        """A task going back to pending is new work."""
        await enqueue(b, 20)
        tasks = iter(await claim(b, 20))

        async def retry_one() -> None:
            task = next(tasks)
            assert task.lease_token and await b.retry(task.id, task.lease_token, clock())

        waiter = asyncio.ensure_future(b.wait_for_work(60))
        await woken(waiter, retry_one)

    @backend_test
    async def test_wait_for_finish_wakes_on_finish(self, b: Backend, clock: FakeClock) -> None:
        await enqueue(b, 20)
        tasks = iter(await claim(b, 20))

        async def complete_one() -> None:
            task = next(tasks)
            assert task.lease_token and await b.complete(task.id, task.lease_token, None)

        waiter = asyncio.ensure_future(b.wait_for_finish(60))
        await woken(waiter, complete_one)

    @backend_test
    async def test_wake_ups_reach_other_event_loops(self, b: Backend, clock: FakeClock) -> None:
        started = threading.Event()

        async def wait_elsewhere(_: int) -> None:
            started.set()
            await b.wait_for_work(WAKE_BOUND * 3)

        waiter = asyncio.ensure_future(asyncio.to_thread(in_threads, 1, wait_elsewhere))
        assert await asyncio.to_thread(started.wait, WAKE_BOUND)
        await woken(waiter, lambda: enqueue(b))

    @backend_test
    async def test_waits_end_after_their_timeout(self, b: Backend, clock: FakeClock) -> None:
        await asyncio.wait_for(b.wait_for_work(0.05), WAKE_BOUND)
        await asyncio.wait_for(b.wait_for_finish(0.05), WAKE_BOUND)

    # -- the model ---------------------------------------------------------------------------

    def test_state_machine(self) -> None:
        """Random operation sequences agree with a pure-Python model of the queue."""
        run_backend_state_machine(self.make_backend, self.state_machine_settings)


__all__ = ["BackendConformance", "backend_test"]
