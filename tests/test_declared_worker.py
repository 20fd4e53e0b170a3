"""Declared tasks served by a real ``sitq worker`` process: what the worker says it serves at
start (banner and start log line), ``handle.progress()`` reading what a task reports, and a
task enqueued while its module is still being imported.

The app is a module written to a temporary folder; the worker imports it by name, as it would
an application's, and this process enqueues through the same module.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import astuple
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from test_worker_helpers import wait_until

import sitq
from sitq.handles import AsyncTaskHandle, TaskHandle

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_memory]  # memory: test_worker_helpers

#: Bound on a subprocess of these tests (a hang fails the test, never the run).
SUBPROCESS_TIMEOUT = 120

APP = """
import asyncio, os, time
import sitq

queue = sitq.SyncTaskQueue("sqlite:///{db}")
aqueue = sitq.TaskQueue("sqlite:///{db}")


def wait_for(gate):
    while not os.path.exists(gate):
        time.sleep(0.01)


@queue.task(name="reports.build")
def build(gate):
    sitq.current_task().set_progress(0.4, "step 2 of 5")
    wait_for(gate)
    return "built"


@queue.task()
def unused():
    return None


@aqueue.task()
async def abuild(gate):
    sitq.current_task().set_progress(0.75, "almost")
    while not os.path.exists(gate):
        await asyncio.sleep(0.01)
    return "abuilt"
"""

PLAIN_APP = """
import sitq

queue = sitq.SyncTaskQueue("sqlite:///{db}")
"""


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The app module ``served_app`` in ``tmp_path``, imported here too."""
    (tmp_path / "served_app.py").write_text(textwrap.dedent(APP).format(db=tmp_path / "q.db"))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("served_app", None)
    module = importlib.import_module("served_app")
    yield module
    module.queue.close()
    sys.modules.pop("served_app", None)


def start_worker(folder: Path, target: str, *options: str) -> subprocess.Popen[str]:
    """``sitq worker TARGET`` in ``folder`` (no ``SITQ_*`` settings), its output piped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITQ_")}
    env["PYTHONPATH"] = str(folder)
    env["COLUMNS"] = "200"
    return subprocess.Popen(
        [sys.executable, "-m", "sitq", "worker", target, "--poll-interval", "0.05", *options],
        cwd=folder,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(worker: subprocess.Popen[str]) -> str:
    """Wait for ``worker`` to exit 0; its stderr (banner and logs)."""
    try:
        out, err = worker.communicate(timeout=SUBPROCESS_TIMEOUT)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, out + err
    return err


def test_handle_progress_reads_what_a_worker_process_reports(
    app: ModuleType, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    handle = app.build.enqueue(str(gate))
    assert isinstance(handle, TaskHandle)
    assert handle.progress() is None  # not started: nothing reported
    worker = start_worker(
        tmp_path, "served_app:queue", "--worker-type", "thread", "--max-tasks", "1"
    )
    try:
        wait_until(lambda: handle.progress() is not None, timeout=60, what="progress")
        progress = handle.progress()
        assert progress is not None and astuple(progress)[:2] == (0.4, "step 2 of 5")
        assert progress.updated_at > 0
        assert handle.status() is sitq.TaskStatus.RUNNING
        gate.touch()
        assert handle.result(timeout=60) == "built"
        kept = handle.progress()  # the last report stays with the finished task
        assert kept is not None and kept.fraction == 0.4
    finally:
        gate.touch()
        err = finish(worker)
    assert "reports.build" in err


def test_async_handle_progress_is_awaited(app: ModuleType, tmp_path: Path) -> None:
    gate = tmp_path / "gate"

    async def main() -> None:
        async with app.aqueue:
            handle = await app.abuild.enqueue(str(gate))
            assert isinstance(handle, AsyncTaskHandle)
            assert await handle.progress() is None
            worker = start_worker(tmp_path, "served_app:aqueue", "--max-tasks", "1")
            try:
                deadline = time.monotonic() + 60
                while (progress := await handle.progress()) is None:
                    assert time.monotonic() < deadline, "no progress from the worker"
                    await asyncio.sleep(0.02)
                assert (progress.fraction, progress.message) == (0.75, "almost")
                gate.touch()
                assert await handle.result(timeout=60) == "abuilt"
            finally:
                gate.touch()
                await asyncio.to_thread(finish, worker)

    asyncio.run(main())


def test_a_handle_on_a_purged_task_says_it_is_gone(app: ModuleType) -> None:
    handle: TaskHandle[Any] = TaskHandle(app.queue, "no-such-task")
    with pytest.raises(sitq.errors.TaskNotFound, match="no-such-task"):
        handle.progress()


def test_the_worker_lists_the_declared_tasks_it_serves(app: ModuleType, tmp_path: Path) -> None:
    err = finish(start_worker(tmp_path, "served_app:queue", "--duration", "0.2"))
    banner_row = next(line for line in err.splitlines() if line.strip().startswith("tasks"))
    assert banner_row.split() == ["tasks", "reports.build,", "served_app:unused"]
    started = next(line for line in err.splitlines() if "starting on" in line)
    assert "serving reports.build, served_app:unused" in started


def test_the_json_start_line_carries_the_task_names(app: ModuleType, tmp_path: Path) -> None:
    err = finish(
        start_worker(tmp_path, "served_app:queue", "--duration", "0.2", "--log-format", "json")
    )
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    started = next(line for line in lines if "starting on" in line["message"])
    assert started["tasks"] == ["reports.build", "served_app:unused"]


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ((), "none declared: any importable function"),
        (("--allowed-functions", "jobs:*"), "none declared: functions matching jobs:*"),
        (("--allowed-functions", "declared"), "none declared: nothing can run"),
    ],
)
def test_a_worker_without_declared_tasks_says_what_it_runs(
    tmp_path: Path, options: tuple[str, ...], said: str
) -> None:
    (tmp_path / "plain_app.py").write_text(PLAIN_APP.format(db=tmp_path / "p.db"))
    err = finish(start_worker(tmp_path, "plain_app:queue", "--duration", "0.2", *options))
    banner_row = next(line for line in err.splitlines() if line.strip().startswith("tasks"))
    assert said in banner_row
    assert f"serving {said}" in next(line for line in err.splitlines() if "starting on" in line)


def test_a_task_enqueued_while_its_module_is_imported(tmp_path: Path) -> None:
    """The module's import is not finished: the task pickles by reference without importing
    it again (which would deadlock: the loop thread pickles while this thread imports)."""
    (tmp_path / "importing_app.py").write_text(
        "import pickle, sitq\n"
        "queue = sitq.SyncTaskQueue('sqlite:///q.db')\n"
        "@queue.task\n"
        "def ping():\n"
        "    return 'pong'\n"
        "handle = ping.enqueue()\n"
        "payload = pickle.dumps(ping)\n"
        "assert b'_import_task' in payload and pickle.loads(payload) is ping\n"
    )
    script = (
        "import importing_app as app, pickle, sitq\n"
        "assert b'_import_task' not in pickle.dumps(app.ping)\n"
        "sitq.Worker(app.queue).process_task(app.handle.id)\n"
        "print(app.handle.result(timeout=10))\n"
        "app.queue.close()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "pong"
