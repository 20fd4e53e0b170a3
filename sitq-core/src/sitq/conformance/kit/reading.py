"""Conformance tests of reading: ``get_task``, ``get_result``, counts and ``list_tasks``."""

from __future__ import annotations

import pytest

from ...backend import ALL_STATUSES, Backend
from ...errors import ConfigurationError
from ...task import TaskStatus
from ..clock import FakeClock
from ..records import make_record
from .support import LONE_STATUSES, KitBase, backend_test, ids_of, in_status, stored


class ReadingTests(KitBase):
    """Reading: records, results, counts and monitoring lists."""

    @backend_test
    async def test_get_task_and_get_result_of_unknown_ids(
        self, b: Backend, clock: FakeClock
    ) -> None:
        assert await b.get_task("no-such-task") is None
        assert await b.get_result("no-such-task") is None

    @backend_test
    async def test_get_result_only_when_final(self, b: Backend, clock: FakeClock) -> None:
        for status in LONE_STATUSES:
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
        for status in LONE_STATUSES:
            await in_status(b, status, queue="a")
        await in_status(b, TaskStatus.PENDING, queue="b")
        await in_status(b, TaskStatus.FAILED, queue="b")
        expected_a = {s: int(s in LONE_STATUSES) for s in ALL_STATUSES}
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
    async def test_list_tasks_takes_one_status_alone(self, b: Backend, clock: FakeClock) -> None:
        """One status alone is a list of one, as `Backend.purge` takes it."""
        failed = await in_status(b, TaskStatus.FAILED)
        await in_status(b, TaskStatus.SUCCEEDED)
        for one in ("failed", TaskStatus.FAILED):
            assert ids_of(await b.list_tasks(statuses=one)) == [failed]  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="statuses"):
            await b.list_tasks(statuses="finished")  # type: ignore[arg-type]

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
