"""The README's promises: its two set-up commands, its code, and the main job it points to.

* the first two ``bash`` blocks are the main-job command and the test command, each one line,
  and ``.ci/run`` runs the test command verbatim;
* every ``python`` block runs, in a fresh folder;
* ``examples/main_job.py`` runs (smaller) and reports what it did.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_postgres]

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def blocks(language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(README.read_text()) if lang == language]


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITQ_")}
    env.pop("PYTHONPATH", None)
    return env


def test_the_readme_opens_with_the_two_commands() -> None:
    main_job, test_suite = blocks("bash")[:2]
    for command in (main_job, test_suite):
        assert command.count("\n") == 1, f"not one line: {command!r}"
        assert command.startswith("python3 -m venv .venv && .venv/bin/pip install ")
    assert "./sitq-core" in main_job and "./sitq-sqlite" in main_job
    assert test_suite.strip().endswith(".venv/bin/pytest")
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_suite.strip() in ci.splitlines(), ".ci/run must run the README's test command"
    assert os.access(ROOT / ".ci" / "run", os.X_OK)


def test_the_requirements_install_every_test_dependency() -> None:
    requirements = (ROOT / "requirements-dev.txt").read_text()
    packages = (
        "./sitq-core",
        "./sitq-sqlite",
        "./sitq-memory",
        "./sitq-postgres",
        "./sitq-prometheus",
    )
    tools = ("pytest", "pytest-timeout", "hypothesis", "hatchling", "docs/requirements.txt")
    for needed in packages + tools:
        assert needed in requirements, needed


@pytest.mark.parametrize("number", range(len(blocks("python"))))
def test_readme_python_blocks_run(number: int, tmp_path: Path) -> None:
    code = blocks("python")[number]
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"README python block {number}:\n{code}\n{done.stderr}"


def test_the_quickstart_prints_what_it_says(tmp_path: Path) -> None:
    outputs = []
    for code in blocks("python")[:2]:
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, env=environment(), capture_output=True,
            text=True, timeout=60, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        outputs.append(done.stdout.strip())
    assert outputs == ["5", "HELLO"]


def test_the_main_job_runs_and_reports(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "main_job.py"), "--tasks", "400"],
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "enqueued 400 tasks" in out
    assert re.search(r"^done:\s+398$", out, re.MULTILINE)  # every 200th is broken for good
    assert re.search(r"^failed:\s+2 ", out, re.MULTILINE)
    assert re.search(r"^retried:\s+\d+", out, re.MULTILINE)
    assert re.search(r"^tasks/s:\s+[\d,]+", out, re.MULTILINE)
    assert "main job: OK" in out
    assert done.stderr == "", "expected failures are reported in the summary, not logged"
    assert list(tmp_path.iterdir()) == [], "the main job works in a temporary folder"
