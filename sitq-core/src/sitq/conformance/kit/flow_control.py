"""Conformance tests of the optional `Capability.FLOW_CONTROL` (`sitq.flow_control`): rate and
concurrency limits by key decided in the claim, no head-of-line blocking, fairness between
keys, paused queues, unique tasks over a period and chosen states, and the stored figures
``sitq limits`` shows.

Every test moves the kit's `FakeClock` by hand: token buckets refill only when it moves.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import pytest

from ...backend import Backend, Capability, Outcome, TaskRecord
from ...errors import ConfigurationError
from ...flow_control import LimitRule, LimitState
from ...task import TaskStatus
from ..clock import FakeClock
from ..records import make_record
from .support import (
    LEASE,
    KitBase,
    backend_test,
    claim,
    claim_one,
    ids_of,
    in_threads,
    requires,
    status_of,
    woken,
)


def limited(*keys: str, **fields: Any) -> TaskRecord:
    """A pending record holding the limit ``keys``; ``fields`` as `make_record`'s, plus
    ``unique_for`` and ``unique_states``."""
    unique = {k: fields.pop(k) for k in ("unique_for", "unique_states") if k in fields}
    return dataclasses.replace(make_record(**fields), limits=keys, **unique)


async def enqueue_limited(b: Backend, n: int, *keys: str, **fields: Any) -> list[str]:
    """Enqueue ``n`` records holding ``keys``; their ids in enqueue order."""
    return await b.enqueue_many([limited(*keys, **fields) for _ in range(n)])


async def _state(b: Backend, key: str) -> LimitState:
    found = {s.key: s for s in await b.limit_states()}
    assert key in found, f"limit_states() has no row for {key!r}: {sorted(found)}"
    return found[key]


async def _complete(b: Backend, record: TaskRecord) -> None:
    assert record.lease_token is not None
    assert await b.complete(record.id, record.lease_token, b"ok")


#: Each way a running task stops running, as (name, how): every one frees its slots.
_ENDINGS: list[tuple[str, Callable[[Backend, TaskRecord, FakeClock], Awaitable[object]]]] = [
    ("complete", lambda b, r, c: _complete(b, r)),
    ("fail", lambda b, r, c: b.fail(r.id, str(r.lease_token), "ValueError: boom")),
    ("dead", lambda b, r, c: b.finish([Outcome.dead(r.id, str(r.lease_token), "poison")])),
    ("retry", lambda b, r, c: b.retry(r.id, str(r.lease_token), c())),
    ("release", lambda b, r, c: b.release(r.id, str(r.lease_token))),
    ("cancel", lambda b, r, c: b.cancel(r.id)),
]


class FlowControlTests(KitBase):
    """Flow control: limits by key, paused queues and unique tasks, decided by the store."""

    @backend_test
    async def test_flow_control_is_declared_or_refused(self, b: Backend, clock: FakeClock) -> None:
        """A backend that does not declare the capability refuses with `ConfigurationError`
        (the queue then refuses ``queue.limit`` and ``pause``, naming the fix); one that does
        starts with no rule and no paused queue."""
        if b.supports(Capability.FLOW_CONTROL):
            assert await b.limits() == []
            assert await b.paused_queues() == set()
            assert await b.limit_states() == []
        else:
            with pytest.raises(ConfigurationError):
                await b.set_limits([LimitRule("stripe", rate=1.0)])
            with pytest.raises(ConfigurationError):
                await b.pause_queue("emails", True)

    @requires(Capability.FLOW_CONTROL)
    async def test_rules_are_stored_replaced_and_deleted(
        self, b: Backend, clock: FakeClock
    ) -> None:
        """`set_limits` replaces the rule of each pattern it gets and keeps the others;
        `delete_limits` counts the rules it removed; `limits` lists them by pattern."""
        stripe = LimitRule("stripe", rate=100.0, burst=20.0)
        tenants = LimitRule("tenant:*", concurrency=2)
        await b.set_limits([tenants, stripe])
        assert await b.limits() == [stripe, tenants]
        slower = LimitRule("stripe", rate=5.0, concurrency=3)
        await b.set_limits([slower])
        assert await b.limits() == [slower, tenants]
        assert await b.delete_limits(["stripe", "missing"]) == 1
        assert await b.limits() == [tenants]

    @requires(Capability.FLOW_CONTROL)
    async def test_concurrency_of_an_exact_key(self, b: Backend, clock: FakeClock) -> None:
        """At most ``concurrency`` running tasks hold a key; the others stay pending, and one
        is claimed as soon as a slot is free."""
        await b.set_limits([LimitRule("stripe", concurrency=2)])
        ids = await enqueue_limited(b, 3, "stripe")
        first = await claim(b, 10)
        assert ids_of(first) == ids[:2]
        assert await claim(b, 10) == [], "a third task holding 'stripe' ran beside two"
        assert await status_of(b, ids[2]) is TaskStatus.PENDING
        await _complete(b, first[0])
        assert ids_of(await claim(b, 10)) == [ids[2]]

    @requires(Capability.FLOW_CONTROL)
    async def test_concurrency_of_a_family_is_per_key(self, b: Backend, clock: FakeClock) -> None:
        """A family rule (``tenant:*``) limits each distinct key on its own."""
        await b.set_limits([LimitRule("tenant:*", concurrency=1)])
        one = await enqueue_limited(b, 2, "tenant:1")
        two = await enqueue_limited(b, 2, "tenant:2")
        assert sorted(ids_of(await claim(b, 10))) == sorted([one[0], two[0]])
        assert await claim(b, 10) == []

    @requires(Capability.FLOW_CONTROL)
    async def test_an_exact_rule_wins_over_its_family(self, b: Backend, clock: FakeClock) -> None:
        """`rule_for`: the exact pattern governs its key, the family the others."""
        await b.set_limits(
            [LimitRule("tenant:*", concurrency=1), LimitRule("tenant:big", concurrency=3)]
        )
        big = await enqueue_limited(b, 4, "tenant:big")
        small = await enqueue_limited(b, 2, "tenant:small")
        assert sorted(ids_of(await claim(b, 10))) == sorted([*big[:3], small[0]])

    @requires(Capability.FLOW_CONTROL)
    async def test_rate_with_burst(self, b: Backend, clock: FakeClock) -> None:
        """A key's bucket starts full (``burst`` tokens), a claim takes one token per task,
        and it refills at ``rate`` tokens a second up to ``burst``."""
        await b.set_limits([LimitRule("api", rate=2.0, burst=3.0)])
        await enqueue_limited(b, 12, "api")
        assert len(await claim(b, 10)) == 3, "a full bucket of 3 lets 3 tasks start at once"
        assert await claim(b, 10) == [], "an empty bucket let a task start"
        clock.advance(0.5)
        assert len(await claim(b, 10)) == 1, "half a second at 2/s adds one token"
        clock.advance(1.0)
        assert len(await claim(b, 10)) == 2
        clock.advance(3600.0)
        assert len(await claim(b, 10)) == 3, "a bucket never holds more than its burst"

    @requires(Capability.FLOW_CONTROL)
    async def test_every_key_of_a_task_must_admit_it(self, b: Backend, clock: FakeClock) -> None:
        """A task holding several keys is taken only when each has a slot and a token; a key
        that refuses it costs the others nothing (no token taken)."""
        await b.set_limits(
            [LimitRule("api", rate=1.0, burst=1.0), LimitRule("solo", concurrency=1)]
        )
        (solo,) = await enqueue_limited(b, 1, "solo")
        running = await claim_one(b)
        assert running.id == solo
        (both,) = await enqueue_limited(b, 1, "api", "solo")
        assert await claim(b, 10) == []
        assert (await _state(b, "api")).tokens == pytest.approx(1.0), "a refused claim took a token"
        await _complete(b, running)
        assert (await claim_one(b)).id == both
        assert (await _state(b, "api")).tokens == pytest.approx(0.0)

    @requires(Capability.FLOW_CONTROL)
    async def test_keys_without_a_rule_are_not_limited(self, b: Backend, clock: FakeClock) -> None:
        """A key no rule matches limits nothing."""
        await b.set_limits([LimitRule("tenant:*", concurrency=1)])
        ids = await enqueue_limited(b, 5, "free")
        assert sorted(ids_of(await claim(b, 10))) == sorted(ids)

    @requires(Capability.FLOW_CONTROL)
    async def test_a_blocked_task_does_not_block_others(self, b: Backend, clock: FakeClock) -> None:
        """No head-of-line blocking: tasks whose key is exhausted are skipped, and the claim
        takes tasks behind them (without keys, or with other keys), even of lower priority."""
        await b.set_limits([LimitRule("stripe", concurrency=1), LimitRule("other", concurrency=5)])
        await enqueue_limited(b, 1, "stripe", priority=9)
        await claim_one(b)
        await enqueue_limited(b, 20, "stripe", priority=9)
        (plain,) = await b.enqueue_many([make_record(priority=0)])
        (other,) = await enqueue_limited(b, 1, "other", priority=0)
        assert (await claim_one(b)).id in (plain, other), "a blocked head stopped the claim"
        assert len(await claim(b, 10)) == 1
        assert await claim(b, 10) == []

    @requires(Capability.FLOW_CONTROL)
    async def test_every_end_of_a_run_frees_its_slot(self, b: Backend, clock: FakeClock) -> None:
        """Finishing in every form, a retry, a release and a cancel of a running task give
        its concurrency slot back."""
        await b.set_limits([LimitRule("slot:*", concurrency=1)])
        for name, end in _ENDINGS:
            key = f"slot:{name}"
            first, second = await enqueue_limited(b, 2, key, queue=name)
            running = await claim_one(b, queues=[name])
            assert running.id == first
            assert await claim(b, 10, queues=[name]) == []
            await end(b, running, clock)
            got = await claim(b, 10, queues=[name])
            assert len(got) == 1, f"after {name} of a running task its slot stayed taken"
            assert got[0].id in (first, second)

    @requires(Capability.FLOW_CONTROL)
    async def test_recovering_an_expired_lease_frees_its_slot(
        self, b: Backend, clock: FakeClock
    ) -> None:
        """A running task whose lease lapsed, put back (or killed) by `recover_expired`, no
        longer holds its slot."""
        await b.set_limits([LimitRule("solo", concurrency=1)])
        ids = await enqueue_limited(b, 2, "solo")
        assert (await claim_one(b)).id == ids[0]
        clock.advance(LEASE + 1)
        assert await b.recover_expired(max_attempts=5) == [ids[0]]
        assert (await claim_one(b)).id in ids
        assert await claim(b, 10) == []

    @requires(Capability.FLOW_CONTROL)
    async def test_a_task_claimed_by_id_holds_its_slot(self, b: Backend, clock: FakeClock) -> None:
        """`claim_by_id` takes a task whatever its limits, but it counts while it runs."""
        await b.set_limits([LimitRule("solo", concurrency=1)])
        ids = await enqueue_limited(b, 2, "solo")
        running = await b.claim_by_id(ids[1], worker_id="w1", lease_seconds=LEASE)
        assert running is not None
        assert await claim(b, 10) == [], "a task claimed by id did not hold its slot"
        await _complete(b, running)
        assert ids_of(await claim(b, 10)) == [ids[0]]

    @requires(Capability.FLOW_CONTROL)
    async def test_racing_claimers_keep_the_limits(self, b: Backend, clock: FakeClock) -> None:
        """Claimers racing on coroutines and on threads with their own event loops take,
        together, no more than a key's concurrency and no more than its bucket holds."""
        await b.set_limits(
            [LimitRule("slots", concurrency=3), LimitRule("api", rate=1.0, burst=4.0)]
        )
        await enqueue_limited(b, 30, "slots")
        await enqueue_limited(b, 30, "api")

        async def race(i: int) -> list[TaskRecord]:
            return await claim(b, 5, worker=f"w{i}")

        gathered = await asyncio.gather(*(race(i) for i in range(4)))
        threaded = await asyncio.to_thread(in_threads, 4, race)
        claimed = [r for batch in [*gathered, *threaded] for r in batch]
        held = [key for r in claimed for key in r.limits]
        assert (held.count("slots"), held.count("api")) == (3, 4), (
            f"racing claimers took {held.count('slots')} tasks of concurrency 3 and "
            f"{held.count('api')} of a bucket of 4"
        )

    @requires(Capability.FLOW_CONTROL)
    async def test_keys_served_least_recently_come_first(
        self, b: Backend, clock: FakeClock
    ) -> None:
        """Fairness: a key with many tasks enqueued first does not make a later key wait;
        among tasks of equal priority, the key served least recently is claimed first."""
        await b.set_limits([LimitRule("tenant:*", concurrency=100)])
        busy = await enqueue_limited(b, 8, "tenant:busy")
        quiet = await enqueue_limited(b, 2, "tenant:quiet")
        order = []
        for _ in range(4):
            clock.advance(1.0)
            order.append((await claim_one(b)).id)
        assert set(quiet) <= set(order), (
            f"the quiet key's 2 tasks were not among the first 4 claims: busy {busy}, "
            f"quiet {quiet}, claimed {order}"
        )

    @requires(Capability.FLOW_CONTROL)
    async def test_a_paused_queue_is_not_claimed(self, b: Backend, clock: FakeClock) -> None:
        """No claim takes a task from a paused queue, asked for by name or not; other queues
        go on; enqueues are still stored; resumed, its tasks are claimed again."""
        await b.pause_queue("emails", True)
        assert await b.paused_queues() == {"emails"}
        (mail,) = await b.enqueue_many([make_record(queue="emails")])
        (other,) = await b.enqueue_many([make_record(queue="default")])
        assert ids_of(await claim(b, 10)) == [other]
        assert await claim(b, 10, queues=["emails"]) == []
        assert await status_of(b, mail) is TaskStatus.PENDING
        await b.pause_queue("emails", False)
        assert await b.paused_queues() == set()
        assert ids_of(await claim(b, 10)) == [mail]

    @requires(Capability.FLOW_CONTROL)
    async def test_resuming_wakes_waiting_workers(self, b: Backend, clock: FakeClock) -> None:
        """`pause_queue(queue, False)` fires `notify_enqueued`: its tasks are work again."""
        await b.pause_queue("emails", True)
        await b.enqueue_many([make_record(queue="emails")])
        waiter = asyncio.ensure_future(b.wait_for_work(60))
        await woken(waiter, lambda: b.pause_queue("emails", False))

    @requires(Capability.FLOW_CONTROL)
    async def test_unique_for_a_period(self, b: Backend, clock: FakeClock) -> None:
        """Inside ``unique_for`` of a stored task with the same key (created at or after
        ``clock() - unique_for``) an enqueue returns the stored id; after it, a new task."""

        def job() -> TaskRecord:
            return limited(dedupe_key="report", unique_for=60.0, created_at=clock())

        original = job()
        assert await b.enqueue_many([original]) == [original.id]
        clock.advance(59.0)
        duplicate = job()
        assert await b.enqueue_many([duplicate]) == [original.id]
        assert await b.get_task(duplicate.id) is None, "a refused duplicate was stored"
        clock.advance(2.0)
        later = job()
        assert await b.enqueue_many([later]) == [later.id], "a task past the period was refused"
        assert await b.enqueue_many([job()]) == [later.id]
        twins = [job(), job()]
        assert await b.enqueue_many(twins) == [later.id, later.id]
        clock.advance(61.0)
        twins = [job(), job()]
        assert await b.enqueue_many(twins) == [twins[0].id] * 2, "a batch sees its own records"

    @requires(Capability.FLOW_CONTROL)
    async def test_unique_states_choose_the_duplicates(self, b: Backend, clock: FakeClock) -> None:
        """``unique_states`` of the enqueued record decide which stored tasks count: with
        ``succeeded`` in them a finished task still refuses its duplicate; with only
        ``pending``, a running one does not."""
        finished = {TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.SUCCEEDED}

        def job(key: str, states: Iterable[TaskStatus]) -> TaskRecord:
            return limited(dedupe_key=key, unique_states=frozenset(states), created_at=clock())

        done = job("done", finished)
        await b.enqueue_many([done])
        await _complete(b, await claim_one(b))
        assert await b.enqueue_many([job("done", finished)]) == [done.id]
        again = make_record(dedupe_key="done")
        assert await b.enqueue_many([again]) == [again.id], "the default states hold succeeded"

        running = job("run", {TaskStatus.PENDING})
        await b.enqueue_many([running])
        await claim(b, 10)
        fresh = job("run", {TaskStatus.PENDING})
        assert await b.enqueue_many([fresh]) == [fresh.id]
        assert await b.enqueue_many([job("run", {TaskStatus.PENDING})]) == [fresh.id]

    @requires(Capability.FLOW_CONTROL)
    async def test_limit_states(self, b: Backend, clock: FakeClock) -> None:
        """`limit_states`: each key seen under a rule with its tokens now, running and
        waiting tasks, by key; a family with no key yet shows its pattern."""
        stripe = LimitRule("stripe", rate=10.0, burst=5.0, concurrency=3)
        tenants = LimitRule("tenant:*", concurrency=2)
        idle = LimitRule("idle:*", concurrency=1)
        await b.set_limits([stripe, tenants, idle])
        await enqueue_limited(b, 2, "stripe")
        await enqueue_limited(b, 3, "tenant:1")
        assert len(await claim(b, 10)) == 4
        states = await b.limit_states()
        assert [s.key for s in states] == ["idle:*", "stripe", "tenant:1"]
        assert states[0] == LimitState("idle:*", idle, None, 0, 0)
        assert (states[1].rule, states[1].running, states[1].waiting) == (stripe, 2, 0)
        assert states[1].tokens == pytest.approx(3.0)
        assert states[2] == LimitState("tenant:1", tenants, None, 2, 1)
        clock.advance(0.125)
        assert (await _state(b, "stripe")).tokens == pytest.approx(4.25), "tokens read now"


__all__ = ["FlowControlTests", "enqueue_limited", "limited"]
