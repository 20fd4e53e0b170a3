"""`Backend.throughput` and `Backend.delete_tasks` (what sitq-web's chart and delete action
use) on every backend: the SQL overrides agree with the rule of `sitq.throughput`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from schedule_support import store_url

from sitq.backend import Backend, Outcome, TaskRecord
from sitq.conformance.clock import FakeClock
from sitq.errors import ConfigurationError
from sitq.plugins import get_plugin_manager
from sitq.search import TaskSearch
from sitq.task import TaskStatus

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_memory, pytest.mark.needs_postgres]

KINDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
START = 1_700_000_000.0


async def _finish(backend: Backend, clock: FakeClock, ends: list[tuple[float, str]]) -> list[str]:
    """One task per ``(finished_at, how)``: ``how`` is a final status, or ``pending``."""
    records = [
        TaskRecord(id=f"t{i}", function="app:f", payload=b"x", serializer="json",
                   created_at=clock(), available_at=clock())
        for i in range(len(ends))
    ]  # fmt: skip
    ids = await backend.enqueue_many(records)
    for task_id, (finished_at, how) in zip(ids, ends, strict=True):
        if how == "pending":
            continue
        if how == "cancelled":
            await backend.cancel(task_id)
            continue
        claimed = await backend.claim_by_id(task_id, worker_id="w", lease_seconds=60)
        assert claimed is not None and claimed.lease_token is not None
        token = claimed.lease_token
        outcome = {
            "succeeded": Outcome.succeeded(task_id, token, None),
            "failed": Outcome.failed(task_id, token, "boom"),
            "dead": Outcome.dead(task_id, token, "gone"),
        }[how]
        outcome.finished_at = finished_at
        assert await backend.finish([outcome]) == [True]
    return ids


@pytest.mark.parametrize("kind", KINDS)
def test_throughput_counts_finished_tasks_per_bucket(kind: str, tmp_path: Path) -> None:
    asyncio.run(_throughput_counts_finished_tasks_per_bucket(kind, tmp_path))


async def _throughput_counts_finished_tasks_per_bucket(kind: str, tmp_path: Path) -> None:
    async with store_url(kind, tmp_path) as url:
        backend = get_plugin_manager().backend_from_url(url)
        clock = backend.clock = FakeClock(START)
        await backend.connect()
        try:
            since = START - 3600
            await _finish(backend, clock, [
                (since - 1, "succeeded"), (since, "succeeded"), (since + 59.9, "failed"),
                (since + 60, "succeeded"), (since + 61, "dead"), (since + 3599, "succeeded"),
                (START, "cancelled"), (START, "pending"),
            ])  # fmt: skip
            found = await backend.throughput(since, 60)
            assert found == {
                since: {TaskStatus.SUCCEEDED: 1, TaskStatus.FAILED: 1},
                since + 60: {TaskStatus.SUCCEEDED: 1, TaskStatus.DEAD: 1},
                since + 3540: {TaskStatus.SUCCEEDED: 1},
            }
            assert found == await Backend.throughput(backend, since, 60)  # the rule's default
            assert await backend.throughput(START + 1, 60) == {}
        finally:
            await backend.close()


@pytest.mark.parametrize("kind", KINDS)
def test_throughput_refuses_bad_arguments(kind: str, tmp_path: Path) -> None:
    asyncio.run(_throughput_refuses_bad_arguments(kind, tmp_path))


async def _throughput_refuses_bad_arguments(kind: str, tmp_path: Path) -> None:
    async with store_url(kind, tmp_path) as url:
        backend = get_plugin_manager().backend_from_url(url)
        await backend.connect()
        try:
            for since, bucket in ((0.0, 0.0), (float("nan"), 60.0), (0.0, 1e-9)):
                with pytest.raises(ConfigurationError):
                    await backend.throughput(since, bucket)
        finally:
            await backend.close()


@pytest.mark.parametrize("kind", KINDS)
def test_delete_tasks_deletes_finished_tasks_only(kind: str, tmp_path: Path) -> None:
    asyncio.run(_delete_tasks_deletes_finished_tasks_only(kind, tmp_path))


async def _delete_tasks_deletes_finished_tasks_only(kind: str, tmp_path: Path) -> None:
    async with store_url(kind, tmp_path) as url:
        backend = get_plugin_manager().backend_from_url(url)
        clock = backend.clock = FakeClock(START)
        await backend.connect()
        try:
            done, failed, cancelled, pending = await _finish(backend, clock, [
                (START, "succeeded"), (START, "failed"), (START, "cancelled"), (START, "pending"),
            ])  # fmt: skip
            asked = [done, failed, done, pending, "unknown", cancelled]
            assert await backend.delete_tasks(asked) == 3
            for task_id in (done, failed, cancelled):
                assert await backend.get_task(task_id) is None
            assert await backend.get_task(pending) is not None
            assert await backend.delete_tasks([]) == 0
        finally:
            await backend.close()


@pytest.mark.parametrize("kind", KINDS)
def test_search_tasks_filters_and_pages_newest_first(kind: str, tmp_path: Path) -> None:
    asyncio.run(_search_tasks_filters_and_pages_newest_first(kind, tmp_path))


async def _search_tasks_filters_and_pages_newest_first(kind: str, tmp_path: Path) -> None:
    async with store_url(kind, tmp_path) as url:
        backend = get_plugin_manager().backend_from_url(url)
        clock = backend.clock = FakeClock(START)
        await backend.connect()
        try:
            records = [
                TaskRecord(id=f"s{i:02d}", function=f"app.mail:Send{i % 3}", queue=q,
                           payload=f'["{"100%_off" if i == 7 else "Ada"}"]'.encode(),
                           serializer="json", created_at=clock(), available_at=clock())
                for i, q in enumerate(["a", "b"] * 6)
            ]  # fmt: skip
            await backend.enqueue_many(records)
            await backend.cancel("s03")
            everything = [r.id for r in reversed(records)]

            async def ids(**fields: object) -> list[str]:
                found = await backend.search_tasks(TaskSearch(**fields))  # type: ignore[arg-type]
                assert all(TaskSearch(**fields).matches(r) for r in found)  # type: ignore[arg-type]
                return [r.id for r in found]

            assert await ids() == everything
            assert await ids(limit=5) == everything[:5]
            assert await ids(limit=5, before="s07") == ["s06", "s05", "s04", "s03", "s02"]
            assert await ids(before="s00") == []
            assert await ids(before="no-such-task") == []
            assert await ids(queue="b", limit=2) == ["s11", "s09"]
            assert await ids(statuses=frozenset([TaskStatus.CANCELLED])) == ["s03"]
            assert await ids(function="send1") == ["s10", "s07", "s04", "s01"]
            assert await ids(text="100%_") == ["s07"]  # LIKE's wildcards taken literally
            assert await ids(text="%") == ["s07"]
            assert await ids(text="MAIL:send2", queue="a") == ["s08", "s02"]
            assert await ids(text="ada", limit=1) == []  # arguments: exact bytes
            assert await ids(text="Ada", limit=1) == ["s11"]
        finally:
            await backend.close()


def test_a_search_refuses_bad_fields() -> None:
    bad: list[dict[str, Any]] = [
        {"limit": 0}, {"limit": 5000}, {"limit": True}, {"queue": 3}, {"statuses": ["nope"]},
    ]  # fmt: skip
    for fields in bad:
        with pytest.raises(ConfigurationError):
            TaskSearch(**fields)
    one: Any = "failed"
    assert TaskSearch(statuses=one).statuses == frozenset([TaskStatus.FAILED])
