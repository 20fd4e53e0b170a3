"""Conformance tests of the optional `Capability.PRUNE` (``retention``): which tasks go, the
limit, per-status cutoffs, and pruners running at once."""

from __future__ import annotations

import asyncio

import pytest

from ...backend import Backend, Capability, Outcome
from ...errors import ConfigurationError
from ...task import TaskStatus
from ..clock import FakeClock
from ..records import make_record
from .support import (
    LONE_STATUSES,
    KitBase,
    backend_test,
    claim,
    enqueue,
    in_status,
    requires,
    status_of,
    stored,
)


async def _finished_at(b: Backend, ages: list[float], now: float) -> list[str]:
    """Tasks that succeeded ``age`` seconds before ``now``, one per age."""
    await enqueue(b, len(ages))
    tasks = await claim(b, len(ages))
    outcomes = [
        Outcome(t.id, t.lease_token or "", TaskStatus.SUCCEEDED, finished_at=now - age)
        for t, age in zip(tasks, ages, strict=True)
    ]
    assert await b.finish(outcomes) == [True] * len(ages)
    return [t.id for t in tasks]


async def _just_after(b: Backend, *task_ids: str) -> float:
    """A cutoff just after the latest ``finished_at`` of these finished tasks (a worker's
    outcome carries its own finish time, so it need not follow the backend's clock)."""
    times = [(await stored(b, task_id)).finished_at for task_id in task_ids]
    assert all(t is not None for t in times), "a finished task has no finished_at"
    return max(t for t in times if t is not None) + 1


