"""Conformance tests of control: ``cancel`` and ``requeue``."""

from __future__ import annotations

from ...backend import Backend
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


class ControlTests(KitBase):
    """Control: cancelling pending and running tasks, requeueing finished ones."""

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
            assert got.status is TaskStatus.PENDING and got.attempts == 0, (
                "Backend.requeue: the task is pending again, attempts reset to 0"
            )
            assert got.available_at == clock(), "Backend.requeue: due now (clock())"
            assert got.error is None and got.traceback is None and got.result is None, (
                "Backend.requeue clears result, error and traceback: the task runs as if new"
            )
            assert got.finished_at is None and got.lease_token is None, (
                "Backend.requeue clears finished_at and the lease"
            )
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
