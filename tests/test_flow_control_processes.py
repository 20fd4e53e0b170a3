"""Acceptance of issue 14 across processes, on SQLite and on PostgreSQL:

* unique for a period: several processes enqueue the same key at once and all get one task;
  once the period is over, the same race makes exactly one new task;
* paused queues: ``sitq pause`` from another process stops a running worker process from
  claiming from that queue while it goes on with the others, ``sitq status`` shows it
  paused, and after ``sitq resume`` the worker drains it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import multiprocessing
import queue as queues
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import flow_control_app as app
import pytest
from postgres_support import PG_URL, drop_prefix, new_prefix, require_postgres
from subprocess_env import clean_environment

from sitq import TaskQueue, TaskStatus

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_postgres]

TESTS = Path(__file__).parent
PROCESSES = 6
CALLS = 5
#: How long a key stays unique. The processes' calls all return within it on any sane
#: machine; if one returns later it may make a new task, and the check allows it then.
PERIOD = 4.0
#: Clock resolution between processes of one machine (they read the same clock).
CLOCK_TOLERANCE = 0.01
POLL_SECONDS = 0.2
PAUSED, OTHER = "emails", "default"
BATCH = 20


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store the processes share (PostgreSQL tables dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'flow.db'}"
        return
    asyncio.run(require_postgres())
    prefix = new_prefix("flowp")
    try:
        yield f"{PG_URL}?table_prefix={prefix}"
    finally:
        asyncio.run(drop_prefix(prefix))


# -- unique for a period ---------------------------------------------------------------------


Call = tuple[str, float, float]  # (task id returned, called at, returned at)


def race(url: str, key: str) -> list[Call]:
    """`PROCESSES` spawned processes enqueue ``key`` `CALLS` times each, all at once; every
    call they made."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=app.enqueue_unique, args=(url, key, PERIOD, CALLS, start, results))
        for _ in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    reports = []
    try:
        for _ in procs:
            reports.append(results.get(timeout=120))
    except queues.Empty:
        pytest.fail(f"only {len(reports)} of {PROCESSES} processes reported within 120 s")
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
    errors = [r for r in reports if isinstance(r, str)]
    assert errors == []
    return [call for report in reports for call in report]


async def created(url: str, key: str) -> dict[str, float]:
    """The stored tasks of ``key``: their creation time by id."""
    async with TaskQueue(url) as queue:
        records = await queue.backend.list_tasks(limit=None)
    return {r.id: r.created_at for r in records if r.dedupe_key == key}


def check_unique(calls: list[Call], stored: dict[str, float]) -> None:
    """Tasks of the key are at least `PERIOD` apart, and each call got a stored task that
    was unique at the time it called: created before it returned, and at most `PERIOD`
    before it called."""
    times = sorted(stored.values())
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= PERIOD - CLOCK_TOLERANCE for gap in gaps), f"duplicates {gaps} s apart"
    for task_id, called_at, returned_at in calls:
        assert task_id in stored, f"{task_id} was returned and not stored"
        assert called_at - PERIOD - CLOCK_TOLERANCE <= stored[task_id], "an expired task"
        assert stored[task_id] <= returned_at + CLOCK_TOLERANCE, "a task from the future"


def within_period(calls: list[Call], stored: dict[str, float]) -> bool:
    """True if every call returned within `PERIOD` of the first task among ``stored`` (the
    race was that short: one task must serve them all)."""
    return max(returned for _, _, returned in calls) < min(stored.values()) + PERIOD


