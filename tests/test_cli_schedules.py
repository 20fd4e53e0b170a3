"""``sitq scheduler APP``, ``sitq schedules`` (list, pause, resume) and ``sitq inspect`` of a
task a schedule made, through the real command line."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.needs_sqlite]

APP = """
from datetime import datetime, timedelta

from sitq import TaskQueue

queue = TaskQueue("sqlite:///tasks.db")


@queue.periodic(every=timedelta(seconds=1), name="tick")
def tick(fired_at: datetime) -> str:
    return fired_at.isoformat()


@queue.periodic(cron="30 2 * * *", tz="Europe/Berlin", name="nightly")
def nightly() -> None: ...
"""

#: The same app after "tick" was deleted from the code.
APP_WITHOUT_TICK = (
    APP.split("@queue.periodic(every")[0] + APP.split("return fired_at.isoformat()")[1]
)


def env() -> dict[str, str]:
    found = {k: v for k, v in os.environ.items() if not k.startswith("SITQ_")}
    found["COLUMNS"] = "200"  # the tables unwrapped
    return found


def sitq(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sitq", *args],
        cwd=cwd,
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def data(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def fires_stored(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(db, timeout=10)
    try:
        return int(conn.execute("SELECT count(*) FROM sitq_tasks_schedule_fires").fetchone()[0])
    except sqlite3.OperationalError:  # the tables are not there yet
        return 0
    finally:
        conn.close()


def run_scheduler_until_it_fired(folder: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sitq", "scheduler", "app:queue"],
        cwd=folder,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while fires_stored(folder / "tasks.db") < 2:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the scheduler stored no fire within 60 s"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode == 0


def test_schedules_commands(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    run_scheduler_until_it_fired(tmp_path)

    rows = {
        row["name"]: row
        for row in data(sitq("schedules", "-A", "app:queue", "--json", cwd=tmp_path))
    }
    assert set(rows) == {"tick", "nightly"}
    tick = rows["tick"]
    assert (tick["task"], tick["when"], tick["tz"], tick["state"]) == (
        "tick",
        "every 0:00:01",
        "UTC",
        "active",
    )
    assert tick["last_fire"] is not None and tick["last_outcome"] == "pending"
    assert tick["next_fire"] > tick["last_fire"]
    nightly = rows["nightly"]
    assert (nightly["when"], nightly["tz"], nightly["last_fire"]) == (
        "cron 30 2 * * *",
        "Europe/Berlin",
        None,
    )
    assert nightly["next_fire"].endswith(("T02:30:00+01:00", "T02:30:00+02:00"))

    shown = sitq("inspect", tick["last_task_id"], "-A", "app:queue", cwd=tmp_path)
    assert shown.returncode == 0 and f"tick, fired at {tick['last_fire']}" in " ".join(
        shown.stdout.split()
    )

    assert (
        "schedule tick paused"
        in sitq("schedules", "pause", "tick", "-A", "app:queue", cwd=tmp_path).stdout
    )
    rows = {
        row["name"]: row
        for row in data(sitq("schedules", "-A", "app:queue", "--json", cwd=tmp_path))
    }
    assert rows["tick"]["state"] == "paused" and rows["tick"]["next_fire"] is None
    assert sitq("schedules", "resume", "tick", "-A", "app:queue", cwd=tmp_path).returncode == 0
    unknown = sitq("schedules", "pause", "nope", "-A", "app:queue", cwd=tmp_path)
    assert unknown.returncode == 1 and "no schedule named 'nope'" in unknown.stderr

    (tmp_path / "app.py").write_text(APP.replace('"30 2 * * *"', '"45 3 * * *"'))
    rows = {
        row["name"]: row
        for row in data(sitq("schedules", "-A", "app:queue", "--json", cwd=tmp_path))
    }
    assert rows["nightly"]["state"] == "changed", "the scheduler that ran has the old cron"
    assert rows["nightly"]["stored_definition"] == "cron 30 2 * * * (Europe/Berlin)"
    assert rows["nightly"]["when"] == "cron 45 3 * * *"

    (tmp_path / "app.py").write_text(APP_WITHOUT_TICK)
    rows = {
        row["name"]: row
        for row in data(sitq("schedules", "-A", "app:queue", "--json", cwd=tmp_path))
    }
    assert rows["tick"]["state"] == "removed" and rows["nightly"]["state"] == "active"
    assert rows["tick"]["stored_definition"] == "every 0:00:01"
    table = sitq("schedules", "-A", "app:queue", cwd=tmp_path)
    assert "removed from the code" in " ".join(table.stdout.split())


def test_scheduler_refuses_an_app_without_schedules(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP.split("@queue.periodic")[0])
    result = sitq("scheduler", "app:queue", cwd=tmp_path)
    assert result.returncode == 1 and "declares no schedules" in result.stderr
