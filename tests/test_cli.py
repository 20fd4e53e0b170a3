"""The ``sitq`` command, run as a user runs it: real subprocesses on real SQLite files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sitq import SyncTaskQueue, TaskStatus

pytestmark = [pytest.mark.needs_sqlite]

APP = '''
"""A test app: the queue comes from SITQ_BACKEND_URL."""
import time

from sitq import TaskQueue

queue = TaskQueue()
not_a_queue = 42


def make_queue():
    return TaskQueue()


def add(a, b):
    return a + b


def slow(seconds):
    time.sleep(seconds)
    return "done"


def boom():
    raise RuntimeError("boom")
'''


def sitq_env(**extra: str) -> dict[str, str]:
    """The environment for a ``sitq`` subprocess: no stray SITQ_* settings from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITQ_")}
    env["COLUMNS"] = "200"
    env.update(extra)
    return env


def sitq(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60, input: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m sitq ARGS`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "sitq", *args],
        cwd=cwd,
        env=env if env is not None else sitq_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
    )


def data(result: subprocess.CompletedProcess[str]) -> Any:
    """The JSON a ``--json`` command printed (asserting it succeeded)."""
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """A folder with ``cliapp.py`` (the test app) and the URL of its database in ``.url``."""
    (tmp_path / "cliapp.py").write_text(APP)
    return tmp_path


def url_of(folder: Path) -> str:
    return f"sqlite:///{folder / 'tasks.db'}"


@pytest.fixture
def queue(app_dir: Path) -> Iterator[SyncTaskQueue]:
    """A queue on the app's database, in this (the test's) process."""
    with SyncTaskQueue(url_of(app_dir)) as q:
        yield q


def start_worker(app_dir: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    """``sitq worker cliapp:queue ARGS`` in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "sitq", "worker", "cliapp:queue", *args],
        cwd=app_dir,
        env=sitq_env(SITQ_BACKEND_URL=url_of(app_dir), **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 30) -> tuple[int, str]:
    """Wait for a worker process; return its exit code and stderr."""
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"worker did not exit within {timeout} s:\n{err}") from None
    return proc.returncode, err


def wait_for(queue: SyncTaskQueue, task_id: str, status: TaskStatus, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = queue.get_task(task_id)
        if task is not None and task.status is status:
            return
        time.sleep(0.02)
    raise AssertionError(f"task {task_id} never became {status.value}")


# -- the command itself ------------------------------------------------------------------------


def test_help_and_version(tmp_path: Path) -> None:
    result = sitq("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("worker", "status", "inspect", "failed", "retry", "cancel", "purge",
                    "plugins", "demo"):  # fmt: skip
        assert command in result.stdout
    version = sitq("--version", cwd=tmp_path)
    assert version.returncode == 0 and "sitq" in version.stdout
    worker_help = sitq("worker", "-h", cwd=tmp_path)
    assert "Exit codes" in worker_help.stdout and "SITQ_CONCURRENCY" in worker_help.stdout


def test_sitq_script_is_installed(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("sitq")
    assert script.exists(), "pip install sitq-core provides the `sitq` command"
    result = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "0." in result.stdout


# -- demo, then every read and control command on what it left ---------------------------------


def test_demo_then_read_and_control_commands(tmp_path: Path) -> None:
    summary = data(sitq("demo", "--tasks", "300", "--json", cwd=tmp_path))
    # every 100th task always fails (3), every 20th other one fails once (15 - 3 = 12)
    assert summary["tasks"] == 300
    assert summary["succeeded"] == 297
    assert summary["failed"] == 3
    assert summary["retried"] == 12 + 3 * 2
    assert summary["tasks_per_second"] > 0
    assert (tmp_path / "sitq.db").exists()

    status = data(sitq("status", "--json", cwd=tmp_path))
    demo = status["queues"]["sitq-demo"]
    assert demo["succeeded"] == 297 and demo["failed"] == 3
    # the periodic task fired at least once; a fire stored as the worker stopped may wait
    periodic = status["queues"]["sitq-demo-periodic"]
    assert periodic["succeeded"] == summary["periodic_fires"] >= 1
    assert status["oldest_pending"] is None or status["oldest_pending"]["queue"] == (
        "sitq-demo-periodic"
    )
    assert status["running"] == []
    schedules = data(sitq("schedules", "--json", cwd=tmp_path))
    assert [s["name"] for s in schedules] == ["sitq-demo-heartbeat"]
    assert schedules[0]["last_fire"] is not None

    failed = data(sitq("failed", "--json", cwd=tmp_path))
    assert [f["args"] for f in failed] == [["299"], ["199"], ["99"]]  # newest first
    assert all("ValueError" in f["traceback"] and f["attempts"] == 3 for f in failed)
    task_id = failed[0]["id"]

    shown = data(sitq("inspect", task_id, "--json", cwd=tmp_path))
    assert shown["function"] == "sitq.cli.demo:broken" and shown["status"] == "failed"
    text = sitq("inspect", task_id, cwd=tmp_path)
    assert "sitq.cli.demo:broken(299)" in text.stdout and "Traceback" in text.stdout

    assert data(sitq("retry", task_id, "--json", cwd=tmp_path))["retried"] == [task_id]
    status = data(sitq("status", "--json", cwd=tmp_path))
    assert status["oldest_pending"]["id"] == task_id
    assert data(sitq("cancel", task_id, "--json", cwd=tmp_path))["cancelled"] == [task_id]

    again = sitq("cancel", task_id, cwd=tmp_path)
    assert again.returncode == 1 and "it is cancelled, not pending" in again.stdout
    unknown = sitq("retry", "no-such-id", cwd=tmp_path)
    assert unknown.returncode == 1 and "no such task" in unknown.stdout

    retried = data(sitq("retry", "--all-failed", "--json", cwd=tmp_path))
    assert len(retried["retried"]) == 2

    purged = data(sitq("purge", "--status", "succeeded", "--yes", "--json", cwd=tmp_path))
    assert purged["deleted"] == 297 + summary["periodic_fires"]
    declined = sitq("purge", cwd=tmp_path, input="n\n")
    assert declined.returncode == 1 and "Aborted" in declined.stderr
    status = data(sitq("status", "--json", cwd=tmp_path))
    assert status["queues"]["sitq-demo"] == {"waiting": 0, "pending": 2, "running": 0,
                                             "succeeded": 0, "failed": 0, "dead": 0,
                                             "cancelled": 1}  # fmt: skip

    table = sitq("status", cwd=tmp_path)
    assert table.returncode == 0
    assert "sitq-demo" in table.stdout and "oldest pending" in table.stdout


def test_read_commands_refuse_a_missing_database(tmp_path: Path) -> None:
    result = sitq("status", cwd=tmp_path)
    assert result.returncode == 1
    assert "no task database" in result.stderr and "--backend" in result.stderr
    assert not (tmp_path / "sitq.db").exists()


def test_purge_older_than(tmp_path: Path) -> None:
    data(sitq("demo", "--tasks", "20", "--json", cwd=tmp_path))
    kept = data(sitq("purge", "--older-than", "1h", "--yes", "--json", cwd=tmp_path))
    assert kept["deleted"] == 0
    bad = sitq("purge", "--older-than", "soon", "--yes", cwd=tmp_path)
    assert bad.returncode == 2 and "not a duration" in bad.stderr


# -- app locators --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locator", "message"),
    [
        ("nosuchmodule:queue", "cannot import 'nosuchmodule'"),
        ("cliapp:missing", "has no attribute missing. It has: queue"),
        ("cliapp:not_a_queue", "is a int, not a TaskQueue"),
        ("a:b:c", "should look like 'package.module:queue'"),
    ],
)
def test_bad_app_locators_are_explained(app_dir: Path, locator: str, message: str) -> None:
    result = sitq("status", "--app", locator, cwd=app_dir)
    assert result.returncode == 1
    assert message in result.stderr


def test_app_factory_and_module_default(app_dir: Path, queue: SyncTaskQueue) -> None:
    task_id = queue.enqueue("cliapp:add", 1, 2)
    env = sitq_env(SITQ_BACKEND_URL=url_of(app_dir))
    for locator in ("cliapp:make_queue", "cliapp"):
        shown = data(sitq("inspect", task_id, "--app", locator, "--json", cwd=app_dir, env=env))
        assert shown["args"] == ["1", "2"]


def test_worker_needs_an_app(tmp_path: Path) -> None:
    result = sitq("worker", cwd=tmp_path)
    assert result.returncode == 2 and "name your queue" in result.stderr


# -- the worker ------------------------------------------------------------------------------------


def test_worker_runs_tasks_enqueued_by_another_process(app_dir: Path, queue: SyncTaskQueue) -> None:
    ids = [queue.enqueue("cliapp:add", i, 1) for i in range(5)]
    worker = start_worker(app_dir, "--poll-interval", "0.05")
    try:
        assert [queue.get_result(t, timeout=30).value for t in ids] == [1, 2, 3, 4, 5]
        late = queue.enqueue("cliapp:add", 10, 10)  # noticed by polling the shared file
        assert queue.get_result(late, timeout=30).value == 20
    finally:
        worker.send_signal(signal.SIGTERM)
        code, err = finish(worker)
    assert code == 0, err
    assert "6 tasks (6 succeeded, 0 failed, 0 retried)" in err


def test_sigterm_lets_running_tasks_finish(app_dir: Path, queue: SyncTaskQueue) -> None:
    task_id = queue.enqueue("cliapp:slow", 1.0)
    worker = start_worker(app_dir, "--poll-interval", "0.05", "--graceful-shutdown", "20")
    wait_for(queue, task_id, TaskStatus.RUNNING)
    worker.send_signal(signal.SIGTERM)
    code, err = finish(worker)
    assert code == 0, err
    result = queue.get_result(task_id, timeout=0)
    assert result.is_success and result.value == "done"


def test_second_signal_hands_running_tasks_back(app_dir: Path, queue: SyncTaskQueue) -> None:
    task_id = queue.enqueue("cliapp:slow", 60)
    worker = start_worker(app_dir, "--poll-interval", "0.05", "--graceful-shutdown", "60")
    wait_for(queue, task_id, TaskStatus.RUNNING)
    worker.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    worker.send_signal(signal.SIGTERM)
    code, err = finish(worker, timeout=20)
    assert code == 0, err
    task = queue.get_task(task_id)
    assert task is not None and task.status is TaskStatus.PENDING and task.attempts == 0
    assert "handed 1 unfinished tasks back" in err


def test_ctrl_c_exits_130(app_dir: Path, queue: SyncTaskQueue) -> None:
    task_id = queue.enqueue("cliapp:add", 1, 1)
    worker = start_worker(app_dir, "--poll-interval", "0.05")
    assert queue.get_result(task_id, timeout=30).value == 2
    worker.send_signal(signal.SIGINT)
    code, err = finish(worker)
    assert code == 130, err
    assert "stopped by Ctrl-C" in err


def test_max_tasks_and_duration_stop_the_worker(app_dir: Path, queue: SyncTaskQueue) -> None:
    ids = [queue.enqueue("cliapp:add", i, i) for i in range(3)]
    code, err = finish(start_worker(app_dir, "--max-tasks", "2", "-c", "1"))
    assert code == 0, err
    statuses = [queue.get_task(t).status for t in ids]  # type: ignore[union-attr]
    assert statuses.count(TaskStatus.SUCCEEDED) == 2
    assert statuses.count(TaskStatus.PENDING) == 1
    began = time.monotonic()
    code, err = finish(start_worker(app_dir, "--duration", "0.3", "-q", "elsewhere"))
    assert code == 0, err
    assert time.monotonic() - began < 20
    assert queue.get_task(ids[2]).status is TaskStatus.PENDING  # type: ignore[union-attr]


def test_json_logs_carry_task_fields(app_dir: Path, queue: SyncTaskQueue) -> None:
    ok = queue.enqueue("cliapp:add", 2, 2)
    bad = queue.enqueue("cliapp:boom")
    code, err = finish(start_worker(app_dir, "--max-tasks", "2", "--log-format", "json",
                                    "--log-tasks"))  # fmt: skip
    assert code == 0, err
    records = [json.loads(line) for line in err.splitlines() if line.strip()]
    succeeded = next(r for r in records if r.get("task_id") == ok and "succeeded" in r["message"])
    assert succeeded["function"] == "cliapp:add" and succeeded["attempt"] == 1
    assert succeeded["duration"] >= 0 and succeeded["level"] == "INFO"
    failed = next(r for r in records if r.get("task_id") == bad and "failed" in r["message"])
    assert failed["level"] == "ERROR" and "RuntimeError: boom" in failed["traceback"]
    assert failed["function"] == "cliapp:boom" and "duration" in failed
    stopped = records[-1]
    assert stopped["logger"] == "sitq.cli" and stopped["metrics"]["tasks_processed"] == 2


def test_worker_uses_the_process_executor(app_dir: Path, queue: SyncTaskQueue) -> None:
    task_id = queue.enqueue("cliapp:add", 20, 22)
    code, err = finish(start_worker(app_dir, "--max-tasks", "1", "-t", "process", "-c", "1"))
    assert code == 0, err
    assert queue.get_result(task_id, timeout=0).value == 42


# -- configuration precedence ----------------------------------------------------------------------


def banner(app_dir: Path, *args: str, **env: str) -> str:
    code, err = finish(start_worker(app_dir, "--duration", "0", *args, **env))
    assert code == 0, err
    return err


def test_settings_precedence_cli_env_pyproject(app_dir: Path) -> None:
    (app_dir / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [project]
            name = "someone-else"

            [tool.sitq]
            concurrency = 3
            queues = ["emails", "default"]
            graceful-shutdown = 7
            """
        )
    )
    err = banner(app_dir)
    assert "async, 3 at once" in err and "emails, default" in err and "up to 7 s" in err
    err = banner(app_dir, SITQ_CONCURRENCY="5", SITQ_QUEUES="reports")
    assert "async, 5 at once" in err and "reports" in err and "up to 7 s" in err
    err = banner(app_dir, "-c", "9", SITQ_CONCURRENCY="5")
    assert "async, 9 at once" in err


def test_app_from_pyproject_in_a_parent_folder(app_dir: Path, queue: SyncTaskQueue) -> None:
    (app_dir / "pyproject.toml").write_text('[tool.sitq]\napp = "cliapp:queue"\n')
    sub = app_dir / "sub"
    sub.mkdir()
    task_id = queue.enqueue("cliapp:add", 1, 1)
    env = sitq_env(SITQ_BACKEND_URL=url_of(app_dir), PYTHONPATH=str(app_dir))
    shown = data(sitq("inspect", task_id, "--json", cwd=sub, env=env))
    assert shown["args"] == ["1", "1"]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("concurency = 3", "concurency is not a sitq setting; choose one of: app"),
        ('concurrency = "three"', "concurrency must be an int >= 1, got 'three'"),
        ("queues = [1, 2]", "queues must be a list of queue names"),
        ("log_tasks = 1", "log_tasks must be a bool"),
        ("lease_seconds = inf", "lease_seconds must be a number of seconds > 0 and finite"),
        ('worker_type = "fiber"', "[tool.sitq] unknown worker_type 'fiber'; choose one of"),
    ],
)
def test_bad_pyproject_settings_are_named(app_dir: Path, table: str, message: str) -> None:
    (app_dir / "pyproject.toml").write_text(f"[tool.sitq]\n{table}\n")
    result = sitq("worker", "cliapp:queue", "--duration", "0", cwd=app_dir)
    assert result.returncode == 1
    assert str(app_dir / "pyproject.toml") in result.stderr and message in result.stderr


def test_bad_environment_values_are_named(app_dir: Path) -> None:
    result = sitq("worker", "cliapp:queue", cwd=app_dir, env=sitq_env(SITQ_CONCURRENCY="x"))
    assert result.returncode == 2 and "SITQ_CONCURRENCY" in result.stderr
