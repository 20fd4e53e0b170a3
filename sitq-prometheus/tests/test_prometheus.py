"""sitq-prometheus: in process on a private registry, and installed for real in a worker."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

import sitq
from sitq import SyncTaskQueue, Task, TaskQueue, Worker
from sitq.plugins import PluginManager
from sitq_prometheus import PrometheusMetrics

PROJECT = Path(__file__).parents[1]

_attempts: dict[int, int] = {}


async def ok(n: int) -> int:
    return n


async def flaky(n: int) -> int:
    _attempts[n] = _attempts.get(n, 0) + 1
    if _attempts[n] == 1:
        raise ConnectionError("first attempt fails")
    return n


async def broken() -> None:
    raise ValueError("always fails")


def value(metrics: PrometheusMetrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_counts_every_lifecycle_event() -> None:
    metrics = PrometheusMetrics(registry=CollectorRegistry())
    pm = PluginManager()
    pm.register(metrics)

    async def main() -> None:
        async with TaskQueue("memory://", plugins=pm) as queue:
            await queue.enqueue_many(
                [Task(ok, args=(i,)) for i in range(3)]
                + [Task(flaky, args=(7,), max_retries=1), Task(broken, queue="bad")]
            )
            worker = Worker(queue, retry_delay=0.0, poll_interval=0.01)
            ids = [r.id for r in await queue.backend.list_tasks(limit=None)]
            results = await worker.process_tasks_async(ids)
            assert [str(r.status) for r in results] == ["succeeded"] * 4 + ["failed"]

    import asyncio

    asyncio.run(main())
    here = __name__
    labels = {"function": f"{here}:ok", "queue": "default"}
    assert value(metrics, "sitq_tasks_enqueued_total", **labels) == 3
    assert value(metrics, "sitq_tasks_started_total", **labels) == 3
    assert value(metrics, "sitq_tasks_succeeded_total", **labels) == 3
    assert value(metrics, "sitq_task_duration_seconds_count", outcome="succeeded", **labels) == 3
    flaky_labels = {"function": f"{here}:flaky", "queue": "default"}
    assert value(metrics, "sitq_tasks_started_total", **flaky_labels) == 2
    assert value(metrics, "sitq_tasks_retried_total", **flaky_labels) == 1
    assert value(metrics, "sitq_tasks_succeeded_total", **flaky_labels) == 1
    assert value(metrics, "sitq_tasks_failed_total", **flaky_labels) == 0
    assert (
        value(metrics, "sitq_task_duration_seconds_count", outcome="retried", **flaky_labels) == 1
    )
    broken_labels = {"function": f"{here}:broken", "queue": "bad"}
    assert value(metrics, "sitq_tasks_failed_total", **broken_labels) == 1
    assert (
        value(metrics, "sitq_task_duration_seconds_count", outcome="failed", **broken_labels) == 1
    )
    assert value(metrics, "sitq_tasks_running", queue="default") == 0
    assert value(metrics, "sitq_tasks_running", queue="bad") == 0


def test_counts_schedule_fires_and_skips() -> None:
    metrics = PrometheusMetrics(registry=CollectorRegistry())
    queue = SyncTaskQueue("memory://")

    @queue.periodic(every=timedelta(seconds=10), name="tick")
    def tick() -> None: ...

    schedule = queue.schedules["tick"]
    now = datetime.now(timezone.utc)
    metrics.sitq_schedule_fired(schedule, now, "t1")
    metrics.sitq_schedule_fired(schedule, now, "t2")
    metrics.sitq_schedule_skipped(schedule, now, "missed by 12 min; catch_up='none'")
    assert value(metrics, "sitq_schedule_fires_total", schedule="tick", outcome="fired") == 2
    assert value(metrics, "sitq_schedule_fires_total", schedule="tick", outcome="skipped") == 1
    queue.close()


def test_it_is_a_hook_plugin_of_documented_hooks() -> None:
    from sitq import hookspecs

    pm = PluginManager(autoload=False, plugins=[PrometheusMetrics(registry=CollectorRegistry())])
    (info,) = [p for p in pm.list_plugins() if p.distribution != "sitq-core"]  # not built-ins
    assert set(info.hooks) == set(hookspecs.LIFECYCLE_HOOKS)
    assert sitq.hookimpl  # the marker the plugin uses


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sitq-prometheus built and installed with pip into a folder of its own."""
    target = tmp_path_factory.mktemp("prometheus") / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(PROJECT)],
        check=True,
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    return target


def env_with(path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITQ_")}
    env["PYTHONPATH"] = str(path)
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_installed_plugin_is_listed(installed: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sitq", "plugins", "--json"],
        cwd=tmp_path,
        env=env_with(installed),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)["plugins"]}
    assert plugins["prometheus"]["distribution"] == "sitq-prometheus"
    assert plugins["prometheus"]["version"] == "0.1.0"
    assert "sitq_task_succeeded" in plugins["prometheus"]["hooks"]


def test_a_worker_serves_metrics(installed: Path, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        "from sitq import TaskQueue\nqueue = TaskQueue()\n\ndef double(x):\n    return 2 * x\n"
    )
    url = f"sqlite:///{tmp_path / 'tasks.db'}"
    port = free_port()
    worker = subprocess.Popen(
        [sys.executable, "-m", "sitq", "worker", "app:queue", "--poll-interval", "0.05"],
        cwd=tmp_path,
        env=env_with(installed, SITQ_BACKEND_URL=url, SITQ_PROMETHEUS_PORT=str(port)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with SyncTaskQueue(url) as queue:
            ids = [queue.enqueue("app:double", i) for i in range(4)]
            assert [queue.get_result(t, timeout=30).value for t in ids] == [0, 2, 4, 6]
        page = ""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    page = r.read().decode()
                if 'sitq_tasks_succeeded_total{function="app:double",queue="default"} 4.0' in page:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        assert 'sitq_tasks_succeeded_total{function="app:double",queue="default"} 4.0' in page
        assert "sitq_task_duration_seconds_bucket" in page
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            _, err = worker.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            raise
    assert worker.returncode == 0, err
