"""Conformance tests of the optional `Capability.EXPIRE_RESULTS` (``result_ttl``)."""

from __future__ import annotations

import pytest

from ...backend import Backend, Capability
from ...errors import ConfigurationError
from ...task import TaskStatus
from ..clock import FakeClock
from .support import LONE_STATUSES, KitBase, backend_test, in_status, requires, stored


class ExpireResultsTests(KitBase):
    """Expiring results: tombstones keep a task's identity and lose its data."""

    @backend_test
    async def test_expire_results_is_declared_or_refused(
        self, b: Backend, clock: FakeClock
    ) -> None:
        """A backend that does not declare the capability refuses with `ConfigurationError`
        (what ``Worker(result_ttl=...)`` relies on)."""
        if b.supports(Capability.EXPIRE_RESULTS):
            assert await b.expire_results(finished_before=-1.0) == 0
        else:
            with pytest.raises(ConfigurationError):
                await b.expire_results(finished_before=-1.0)

    @requires(Capability.EXPIRE_RESULTS)
    async def test_expire_results_leaves_tombstones(self, b: Backend, clock: FakeClock) -> None:
        """Finished tasks lose payload, result and traceback; the rest of the row stays, so an
        expired task is told apart from an unknown one."""
        finished = {s: await in_status(b, s) for s in LONE_STATUSES if s.is_final}
        pending = await in_status(b, TaskStatus.PENDING)
        running = await in_status(b, TaskStatus.RUNNING)
        assert await b.expire_results(finished_before=-1.0) == 0, "nothing finished before -1"
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
