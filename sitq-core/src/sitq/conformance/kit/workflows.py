"""Conformance tests of the optional `Capability.WORKFLOWS`: tasks that wait for parents,
exact joins decided in the transaction that ends the last parent, failure cascades, requeues
that resume, cancelling a workflow and reading its state (`sitq.workflow_state`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from ...backend import Backend, Capability, Outcome, TaskRecord
from ...errors import ConfigurationError
from ...task import TaskStatus
from ...workflow_state import cancelled_for_parent, parent_failed_error
from ..clock import FakeClock
from ..records import make_record
from .support import (
    LEASE,
    KitBase,
    backend_test,
    claim,
    claim_one,
    in_threads,
    requires,
    status_of,
    stored,
    woken,
)

W = TaskStatus.WAITING
P = TaskStatus.PENDING
C = TaskStatus.CANCELLED


def member(*parents: TaskRecord | str, wf: str | None = "wf", **fields: object) -> TaskRecord:
    """A record of workflow ``wf`` waiting for ``parents`` (records or ids)."""
    ids = [p if isinstance(p, str) else p.id for p in parents]
    return make_record(workflow_id=wf, parents=ids, **fields)  # type: ignore[arg-type]


async def statuses(b: Backend, *records: TaskRecord | str) -> list[TaskStatus]:
    """The stored status of each of ``records``."""
    return [await status_of(b, r if isinstance(r, str) else r.id) for r in records]


async def run(b: Backend, record: TaskRecord, status: TaskStatus = TaskStatus.SUCCEEDED) -> None:
    """Claim ``record`` by id and end it with ``status`` (succeeded, failed or dead)."""
    claimed = await b.claim_by_id(record.id, worker_id="w1", lease_seconds=LEASE)
    assert claimed is not None and claimed.lease_token, f"{record.id} could not be claimed"
    await finish(b, [claimed], status)


async def finish(b: Backend, claimed: Sequence[TaskRecord], status: TaskStatus) -> None:
    """End every one of the ``claimed`` records with ``status``, in one `finish`."""
    outcomes = []
    for r in claimed:
        assert r.lease_token is not None
        if status is TaskStatus.SUCCEEDED:
            outcomes.append(Outcome.succeeded(r.id, r.lease_token, b"1"))
        elif status is TaskStatus.FAILED:
            outcomes.append(Outcome.failed(r.id, r.lease_token, "ValueError: boom"))
        else:
            outcomes.append(Outcome.dead(r.id, r.lease_token, "cannot decode"))
    assert all(await b.finish(outcomes)), "an outcome of a claimed task was refused"


class WorkflowTests(KitBase):
    """Workflows: the store releases each child exactly once, when its last parent ends."""

    @backend_test
    async def test_workflows_are_declared_or_refused(self, b: Backend, clock: FakeClock) -> None:
        """A backend without the capability refuses the workflow methods with
        `ConfigurationError` (queues then refuse workflows, naming the fix)."""
        if b.supports(Capability.WORKFLOWS):
            assert await b.workflow_tasks("unknown") == []
            assert await b.workflows() == []
        else:
            with pytest.raises(ConfigurationError):
                await b.workflow_tasks("wf")

    @backend_test
    async def test_get_results_reads_many_at_once(self, b: Backend, clock: FakeClock) -> None:
        """`get_results` gives what `get_result` gives for each id, in order: the finished
        record (result included), None for a task not finished or unknown."""
        ok, bad, pending = make_record(), make_record(), make_record()
        await b.enqueue_many([ok, bad, pending])
        await run(b, ok)
        await run(b, bad, TaskStatus.FAILED)
        got = await b.get_results([pending.id, ok.id, "no-such-task", bad.id, ok.id])
        assert got[0] is None and got[2] is None
        assert got[1] is not None and got[1].id == ok.id and got[1].result == b"1"
        assert got[3] is not None and got[3].status is TaskStatus.FAILED
        assert got[4] is not None and got[4].id == ok.id
        assert await b.get_results([]) == []

    @requires(Capability.WORKFLOWS)
    async def test_a_chain_runs_in_order(self, b: Backend, clock: FakeClock) -> None:
        """Members with parents are stored waiting: never claimed, counted and listed as
        waiting; each one becomes pending, due at once (``available_at`` is the clock of
        the finish), when its parent succeeds."""
        a = member()
        b1 = member(a, meta={"sitq.pass_results": "first"})
        c = member(b1, meta={"sitq.pass_results": "first"})
        assert await b.enqueue_many([a, b1, c]) == [a.id, b1.id, c.id]
        assert await statuses(b, a, b1, c) == [P, W, W]
        assert (await b.counts())[W] == 2
        waiting = await b.list_tasks(statuses=[W])
        assert [r.id for r in waiting] == [b1.id, c.id]
        assert await b.claim_by_id(b1.id, worker_id="w1", lease_seconds=LEASE) is None
        first = await claim(b, 10)
        assert [r.id for r in first] == [a.id], "a waiting task was claimed"
        clock.advance(5)
        await finish(b, first, TaskStatus.SUCCEEDED)
        assert await statuses(b, b1, c) == [P, W]
        released = await stored(b, b1.id)
        assert released.available_at == clock(), "a released child is due at once"
        second = await claim(b, 10)
        assert [r.id for r in second] == [b1.id]
        await finish(b, second, TaskStatus.SUCCEEDED)
        assert [r.id for r in await claim(b, 10)] == [c.id]

    @requires(Capability.WORKFLOWS)
    async def test_waiting_tasks_are_kept(self, b: Backend, clock: FakeClock) -> None:
        """`purge` (by default), `prune` and `expire_results` never touch a waiting task,
        however old; a waiting task's dedupe key is held."""
        a = member()
        child = member(a, dedupe_key="k", created_at=clock() - 1e6)
        await b.enqueue_many([a, child])
        assert await b.purge() == 0
        if b.supports(Capability.PRUNE):
            assert await b.prune(4e9, 100) == 0
        if b.supports(Capability.EXPIRE_RESULTS):
            assert await b.expire_results(4e9) == 0
        duplicate = make_record(dedupe_key="k")
        assert await b.enqueue_many([duplicate]) == [child.id]
        assert (await stored(b, child.id)).payload == child.payload

    @requires(Capability.WORKFLOWS)
    async def test_a_released_child_wakes_workers(self, b: Backend, clock: FakeClock) -> None:
        """A child becoming pending is new work: `wait_for_work` returns (the finish that
        released it fires `notify_enqueued`)."""
        parents = [member() for _ in range(20)]
        await b.enqueue_many([*parents, *(member(p) for p in parents)])
        claimed = iter(await claim(b, 20))

        async def release_one() -> None:
            await finish(b, [next(claimed)], TaskStatus.SUCCEEDED)

        waiter = asyncio.ensure_future(b.wait_for_work(60))
        await woken(waiter, release_one)

    @requires(Capability.WORKFLOWS)
    async def test_fields_are_stored_and_read_back(self, b: Backend, clock: FakeClock) -> None:
        """``parents`` (in order), ``workflow_id`` and ``allow_failure`` round-trip;
        `workflow_tasks` lists the members in enqueue order."""
        a, z = member(), member()
        child = member(z, a, allow_failure=True)
        other = member(wf="other")
        await b.enqueue_many([a, z, child, other])
        got = await stored(b, child.id)
        assert got.parents == (z.id, a.id)
        assert got.workflow_id == "wf" and got.allow_failure
        assert (await stored(b, a.id)).parents == ()
        assert [r.id for r in await b.workflow_tasks("wf")] == [a.id, z.id, child.id]
        assert [r.id for r in await b.workflow_tasks("other")] == [other.id]

    @requires(Capability.WORKFLOWS)
    async def test_a_group_joins_exactly_once(self, b: Backend, clock: FakeClock) -> None:
        """A callback waiting for five parents stays waiting until the fifth succeeds, then is
        pending in the same `finish`, and is claimed once."""
        parents = [member() for _ in range(5)]
        join = member(*parents, meta={"sitq.pass_results": "list"})
        await b.enqueue_many([*parents, join])
        claimed = await claim(b, 10)
        assert {r.id for r in claimed} == {p.id for p in parents}
        for record in claimed[:4]:
            await finish(b, [record], TaskStatus.SUCCEEDED)
            assert await status_of(b, join.id) is W, "released before its last parent ended"
        await finish(b, claimed[4:], TaskStatus.SUCCEEDED)
        assert await status_of(b, join.id) is P
        assert [r.id for r in await claim(b, 10)] == [join.id]
        assert await claim(b, 10) == []

    @requires(Capability.WORKFLOWS)
    async def test_racing_finishes_release_the_join_once(
        self, b: Backend, clock: FakeClock
    ) -> None:
        """Parents finished at once from many coroutines and threads (each on its own
        loop): the join is released exactly once, whichever finish is last."""
        parents = [member() for _ in range(24)]
        join = member(*parents)
        await b.enqueue_many([*parents, join])
        claimed = await claim(b, 24)
        assert len(claimed) == 24
        by_coroutine, by_thread = claimed[:12], claimed[12:]
        await asyncio.gather(*(finish(b, [r], TaskStatus.SUCCEEDED) for r in by_coroutine[:6]))

        async def finish_in_thread(i: int) -> None:
            await finish(b, [by_thread[i]], TaskStatus.SUCCEEDED)

        await asyncio.gather(
            *(finish(b, [r], TaskStatus.SUCCEEDED) for r in by_coroutine[6:]),
            asyncio.to_thread(in_threads, len(by_thread), finish_in_thread),
        )
        assert await status_of(b, join.id) is P
        assert [r.id for r in await claim(b, 10)] == [join.id]
        assert await claim(b, 10) == []

    @requires(Capability.WORKFLOWS)
    async def test_a_retry_or_release_keeps_children_waiting(
        self, b: Backend, clock: FakeClock
    ) -> None:
        """Only a final outcome ends a parent: a retry or a release leaves its child
        waiting."""
        a = member()
        child = member(a)
        await b.enqueue_many([a, child])
        got = await claim_one(b)
        assert got.lease_token
        assert await b.retry(a.id, got.lease_token, clock(), "ValueError: again")
        assert await status_of(b, child.id) is W
        got = await claim_one(b)
        assert got.lease_token and await b.release(a.id, got.lease_token)
        assert await status_of(b, child.id) is W
        await run(b, a)
        assert await status_of(b, child.id) is P

    @requires(Capability.WORKFLOWS)
    async def test_a_failure_cancels_exactly_its_descendants(
        self, b: Backend, clock: FakeClock
    ) -> None:
        """A parent that fails cancels its children at once (even with another parent still
        running), and theirs, each with the reason naming the parent that did not succeed;
        a child with ``allow_failure``, and tasks outside the failed branch, go on."""
        a, other, aside = member(), member(), member()
        child = member(a, other)
        grandchild = member(child)
        tolerant = member(a, allow_failure=True)
        after_aside = member(aside)
        await b.enqueue_many([a, other, aside, child, grandchild, tolerant, after_aside])
        await run(b, a, TaskStatus.FAILED)
        assert await statuses(b, child, grandchild, tolerant, other, aside, after_aside) == [
            C,
            C,
            P,
            P,
            P,
            W,
        ]
        got = await stored(b, child.id)
        assert got.error == parent_failed_error(a.id, TaskStatus.FAILED)
        assert got.finished_at is not None and cancelled_for_parent(got.error)
        assert (await stored(b, grandchild.id)).error == parent_failed_error(
            child.id, TaskStatus.CANCELLED
        )
        await run(b, other)
        assert await status_of(b, child.id) is C, "a cancelled child ran after all"

    @requires(Capability.WORKFLOWS)
    async def test_allow_failure_waits_for_every_parent(self, b: Backend, clock: FakeClock) -> None:
        """A child with ``allow_failure`` becomes pending once every parent ended, whether
        it succeeded, failed, went dead or was cancelled."""
        ok, bad, dead, gone = member(), member(), member(), member()
        child = member(ok, bad, dead, gone, allow_failure=True)
        await b.enqueue_many([ok, bad, dead, gone, child])
        await run(b, bad, TaskStatus.FAILED)
        await run(b, dead, TaskStatus.DEAD)
        assert await b.cancel(gone.id)
        assert await status_of(b, child.id) is W
        await run(b, ok)
        assert await status_of(b, child.id) is P

    @requires(Capability.WORKFLOWS)
    async def test_cancel_of_a_waiting_task(self, b: Backend, clock: FakeClock) -> None:
        """`cancel` cancels a waiting task, and its children with it."""
        a = member()
        child = member(a)
        grandchild = member(child)
        await b.enqueue_many([a, child, grandchild])
        assert await b.cancel(child.id)
        assert await statuses(b, a, child, grandchild) == [P, C, C]
        assert not await b.cancel(child.id)
        await run(b, a)
        assert await statuses(b, child, grandchild) == [C, C]

    @requires(Capability.WORKFLOWS)
    async def test_cancel_workflow(self, b: Backend, clock: FakeClock) -> None:
        """`cancel_workflow` cancels every waiting, pending and running member as `cancel`
        does (a running one loses its lease; none gets a parent's reason), leaves ended
        members and other workflows alone, and says how many it cancelled."""
        done, running, pending = member(), member(), member()
        waiting = member(running)
        outsider = member(wf="other")
        await b.enqueue_many([done, running, pending, waiting, outsider])
        await run(b, done)
        claimed = await b.claim_by_id(running.id, worker_id="w1", lease_seconds=LEASE)
        assert claimed is not None and claimed.lease_token
        assert await b.cancel_workflow("wf") == 3
        assert await statuses(b, done, running, pending, waiting, outsider) == [
            TaskStatus.SUCCEEDED,
            C,
            C,
            C,
            P,
        ]
        assert await b.extend_leases({running.id: claimed.lease_token}, LEASE) == set()
        assert not await b.complete(running.id, claimed.lease_token, b"late")
        assert not cancelled_for_parent((await stored(b, waiting.id)).error), (
            "a member cancelled with its workflow has no parent's reason (a requeue of its "
            "parent must not resume it)"
        )
        assert await b.requeue(running.id)
        assert await status_of(b, waiting.id) is C
        assert await b.cancel_workflow("wf") == 1
        assert await b.cancel_workflow("unknown") == 0

    @requires(Capability.WORKFLOWS)
    async def test_requeue_of_a_failed_member_resumes(self, b: Backend, clock: FakeClock) -> None:
        """Requeueing the failed parent takes the descendants cancelled for it back to
        waiting; they then run as if nothing had failed."""
        a = member()
        child = member(a)
        grandchild = member(child)
        await b.enqueue_many([a, child, grandchild])
        await run(b, a, TaskStatus.FAILED)
        assert await statuses(b, child, grandchild) == [C, C]
        assert await b.requeue(a.id)
        assert await statuses(b, a, child, grandchild) == [P, W, W]
        resumed = await stored(b, child.id)
        assert resumed.error is None and resumed.finished_at is None
        await run(b, a)
        assert await statuses(b, child, grandchild) == [P, W]
        await run(b, child)
        assert await status_of(b, grandchild.id) is P

    @requires(Capability.WORKFLOWS)
    async def test_requeue_resumes_only_what_it_cancelled(
        self, b: Backend, clock: FakeClock
    ) -> None:
        """A child cancelled by hand stays cancelled when its parent is requeued; one whose
        other parent failed too stays cancelled, its reason naming that other parent; a
        waiting ``allow_failure`` child waits for the requeued parent again."""
        a, b2 = member(), member()
        by_hand = member(a)
        two_failed = member(a, b2)
        tolerant = member(a, b2, allow_failure=True)
        await b.enqueue_many([a, b2, by_hand, two_failed, tolerant])
        assert await b.cancel(by_hand.id)
        await run(b, a, TaskStatus.FAILED)
        await run(b, b2, TaskStatus.FAILED)
        assert await status_of(b, tolerant.id) is P
        assert await b.requeue(a.id)
        assert await statuses(b, by_hand, two_failed) == [C, C]
        assert (await stored(b, two_failed.id)).error == parent_failed_error(
            b2.id, TaskStatus.FAILED
        )
        assert await status_of(b, tolerant.id) is P, "a released child stays released"

    @requires(Capability.WORKFLOWS)
    async def test_a_requeued_parent_is_waited_for_again(
        self, b: Backend, clock: FakeClock
    ) -> None:
        """An ``allow_failure`` child still waiting on another parent counts a requeued
        parent as not ended again."""
        a, slow = member(), member()
        tolerant = member(a, slow, allow_failure=True)
        await b.enqueue_many([a, slow, tolerant])
        await run(b, a, TaskStatus.FAILED)
        assert await b.requeue(a.id)
        await run(b, slow)
        assert await status_of(b, tolerant.id) is W, "released while a parent runs again"
        await run(b, a)
        assert await status_of(b, tolerant.id) is P

    @requires(Capability.WORKFLOWS)
    async def test_parents_stored_earlier(self, b: Backend, clock: FakeClock) -> None:
        """A parent may be stored by an earlier enqueue: still running (the child waits),
        succeeded (the child is pending at once), failed (the child is cancelled at once,
        or pending with ``allow_failure``)."""
        running, ok, bad = member(), member(), member()
        await b.enqueue_many([running, ok, bad])
        await run(b, ok)
        await run(b, bad, TaskStatus.FAILED)
        waits, goes, cancelled = member(running), member(ok), member(ok, bad)
        tolerant = member(bad, allow_failure=True)
        await b.enqueue_many([waits, goes, cancelled, tolerant])
        assert await statuses(b, waits, goes, cancelled, tolerant) == [W, P, C, P]
        got = await stored(b, cancelled.id)
        assert got.error == parent_failed_error(bad.id, TaskStatus.FAILED)
        assert got.finished_at is not None
        assert {r.id for r in await claim(b, 10)} == {running.id, goes.id, tolerant.id}

    @requires(Capability.WORKFLOWS)
    async def test_an_unknown_parent_is_refused(self, b: Backend, clock: FakeClock) -> None:
        """A parent neither stored nor earlier in the batch is a `ConfigurationError`, and
        nothing of the batch is stored."""
        a = member()
        orphan = member("no-such-task")
        with pytest.raises(ConfigurationError):
            await b.enqueue_many([a, orphan])
        assert await b.get_task(a.id) is None, "part of a refused batch was stored"
        later = member()
        early_child = member(later)
        with pytest.raises(ConfigurationError):
            await b.enqueue_many([early_child, later])
        assert sum((await b.counts()).values()) == 0

    @requires(Capability.WORKFLOWS)
    async def test_a_parent_gone_dead_by_recovery_cascades(
        self, b: Backend, clock: FakeClock
    ) -> None:
        """`recover_expired` turning a parent dead (its worker lost too often) cancels its
        children in the same transaction; a recovered parent (back to pending) does not."""
        a = member()
        child = member(a)
        tolerant = member(a, allow_failure=True)
        await b.enqueue_many([a, child, tolerant])
        await claim_one(b)
        clock.advance(LEASE + 1)
        assert await b.recover_expired(max_attempts=5) == [a.id]
        assert await statuses(b, child, tolerant) == [W, W]
        await claim_one(b)
        clock.advance(LEASE + 1)
        assert await b.recover_expired(max_attempts=2) == []
        assert await statuses(b, a, child, tolerant) == [TaskStatus.DEAD, C, P]
        assert (await stored(b, child.id)).error == parent_failed_error(a.id, TaskStatus.DEAD)

    @requires(Capability.WORKFLOWS)
    async def test_a_big_group_joins_in_one_batch(self, b: Backend, clock: FakeClock) -> None:
        """10,000 members and their callback are stored by one `enqueue_many` and joined by
        `finish` calls of a thousand outcomes each: the callback is released by the last
        one, exactly once."""
        size = 10_000
        parents = [member() for _ in range(size)]
        join = member(*parents, meta={"sitq.pass_results": "list"})
        await b.enqueue_many([*parents, join])
        assert (await stored(b, join.id)).parents == tuple(p.id for p in parents)
        for _ in range(size // 1000):
            assert await status_of(b, join.id) is W
            batch = await claim(b, 1000)
            assert len(batch) == 1000 and join.id not in {r.id for r in batch}
            await finish(b, batch, TaskStatus.SUCCEEDED)
        assert await status_of(b, join.id) is P
        assert [r.id for r in await claim(b, 10)] == [join.id]

    @requires(Capability.WORKFLOWS)
    async def test_workflow_summaries(self, b: Backend, clock: FakeClock) -> None:
        """`workflows` lists the newest workflows first (by their first member's
        ``created_at``, then enqueue order) with their members' counts;
        ``active_only`` leaves out those whose members have all ended."""
        first = [member(wf="first", created_at=clock()) for _ in range(2)]
        await b.enqueue_many(first)
        clock.advance(1)
        second = [member(wf="second", created_at=clock())]
        second.append(member(second[0], wf="second", created_at=clock()))
        await b.enqueue_many(second)
        found = await b.workflows()
        assert [s.id for s in found] == ["second", "first"]
        newest = found[0]
        assert newest.total == 2 and newest.done == 0 and newest.finished_at is None
        assert newest.counts.get(P) == 1 and newest.counts.get(W) == 1
        assert newest.created_at == clock()
        for record in first:
            await run(b, record)
        clock.advance(1)
        await run(b, second[0], TaskStatus.FAILED)
        summary = {s.id: s for s in await b.workflows()}
        assert summary["first"].done == 2 and summary["first"].finished_at is not None
        assert summary["first"].counts.get(TaskStatus.SUCCEEDED) == 2
        assert summary["second"].counts.get(C) == 1 and summary["second"].done == 2
        await b.enqueue_many([member(wf="third", created_at=clock())])
        assert [s.id for s in await b.workflows(active_only=True)] == ["third"]
        assert [s.id for s in await b.workflows(limit=1)] == ["third"]


__all__ = ["WorkflowTests"]
