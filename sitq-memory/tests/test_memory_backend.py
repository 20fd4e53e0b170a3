"""What only the memory backend promises: stores shared by name, and its URLs."""

from __future__ import annotations

import asyncio
import gc

import pytest

from sitq.backend import Backend, Capability
from sitq.conformance import make_record
from sitq.conformance.kit.flow_control import enqueue_limited
from sitq.flow_control import LimitRule
from sitq.plugins import get_plugin_manager
from sitq.task import TaskStatus
from sitq_memory import MemoryBackend
from sitq_memory.backend import FAIR_WINDOW


def test_named_backends_share_a_store() -> None:
    async def main() -> None:
        a, b = MemoryBackend("shared-test"), MemoryBackend("shared-test")
        other = MemoryBackend("another-test")
        assert a.notify_key == b.notify_key != other.notify_key
        task_id = await a.enqueue(make_record())
        assert await b.get_task(task_id) is not None
        assert await other.get_task(task_id) is None
        waiter = asyncio.ensure_future(b.wait_for_work(60))
        await asyncio.sleep(0.01)
        await a.enqueue(make_record())
        await asyncio.wait_for(waiter, 10)

    asyncio.run(main())


def test_unnamed_backends_are_private() -> None:
    async def main() -> None:
        a, b = MemoryBackend(), MemoryBackend()
        assert a.notify_key != b.notify_key
        task_id = await a.enqueue(make_record())
        assert await b.get_task(task_id) is None

    asyncio.run(main())


def test_a_named_store_lives_while_a_backend_holds_it() -> None:
    async def main() -> None:
        task_id = await MemoryBackend("short-lived-test").enqueue(make_record())
        gc.collect()
        assert await MemoryBackend("short-lived-test").get_task(task_id) is None

    asyncio.run(main())


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("memory://", None),
        ("memory:///", None),
        ("memory://jobs", "jobs"),
        ("memory:///jobs", "jobs"),
    ],
)
def test_urls(url: str, name: str | None) -> None:
    backend = get_plugin_manager().backend_from_url(url)
    assert isinstance(backend, MemoryBackend) and backend.name == name


def test_a_backend_declares_nothing_by_default() -> None:
    class Plain(MemoryBackend):
        capabilities = Backend.capabilities

    assert Backend.capabilities == frozenset()
    assert not any(Plain().supports(c) for c in Capability)
    assert MemoryBackend().supports(Capability.EXPIRE_RESULTS)


def test_a_quiet_key_is_found_behind_more_blocked_tasks_than_a_window() -> None:
    """Tasks of an exhausted key are set aside without filling the claim's window: a task
    behind more of them than `FAIR_WINDOW` is still claimed."""

    async def main() -> None:
        b = MemoryBackend()
        await b.set_limits([LimitRule("busy", concurrency=1)])
        await enqueue_limited(b, FAIR_WINDOW * 3, "busy")
        (quiet,) = await enqueue_limited(b, 1, "quiet")
        first = await b.claim(worker_id="w", limit=1, lease_seconds=30)
        assert first[0].limits == ("busy",)
        got = await b.claim(worker_id="w", limit=10, lease_seconds=30)
        assert [r.id for r in got] == [quiet]
        assert await b.claim(worker_id="w", limit=10, lease_seconds=30) == []
        assert (await b.counts())[TaskStatus.PENDING] == FAIR_WINDOW * 3 - 1

    asyncio.run(main())


def test_a_freed_slot_wakes_waiting_workers() -> None:
    """Ending a run that held a limited key is work again for workers waiting idle: the
    task its slot admits is claimed at once, not at the next poll."""

    async def main() -> None:
        b = MemoryBackend()
        await b.set_limits([LimitRule("solo", concurrency=1)])
        await enqueue_limited(b, 3, "solo")
        running = await b.claim(worker_id="w", limit=10, lease_seconds=30)
        assert len(running) == 1 and running[0].lease_token is not None
        waiter = asyncio.ensure_future(b.wait_for_work(60))
        await asyncio.sleep(0.01)
        assert await b.complete(running[0].id, running[0].lease_token, None)
        await asyncio.wait_for(waiter, 10)
        (second,) = await b.claim(worker_id="w", limit=10, lease_seconds=30)
        waiter = asyncio.ensure_future(b.wait_for_work(60))
        await asyncio.sleep(0.01)
        assert await b.cancel(second.id)
        await asyncio.wait_for(waiter, 10)

    asyncio.run(main())
