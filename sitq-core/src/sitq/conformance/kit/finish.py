"""Conformance tests of finishing: every kind of outcome, and fencing by lease token."""

from __future__ import annotations

from ...backend import Backend, Outcome
from ...task import TaskStatus
from ..clock import FakeClock
from .support import (
    LEASE,
    KitBase,
    backend_test,
    claim,
    claim_one,
    enqueue,
    ids_of,
    status_of,
    stored,
)


class FinishTests(KitBase):
    """Finish: outcomes stored, fenced by the lease token."""

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
