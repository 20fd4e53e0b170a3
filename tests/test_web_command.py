"""``sitq web``: added by sitq-web through the ``sitq_commands`` hook, safe by default, and
serving the dashboard from a real process."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from subprocess_env import clean_environment

import sitq
from sitq.cli import cli

pytestmark = [pytest.mark.needs_web, pytest.mark.needs_sqlite]

SUBPROCESS_TIMEOUT = 120


def test_the_plugin_adds_the_web_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "web" in result.output.split()
    result = CliRunner().invoke(cli, ["web", "--help"])
    assert result.exit_code == 0 and "--read-only" in result.output


def test_listening_beyond_this_machine_without_a_token_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["web", f"sqlite:///{tmp_path}/t.db", "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert "--token" in result.output and "auth=" in result.output


def test_sitq_web_serves_the_dashboard(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tasks.db'}"

    async def seed() -> None:
        async with sitq.TaskQueue(url) as queue:
            await queue.enqueue("app:job", queue="reports")

    asyncio.run(seed())
    process = subprocess.Popen(
        [sys.executable, "-m", "sitq", "web", url, "--port", "0", "--token", "t0k"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_environment(),
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("sitq web: http://127.0.0.1:"), line + _stderr(process)
        address = line.split()[2]
        request = urllib.request.Request(address, headers={"Authorization": "Bearer t0k"})
        with urllib.request.urlopen(request, timeout=SUBPROCESS_TIMEOUT) as response:
            html = response.read().decode()
        assert 'data-queue="reports"' in html
    finally:
        process.terminate()
        process.wait(timeout=SUBPROCESS_TIMEOUT)


def _stderr(process: subprocess.Popen[str]) -> str:
    process.kill()
    _, err = process.communicate(timeout=SUBPROCESS_TIMEOUT)
    return err
