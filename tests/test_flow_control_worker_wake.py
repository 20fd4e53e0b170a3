"""A worker whose claim found only tasks waiting for a limited key's slot claims again when
one of its own tasks holding that key ends, not at its next poll: the fleet test saw a key
at concurrency 2 drained at ~2 tasks a poll interval instead of at its limit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import flow_control_app as app
import pytest

from sitq import TaskStatus, Worker

pytestmark = [pytest.mark.needs_sqlite]

#: Far longer than the test's guard: only a wake-up by the ending task lets it pass.
POLL_SECONDS = 3600.0
TASKS = 4


def test_a_task_ending_frees_its_key_for_the_next_claim(tmp_path: Path) -> None:
    asyncio.run(drain(tmp_path))


async def drain(tmp_path: Path) -> None:
    """`TASKS` tasks holding one key at concurrency 1, run by one worker polling hourly."""
    async with app.open_queue(f"sqlite:///{tmp_path / 'wake.db'}") as queue:
        queue.limit("only-one", concurrency=1)
        task = app.work.options(limits=["only-one"])
        ids = [(await task.enqueue(0, n, 0.01)).id for n in range(TASKS)]
        worker = Worker(queue, max_tasks=TASKS, poll_interval=POLL_SECONDS)
        # a hang guard, not a timing assertion: without the wake-up this takes hours
        await asyncio.wait_for(worker.start(), timeout=120)
        records = [await queue.backend.get_task(i) for i in ids]
        assert [r.status if r else None for r in records] == [TaskStatus.SUCCEEDED] * TASKS
