"""Worker options reach the worker from the ``sitq worker`` command line, ``SITQ_*`` variables
and ``[tool.sitq]``, in that order of precedence, and are checked by WorkerConfig's rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.needs_sqlite]

APP = """
import json
import os

from sitq import TaskQueue
from sitq.hookspecs import hookimpl
from sitq.plugins import get_plugin_manager


class Spy:
    @hookimpl
    def sitq_worker_started(self, worker):
        with open(os.environ["SPY_FILE"], "w") as f:
            json.dump({k: v for k, v in vars(worker.config).items() if k in KEYS}, f)


KEYS = {"lease_seconds", "max_attempts", "retry_backoff", "max_memory_mb", "max_workers",
        "queues", "retry_jitter", "continue_on_error", "result_ttl"}
queue = TaskQueue(plugins=get_plugin_manager().with_plugins(Spy()))
"""


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "spyapp.py").write_text(APP)
    return tmp_path


def run_worker(app_dir: Path, *args: str, **env: str) -> tuple[int, str, dict[str, Any]]:
    """Run ``sitq worker spyapp:queue --duration 0 ARGS``; return its exit code, stderr and
    the config the worker started with."""
    spy = app_dir / "seen.json"
    spy.unlink(missing_ok=True)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SITQ_")}
    environ.update(
        SPY_FILE=str(spy), SITQ_BACKEND_URL=f"sqlite:///{app_dir / 'q.db'}", COLUMNS="200"
    )
    environ.update(env)
    result = subprocess.run(
        [sys.executable, "-m", "sitq", "worker", "spyapp:queue", "--duration", "0", *args],
        cwd=app_dir,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    seen = json.loads(spy.read_text()) if spy.exists() else {}
    return result.returncode, result.stderr, seen


def test_lease_seconds_from_the_command_line_env_and_pyproject(app_dir: Path) -> None:
    code, err, seen = run_worker(app_dir)
    assert code == 0, err
    assert seen["lease_seconds"] == 30.0  # the default

    (app_dir / "pyproject.toml").write_text("[tool.sitq]\nlease-seconds = 45\n")
    assert run_worker(app_dir)[2]["lease_seconds"] == 45.0
    assert run_worker(app_dir, SITQ_LEASE_SECONDS="20")[2]["lease_seconds"] == 20.0
    code, err, seen = run_worker(app_dir, "--lease-seconds", "12", SITQ_LEASE_SECONDS="20")
    assert code == 0, err
    assert seen["lease_seconds"] == 12.0


def test_more_worker_options_reach_the_worker(app_dir: Path) -> None:
    (app_dir / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [tool.sitq]
            max_attempts = 3
            queues = ["emails", "default"]
            result_ttl = 3600
            """
        )
    )
    code, err, seen = run_worker(
        app_dir,
        "--retry-backoff",
        "2",
        "--max-memory-mb",
        "4096",
        "-c",
        "4",
        "--retry-jitter",
        "0.25",
        "--no-continue-on-error",
        SITQ_MAX_ATTEMPTS="7",
    )
    assert code == 0, err
    assert seen == {
        "lease_seconds": 30.0,
        "max_attempts": 7,
        "retry_backoff": 2.0,
        "max_memory_mb": 4096.0,
        "max_workers": 4,
        "queues": ["emails", "default"],
        "retry_jitter": 0.25,
        "continue_on_error": False,
        "result_ttl": 3600.0,
    }


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("--lease-seconds", "nan"), {}, "lease_seconds must be a number of seconds > 0"),
        (("--lease-seconds", "inf"), {}, "and finite, got inf"),
        ((), {"SITQ_MAX_ATTEMPTS": "0"}, "max_attempts must be an int >= 1"),
        (("--retry-backoff", "0.5"), {}, "retry_backoff must be a finite number >= 1"),
        (("--max-cpu-percent", "101"), {}, "max_cpu_percent must be a share"),
        (("-t", "fiber"), {}, "choose one of: async, process, thread"),
    ],
)
def test_bad_values_are_usage_errors(
    app_dir: Path, args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    code, err, seen = run_worker(app_dir, *args, **env)
    assert code == 2 and message in " ".join(err.split()), err
    assert not seen


def test_bad_pyproject_values_name_the_file_and_key(app_dir: Path) -> None:
    (app_dir / "pyproject.toml").write_text("[tool.sitq]\nlease_seconds = nan\n")
    code, err, _ = run_worker(app_dir)
    assert code == 1
    flat = " ".join(err.split())
    assert "[tool.sitq] lease_seconds must be a number of seconds > 0 and finite, got nan" in flat