class PruneTests(KitBase):
    """Pruning: old finished tasks go in bounded batches; nothing else is touched."""

    @backend_test
    async def test_prune_is_declared_or_refused(self, b: Backend, clock: FakeClock) -> None:
        """A backend that does not declare the capability refuses with `ConfigurationError`
        (workers then keep every task)."""
        if b.supports(Capability.PRUNE):
            assert await b.prune(-1.0, 10) == 0
        else:
            with pytest.raises(ConfigurationError):
                await b.prune(-1.0, 10)

    @requires(Capability.PRUNE)
    async def test_prune_deletes_only_old_finished_tasks(
        self, b: Backend, clock: FakeClock
    ) -> None:
        """Every final status goes once its cutoff has passed; pending and running tasks
        never do, however old."""
        ids = {status: await in_status(b, status) for status in LONE_STATUSES}
        final = [task_id for status, task_id in ids.items() if status.is_final]
        earliest = min([(await stored(b, task_id)).finished_at or 0.0 for task_id in final])
        assert await b.prune(earliest, 100) == 0, "nothing finished before the cutoff"
        assert await b.prune(await _just_after(b, *final), 100) == 4
        for status, task_id in ids.items():
            if status.is_final:
                assert await b.get_task(task_id) is None, f"{status} task survived prune"
            else:
                assert await status_of(b, task_id) is status
        assert await b.prune(4e9, 100) == 0, "pending and running tasks stay"

    @requires(Capability.PRUNE)
    async def test_prune_takes_a_cutoff_per_status(self, b: Backend, clock: FakeClock) -> None:
        """A status left out of the mapping is kept; each status has its own cutoff."""
        ids = {s: await in_status(b, s) for s in LONE_STATUSES if s.is_final}
        after = {s: await _just_after(b, task_id) for s, task_id in ids.items()}
        kept = {TaskStatus.FAILED: after[TaskStatus.FAILED] - 2, TaskStatus.SUCCEEDED: 4e9}
        assert await b.prune(kept, 100) == 1
        assert await b.get_task(ids[TaskStatus.SUCCEEDED]) is None
        for status in (TaskStatus.FAILED, TaskStatus.DEAD, TaskStatus.CANCELLED):
            assert await status_of(b, ids[status]) is status
        both = {s: after[s] for s in (TaskStatus.DEAD, TaskStatus.CANCELLED)}
        assert await b.prune(both, 100) == 2
        assert await status_of(b, ids[TaskStatus.FAILED]) is TaskStatus.FAILED

    @requires(Capability.PRUNE)
    async def test_prune_respects_the_limit(self, b: Backend, clock: FakeClock) -> None:
        """At most ``limit`` tasks per call, across statuses; repeated calls finish the job."""
        now = clock()
        finished = await _finished_at(b, [100.0] * 7, now)
        failed = await in_status(b, TaskStatus.FAILED)
        cutoff = {TaskStatus.SUCCEEDED: now, TaskStatus.FAILED: await _just_after(b, failed)}
        assert await b.prune(cutoff, 3) == 3
        assert await b.prune(cutoff, 3) == 3
        assert await b.prune(cutoff, 3) == 2
        assert await b.prune(cutoff, 3) == 0
        assert all([await b.get_task(i) is None for i in [*finished, failed]])

    @requires(Capability.PRUNE)
    async def test_prune_cutoff_is_strict(self, b: Backend, clock: FakeClock) -> None:
        """``finished_at < cutoff``: a task finished exactly at the cutoff stays."""
        now = clock()
        older, at, newer = await _finished_at(b, [20.0, 10.0, 5.0], now)
        assert await b.prune(now - 10, 100) == 1
        assert await b.get_task(older) is None
        assert (await stored(b, at)).status is TaskStatus.SUCCEEDED
        assert (await stored(b, newer)).status is TaskStatus.SUCCEEDED

    @requires(Capability.PRUNE)
    async def test_pruners_at_once_delete_each_task_once(
        self, b: Backend, clock: FakeClock
    ) -> None:
        """Several pruners at once (one per worker) neither fail nor count a task twice."""
        now = clock()
        await _finished_at(b, [100.0] * 60, now)
        (pending,) = await enqueue(b)

        async def pruner() -> int:
            deleted = 0
            while count := await b.prune(now - 50, 7):
                deleted += count
            return deleted

        assert sum(await asyncio.gather(*(pruner() for _ in range(5)))) == 60
        assert (await b.counts())[TaskStatus.SUCCEEDED] == 0
        assert await status_of(b, pending) is TaskStatus.PENDING

    @requires(Capability.PRUNE)
    async def test_prune_takes_tombstones(self, b: Backend, clock: FakeClock) -> None:
        """A task whose results expired goes like any finished task."""
        task_id = await in_status(b, TaskStatus.SUCCEEDED)
        cutoff = await _just_after(b, task_id)
        if b.supports(Capability.EXPIRE_RESULTS):
            assert await b.expire_results(cutoff) == 1
        assert await b.prune(cutoff, 10) == 1
        assert await b.get_task(task_id) is None

    @requires(Capability.PRUNE)
    async def test_prune_leaves_a_reused_dedupe_key_alone(
        self, b: Backend, clock: FakeClock
    ) -> None:
        """Pruning the finished holder of a dedupe key leaves the active task that holds the
        key now untouched, and the key still taken by it."""
        old = await in_status(b, TaskStatus.SUCCEEDED, dedupe_key="k")
        fresh = make_record(dedupe_key="k")
        assert await b.enqueue(fresh) == fresh.id
        assert await b.prune(await _just_after(b, old), 10) == 1
        assert await b.get_task(old) is None
        assert await status_of(b, fresh.id) is TaskStatus.PENDING
        assert await b.enqueue(make_record(dedupe_key="k")) == fresh.id

    @requires(Capability.PRUNE)
    async def test_prune_refuses_bad_arguments(self, b: Backend, clock: FakeClock) -> None:
        """Active statuses, a limit < 1 and a cutoff that is not a finite number are
        `ConfigurationError`s, and nothing is deleted."""
        task_id = await in_status(b, TaskStatus.SUCCEEDED)
        after = await _just_after(b, task_id)
        wrong: list[tuple[object, object]] = [
            ({TaskStatus.PENDING: after}, 10),
            ({TaskStatus.RUNNING: after}, 10),
            ({"finished": after}, 10),
            (after, 0),
            (after, True),
            (float("nan"), 10),
            ({TaskStatus.SUCCEEDED: "yesterday"}, 10),
        ]
        for finished_before, limit in wrong:
            with pytest.raises(ConfigurationError):
                await b.prune(finished_before, limit)  # type: ignore[arg-type]
        assert await status_of(b, task_id) is TaskStatus.SUCCEEDED
        assert await b.prune({"succeeded": after}, 10) == 1  # type: ignore[dict-item]

    @requires(Capability.PRUNE)
    async def test_prune_reclaims_space_after(self, b: Backend, clock: FakeClock) -> None:
        """`Backend.reclaim_space` may be called at any time, quick or full, and loses
        nothing."""
        await _finished_at(b, [100.0] * 5, clock())
        keep = await in_status(b, TaskStatus.PENDING)
        assert await b.prune(clock() - 50, 100) == 5
        await b.reclaim_space()
        await b.reclaim_space(full=True)
        assert await status_of(b, keep) is TaskStatus.PENDING
