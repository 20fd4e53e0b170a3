"""Acceptance: three real ``sitq worker`` processes on one SQLite file, and on one PostgreSQL
database, each running the scheduler, with an every-second schedule, while one of them is
SIGKILLed and restarted. Checked: exactly one task per fire time, and no fire time missing
between the first and the last (at least one scheduler lived all along).

The default run lasts about 8 s; the 30-s runs are ``@pytest.mark.slow``
(``pytest -m slow tests/test_schedules_multiprocess.py``).
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from postgres_support import PG_URL, drop_prefix, new_prefix, require_postgres
from run_options import slow_requested
from schedule_support import fired

from sitq import TaskQueue

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_postgres, pytest.mark.needs_memory]

APP = """
import faulthandler
import os
import signal
from datetime import datetime, timedelta

faulthandler.register(signal.SIGUSR1)  # the test dumps the stacks of a worker that hangs

from sitq import TaskQueue

queue = TaskQueue(os.environ["PERIODIC_TEST_URL"])


@queue.periodic(every=timedelta(seconds=1), name="tick")
def tick(fired_at: datetime) -> str:
    return fired_at.isoformat()
"""


def start(folder: Path, url: str, n: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITQ_")}
    env["PERIODIC_TEST_URL"] = url
    err = open(folder / f"worker-{n}.err", "wb")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sitq", "worker", "periodic_app:queue", "--poll-interval", "0.2"],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=err,
    )
    err.close()
    return proc


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def wait_started(folder: Path, procs: list[subprocess.Popen[bytes]], numbers: range) -> None:
    """Wait until workers ``numbers`` log that they started (imports take seconds on a
    loaded machine, and the run is timed from there). A worker that exits first fails the
    test at once; one still silent after 120 s has its Python stacks dumped into its log."""
    deadline = time.monotonic() + 120
    while True:
        logs = {n: (folder / f"worker-{n}.err").read_text() for n in numbers}
        if all("started:" in log for log in logs.values()):
            return
        for n, log in logs.items():
            exited = procs[_slot(n)].poll()
            assert exited is None, f"worker {n} exited ({exited}) before it started:\n{log}"
        if time.monotonic() > deadline:
            for n in numbers:
                procs[_slot(n)].send_signal(signal.SIGUSR1)
            time.sleep(2)
            logs = {n: (folder / f"worker-{n}.err").read_text() for n in numbers}
            raise AssertionError(
                "the workers did not start within 120 s:\n"
                + "\n".join(f"--- worker {n}\n{log}" for n, log in logs.items())
            )
        time.sleep(0.1)


def _slot(n: int) -> int:
    """The place in the fleet of worker ``n``: 0-2 first, then restarts 3 and 4 in the
    places of 0 and 1."""
    return n if n < 3 else n - 3


def run_fleet(folder: Path, url: str, seconds: float) -> list[datetime]:
    """Three workers for ``seconds`` once started; one SIGKILLed at each third of the run
    and restarted a moment later. Returns the fire times that got a task (a repeat shows
    twice)."""
    (folder / "periodic_app.py").write_text(APP)
    procs = [start(folder, url, n) for n in range(3)]
    kills = 0
    try:
        wait_started(folder, procs, range(3))
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < seconds:
            if elapsed > (kills + 1) * seconds / 3 - 1 and kills < 2:
                victim = kills % 3
                procs[victim].send_signal(signal.SIGKILL)
                procs[victim].wait(10)
                time.sleep(1.0)
                procs[victim] = start(folder, url, 3 + kills)
                kills += 1
            time.sleep(0.1)
        wait_started(folder, procs, range(3, 5))
    finally:
        stop(procs)
    errors = [p.read_text() for p in folder.glob("worker-*.err")]
    assert kills == 2
    return asyncio.run(_fired(url, errors))


async def _fired(url: str, errors: list[str]) -> list[datetime]:
    async with TaskQueue(url) as queue:
        found = await fired(queue, "tick")
    assert found, "no fire stored; worker logs:\n" + "\n".join(errors)
    return found


def check_exactly_once(found: list[datetime], seconds: float) -> None:
    counts = collections.Counter(found)
    twice = {t: n for t, n in counts.items() if n > 1}
    assert not twice, f"fire times stored more than once: {twice}"
    first, last = found[0], found[-1]
    expected = [
        first + timedelta(seconds=i) for i in range(int((last - first).total_seconds()) + 1)
    ]
    missing = sorted(set(expected) - set(found))
    assert not missing, f"fire times missing while a scheduler lived: {missing}"
    assert len(found) >= seconds / 2, f"only {len(found)} fires in {seconds} s"
    print(f"{len(found)} fire times, each stored once, none missing, from {first} to {last}")


@pytest.fixture(params=["sqlite", "postgres"])
def fleet_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty store the worker processes share (PostgreSQL tables dropped
    afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'schedules.db'}"
        return
    asyncio.run(require_postgres())
    prefix = new_prefix("sched")
    try:
        yield f"{PG_URL}?table_prefix={prefix}"
    finally:
        asyncio.run(drop_prefix(prefix))


def test_three_schedulers_fire_each_second_once_while_one_is_killed(
    fleet_url: str, tmp_path: Path
) -> None:
    check_exactly_once(run_fleet(tmp_path, fleet_url, 8.0), 8.0)


@pytest.mark.slow
def test_three_schedulers_for_thirty_seconds_while_one_is_killed(
    fleet_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if not slow_requested(request.config):
        pytest.skip("the 30-s runs are for `pytest -m slow` or SITQ_SOAK=1")
    check_exactly_once(run_fleet(tmp_path, fleet_url, 30.0), 30.0)
