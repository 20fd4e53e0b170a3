"""Many machines on one database: groups of worker processes, each with its own pool.

The default (CI) sizes are small; the full run — 3 machines of 4 processes each, 50,000 tasks — is
``-m slow`` (or ``SITQ_PG_FLEET_TASKS=50000``). The server restart is only in the slow set: it
disrupts everyone else using the server.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import pg_tasks
import pytest
from pg_fleet import Fleet, wait_until_all_succeeded

from sitq import TaskQueue, TaskStatus

pytestmark = pytest.mark.postgres

FULL_TASKS = 50_000


def _check_results(queue: TaskQueue, total: int) -> asyncio.Future[dict[str, int]]:
    async def check() -> dict[str, int]:
        records = await queue.backend.list_tasks(limit=None)
        assert len(records) == total
        assert all(r.status is TaskStatus.SUCCEEDED for r in records)
        values = sorted(queue.result_from_record(r).value for r in records)
        assert values == list(range(total)), "one result per task"
        per_group: dict[str, int] = {}
        for r in records:
            group = (r.worker_id or "?").split("-")[0]
            per_group[group] = per_group.get(group, 0) + 1
        return per_group

    return asyncio.ensure_future(check())


def run_fleet(
    prefix: str, tmp_path: Path, *, groups: int, per_group: int, tasks: int
) -> dict[str, int]:
    """Enqueue ``tasks`` while the fleet runs; check each ran exactly once."""
    fleet = Fleet(prefix, tmp_path, groups=groups, per_group=per_group)

    async def body() -> dict[str, int]:
        async with TaskQueue(fleet.url(0)) as queue:
            await queue.connect()  # the schema exists before the workers race to create it
            fleet.start()
            try:
                batch = 1000
                for start in range(0, tasks, batch):
                    await queue.enqueue_many(
                        [(pg_tasks.record, (n,)) for n in range(start, min(start + batch, tasks))]
                    )
                await wait_until_all_succeeded(queue, tasks, timeout=60 + tasks / 200)
            finally:
                codes = await asyncio.to_thread(fleet.stop)
            assert codes == [0] * len(codes), f"worker exit codes {codes}"
            return await _check_results(queue, tasks)

    counts = asyncio.run(body())
    runs = pg_tasks.runs(str(tmp_path))
    assert sorted(runs) == list(range(tasks)), "a task never ran"
    assert max(runs.values()) == 1, "a task ran twice with no worker lost"
    return counts


def test_three_machines(prefix: str, tmp_path: Path) -> None:
    tasks = int(os.environ.get("SITQ_PG_FLEET_TASKS", "2000"))
    per_group = run_fleet(prefix, tmp_path, groups=3, per_group=2, tasks=tasks)
    assert set(per_group) == {"g0", "g1", "g2"}, f"every machine took work: {per_group}"


@pytest.mark.slow
def test_three_machines_full_size(prefix: str, tmp_path: Path) -> None:
    per_group = run_fleet(prefix, tmp_path, groups=3, per_group=4, tasks=FULL_TASKS)
    assert set(per_group) == {"g0", "g1", "g2"}, f"every machine took work: {per_group}"


def test_chaos_killed_connections_and_workers(prefix: str, tmp_path: Path) -> None:
    """Connections terminated every few hundred ms, a worker SIGKILLed every 1.5 s (and
    replaced): every task succeeds once in the table, re-runs are bounded by what the killed
    workers held."""
    tasks, max_workers = 2000, 10
    fleet = Fleet(prefix, tmp_path, groups=3, per_group=2, lease=2.0, max_workers=max_workers)
    terminated = 0

    async def body() -> None:
        nonlocal terminated
        async with TaskQueue(fleet.url(0)) as queue:
            await queue.connect()
            fleet.start()
            try:
                await queue.enqueue_many([(pg_tasks.record, (n, 0.2)) for n in range(tasks)])
                deadline = time.monotonic() + 120
                next_kill = time.monotonic() + 1.5
                while (await queue.counts())[TaskStatus.SUCCEEDED] < tasks:
                    assert time.monotonic() < deadline, f"not done: {await queue.counts()}"
                    terminated += await fleet.terminate_connections()
                    if time.monotonic() >= next_kill:
                        await asyncio.to_thread(fleet.sigkill_one)
                        next_kill = time.monotonic() + 1.5
                    await asyncio.sleep(0.3)
            finally:
                await asyncio.to_thread(fleet.stop)
            await _check_results(queue, tasks)

    asyncio.run(body())
    runs = pg_tasks.runs(str(tmp_path))
    assert sorted(runs) == list(range(tasks)), "a task never ran"
    reruns = sum(count - 1 for count in runs.values())
    print(f"chaos: {fleet.sigkills} SIGKILLs, {terminated} connections killed, {reruns} re-runs")
    assert fleet.sigkills >= 2 and terminated > 0, "the chaos did not happen"
    assert reruns <= fleet.sigkills * max_workers, (
        f"{reruns} re-runs after {fleet.sigkills} SIGKILLs of workers holding at most "
        f"{max_workers} tasks each"
    )


def _cluster(*args: str) -> subprocess.CompletedProcess[str]:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    return subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.slow
def test_server_restart_mid_run(prefix: str, tmp_path: Path) -> None:
    """``restart -m immediate`` while tasks are enqueued and run: the workers are back within
    10 s of the server, and every acknowledged enqueue runs."""
    fleet = Fleet(prefix, tmp_path, groups=3, per_group=2, lease=5.0)
    acknowledged: list[str] = []
    restarted_at: list[float] = []

    async def enqueuer(queue: TaskQueue, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            acknowledged.append(await queue.enqueue(pg_tasks.record, n, 0.01))
            n += 1
            await asyncio.sleep(0.005)

    async def body() -> float:
        async with TaskQueue(fleet.url(0)) as queue:
            await queue.connect()
            fleet.start()
            stop = asyncio.Event()
            feeding = asyncio.ensure_future(enqueuer(queue, stop))
            try:
                await asyncio.sleep(3)
                done = await asyncio.to_thread(_cluster, "restart", "-m", "immediate")
                assert done.returncode == 0, done.stderr
                restarted_at.append(time.time())
                await asyncio.sleep(5)
                stop.set()
                await asyncio.wait_for(feeding, 90)
                await wait_until_all_succeeded(queue, len(acknowledged), timeout=120)
                records = await queue.backend.list_tasks(limit=None)
                after = [t for r in records if (t := r.finished_at or 0) > restarted_at[0]]
                assert len(records) == len(acknowledged)
                assert {r.id for r in records} == set(acknowledged)
                return min(after) - restarted_at[0]
            finally:
                stop.set()
                await asyncio.to_thread(fleet.stop)

    try:
        back_after = asyncio.run(body())
    finally:
        if _cluster("status").returncode != 0:
            _cluster("start")
    print(f"restart: workers back {back_after:.2f} s after it, {len(acknowledged)} enqueues kept")
    assert back_after < 10, f"the workers took {back_after:.1f} s to come back"