def test_processes_enqueue_one_unique_task_per_period(url: str) -> None:
    key = "nightly-report"
    assert asyncio.run(created(url, key)) == {}  # the schema exists before the race
    first = race(url, key)
    stored = asyncio.run(created(url, key))
    check_unique(first, stored)
    if within_period(first, stored):  # else the machine stalled for seconds: more may be due
        assert len(stored) == 1, f"{len(stored)} tasks for one key within its period"

    time.sleep(max(0.0, max(stored.values()) + PERIOD + CLOCK_TOLERANCE - time.time()))
    second = race(url, key)
    after = asyncio.run(created(url, key))
    check_unique(first + second, after)
    new = {task_id: at for task_id, at in after.items() if task_id not in stored}
    assert {task_id for task_id, _, _ in second} <= set(new), "an expired task was returned"
    if within_period(second, new):
        assert len(new) == 1, f"{len(new)} new tasks for one key within its period"


# -- paused queues ---------------------------------------------------------------------------


def sitq(folder: Path, url: str, *args: str) -> str:
    """Run ``sitq ARGS --backend URL`` in another process; its output (it must succeed)."""
    done = subprocess.run(
        [sys.executable, "-m", "sitq", *args, "--backend", url],
        cwd=folder,
        env=clean_environment([TESTS]),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"sitq {' '.join(args)}: {done.returncode}\n{done.stderr}"
    return done.stdout


def start_worker(folder: Path, url: str) -> subprocess.Popen[bytes]:
    """A ``sitq worker`` process serving every queue, its log in ``worker.err``."""
    with open(folder / "worker.err", "wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "sitq", "worker", "flow_control_app:queue",
             "-c", "4", "--poll-interval", str(POLL_SECONDS)],
            cwd=folder,
            env=clean_environment([TESTS], **{app.URL_VARIABLE: url}),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )  # fmt: skip


async def enqueue(url: str, queue_name: str, n: int) -> list[str]:
    """Store ``n`` no-op tasks on ``queue_name``."""
    async with app.open_queue(url):
        task = app.noop.options(queue=queue_name)
        return [(await task.enqueue(i)).id for i in range(n)]


async def wait_succeeded(
    url: str, ids: list[str], worker: subprocess.Popen[bytes], folder: Path
) -> None:
    """Until every task of ``ids`` succeeded; a worker that exits, or 120 s (a hang), fails
    the test with the worker's log."""
    ends = time.monotonic() + 120
    async with TaskQueue(url) as queue:
        while True:
            records = [await queue.backend.get_task(i) for i in ids]
            if all(r is not None and r.status == TaskStatus.SUCCEEDED for r in records):
                return
            log = (folder / "worker.err").read_text()
            assert worker.poll() is None, f"the worker exited:\n{log}"
            assert time.monotonic() < ends, f"tasks not done within 120 s:\n{log}"
            await asyncio.sleep(0.1)


async def statuses(url: str, ids: list[str]) -> set[TaskStatus]:
    """The statuses of the tasks of ``ids``."""
    async with TaskQueue(url) as queue:
        return {r.status for i in ids if (r := await queue.backend.get_task(i)) is not None}


def test_pause_from_the_cli_stops_a_running_worker_on_that_queue_only(
    url: str, tmp_path: Path
) -> None:
    worker = start_worker(tmp_path, url)
    try:
        warm = asyncio.run(enqueue(url, PAUSED, 1))
        asyncio.run(wait_succeeded(url, warm, worker, tmp_path))  # serving both queues

        sitq(tmp_path, url, "pause", PAUSED)
        held = asyncio.run(enqueue(url, PAUSED, BATCH))
        other = asyncio.run(enqueue(url, OTHER, BATCH))
        # the worker claimed (and ran) every task of the other queue after the pause: any of
        # those claims would have taken the paused queue's tasks, enqueued first
        asyncio.run(wait_succeeded(url, other, worker, tmp_path))
        assert asyncio.run(statuses(url, held)) == {TaskStatus.PENDING}
        assert json.loads(sitq(tmp_path, url, "status", "--json"))["paused_queues"] == [PAUSED]

        sitq(tmp_path, url, "resume", PAUSED)
        asyncio.run(wait_succeeded(url, held, worker, tmp_path))
        assert json.loads(sitq(tmp_path, url, "status", "--json"))["paused_queues"] == []
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
