"""Conformance tests of ``purge``: which tasks go, and the dedupe keys they free."""

from __future__ import annotations

import pytest

from ...backend import Backend, Outcome
from ...errors import ConfigurationError
from ...task import TaskStatus
from ..clock import FakeClock
from ..records import make_record
from .support import LONE_STATUSES, KitBase, backend_test, claim, enqueue, in_status, status_of


class PurgeTests(KitBase):
    """Purge: final tasks by default, named statuses, an age cutoff."""

    async def _one_of_each(self, b: Backend) -> dict[TaskStatus, str]:
        return {status: await in_status(b, status) for status in LONE_STATUSES}

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
    async def test_purge_takes_one_status_alone(self, b: Backend, clock: FakeClock) -> None:
        """One status alone is a list of one, as `Backend.list_tasks` takes it; a word that is
        no status is refused with `ConfigurationError`, not a bare `ValueError`."""
        ids = await self._one_of_each(b)
        assert await b.purge(statuses="failed") == 1  # type: ignore[arg-type]
        assert await b.get_task(ids[TaskStatus.FAILED]) is None
        assert await b.purge(TaskStatus.CANCELLED) == 1  # type: ignore[arg-type]
        assert await b.get_task(ids[TaskStatus.CANCELLED]) is None
        for wrong in ("finished", ["failed", "finished"]):
            with pytest.raises(ConfigurationError, match="statuses"):
                await b.purge(statuses=wrong)  # type: ignore[arg-type]
        assert await b.get_task(ids[TaskStatus.SUCCEEDED]) is not None

    @backend_test
    async def test_purge_spares_running_tasks_unless_asked(
        self, b: Backend, clock: FakeClock
    ) -> None:
        ids = await self._one_of_each(b)
        not_running = [s for s in LONE_STATUSES if s is not TaskStatus.RUNNING]
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
