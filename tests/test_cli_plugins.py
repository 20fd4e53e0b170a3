"""``sitq plugins`` and plugin loading, with third-party plugin distributions really installed.

Each test distribution is built and installed with pip into its own folder (``--target``),
then put on ``PYTHONPATH`` of a ``sitq`` subprocess, so the dev environment never sees it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from sitq import SyncTaskQueue

pytestmark = [pytest.mark.needs_sqlite]

HELLO = '''
"""A third-party sitq plugin: writes a line to $HELLO_LOG for each hook call."""
import os

import sitq


def _log(line):
    with open(os.environ["HELLO_LOG"], "a") as f:
        f.write(line + "\\n")


@sitq.hookimpl
def sitq_worker_started(worker):
    _log("started " + worker.worker_id)


@sitq.hookimpl
def sitq_task_succeeded(task, result):
    _log(f"succeeded {task.function_name} {result.value}")
'''


def install(root: Path, name: str, module: str, source: str, version: str = "1.2.3") -> Path:
    """Build and install a one-module distribution with a ``sitq`` entry point; return the
    folder it was installed into."""
    project = root / f"{name}-src"
    project.mkdir()
    (project / f"{module}.py").write_text(source)
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["hatchling"]
            build-backend = "hatchling.build"

            [project]
            name = "{name}"
            version = "{version}"
            dependencies = ["sitq-core"]

            [project.entry-points.sitq]
            {module.removeprefix("sitq_")} = "{module}"

            [tool.hatch.build.targets.wheel]
            include = ["{module}.py"]
            """
        )
    )
    target = root / f"{name}-installed"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(project)],
        check=True,
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    return target


@pytest.fixture(scope="module")
def hello(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the ``sitq-hello`` distribution is installed."""
    return install(tmp_path_factory.mktemp("dists"), "sitq-hello", "sitq_hello", HELLO)


def run(
    *args: str, cwd: Path, path: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """``python -m sitq ARGS`` with ``path`` on PYTHONPATH and ``env`` set."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SITQ_")}
    environ.update(env, COLUMNS="200")
    if path is not None:
        environ["PYTHONPATH"] = str(path)
    return subprocess.run(
        [sys.executable, "-m", "sitq", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def listing(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_lists_a_third_party_plugin(hello: Path, tmp_path: Path) -> None:
    found = listing(run("plugins", "--json", cwd=tmp_path, path=hello))
    plugins = {p["name"]: p for p in found["plugins"]}
    assert plugins["hello"] == {
        "name": "hello",
        "distribution": "sitq-hello",
        "version": "1.2.3",
        "hooks": ["sitq_task_succeeded", "sitq_worker_started"],
    }
    assert plugins["sqlite"]["distribution"] == "sitq-sqlite"
    assert plugins["sitq.serializers"]["hooks"] == ["sitq_serializers"]
    assert plugins["sitq.executors"]["hooks"] == ["sitq_executors"]
    assert found["backends"]["sqlite"] == "sitq-sqlite"
    assert "cloudpickle" in found["serializers"]
    assert found["autoload"] is True and found["allowed"] is None
    table = run("plugins", cwd=tmp_path, path=hello)
    assert table.returncode == 0
    assert "sitq-hello" in table.stdout and "1.2.3" in table.stdout


def test_plugin_allow_list(hello: Path, tmp_path: Path) -> None:
    found = listing(run("plugins", "--json", cwd=tmp_path, path=hello, SITQ_PLUGINS="hello"))
    assert [p["name"] for p in found["plugins"]] == ["sitq.serializers", "sitq.executors", "hello"]
    assert found["backends"] == {} and found["allowed"] == ["hello"]
    text = run("plugins", cwd=tmp_path, path=hello, SITQ_PLUGINS="hello")
    assert "SITQ_PLUGINS=hello: only these were loaded" in text.stdout


def test_autoload_can_be_disabled(hello: Path, tmp_path: Path) -> None:
    env = {"SITQ_DISABLE_PLUGIN_AUTOLOAD": "1"}
    found = listing(run("plugins", "--json", cwd=tmp_path, path=hello, **env))
    assert [p["name"] for p in found["plugins"]] == ["sitq.serializers", "sitq.executors"]
    assert found["autoload"] is False
    text = run("plugins", cwd=tmp_path, path=hello, **env)
    assert "SITQ_DISABLE_PLUGIN_AUTOLOAD is set" in text.stdout
    (tmp_path / "app.py").write_text("from sitq import TaskQueue\nqueue = TaskQueue()\n")
    worker = run("worker", "app:queue", cwd=tmp_path, path=hello, **env)
    assert worker.returncode == 1
    assert "pip install sitq-sqlite" in worker.stderr
    assert "autoloading is disabled" in worker.stderr


def test_a_broken_plugin_is_named(tmp_path: Path) -> None:
    broken = install(tmp_path, "sitq-broken", "sitq_broken", "import no_such_dependency\n")
    result = run("plugins", cwd=tmp_path, path=broken)
    assert result.returncode == 1
    assert "'broken'" in result.stderr and "SITQ_DISABLE_PLUGIN_AUTOLOAD" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_worker_calls_the_installed_plugin(hello: Path, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        "from sitq import TaskQueue\nqueue = TaskQueue()\n\ndef add(a, b):\n    return a + b\n"
    )
    url = f"sqlite:///{tmp_path / 'tasks.db'}"
    with SyncTaskQueue(url) as queue:
        queue.enqueue("app:add", 2, 3)
    log = tmp_path / "hello.log"
    result = run("worker", "app:queue", "--max-tasks", "1", cwd=tmp_path, path=hello,
                 SITQ_BACKEND_URL=url, HELLO_LOG=str(log))  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = log.read_text().splitlines()
    assert lines[0].startswith("started ") and lines[1] == "succeeded app:add 5"
    assert "hello" in result.stderr  # the banner lists the plugins loaded
