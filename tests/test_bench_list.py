"""The bench's command line lists its subjects without running any, and without the peers
it compares with installed (they come with bench/requirements.txt, never with the tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# bench/run.py reads sitq-sqlite's schema for its raw sqlite3 baseline
pytestmark = [pytest.mark.needs_sqlite]

RUN = Path(__file__).resolve().parents[1] / "bench" / "run.py"
#: The peers bench/run.py imports when a subject runs: blocked, so --list must not need them.
PEERS = ("huey", "celery", "dramatiq", "redis", "procrastinate")


def list_subjects(*args: str) -> list[str]:
    """``bench/run.py --list *args`` in a fresh interpreter with the peers unimportable."""
    blocked = "".join(f"sys.modules[{name!r}] = None; " for name in PEERS)
    code = (
        f"import runpy, sys; {blocked}sys.argv = [{str(RUN)!r}, '--list', *{list(args)!r}]; "
        f"runpy.run_path({str(RUN)!r}, run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_list_names_every_workload_of_the_speed_issue() -> None:
    keys = {line.split()[0] for line in list_subjects()}
    assert {
        "sitq.sqlite.enq_sync",
        "huey.sqlite-normal.enq",
        "pg.enq_sync",
        "celery.enq",
        "dramatiq.enq",
        "sitq.pool",
        "huey.pool",
        "pool.map",
        "sitq.memory.async.inline",
        "huey.memory.proc",
        "sitq.sqlite.lat.child",
        "celery.lat",
        "pg.lat",
        "sitq.backlog.deep",
        "raw.backlog.deep",
        "pg.drain",
        "procrastinate.drain",
    } <= keys


def test_only_narrows_the_list_and_says_which_service_a_subject_needs() -> None:
    lines = list_subjects("--only", "celery")
    assert [line.split()[0] for line in lines] == ["celery.enq", "celery.lat", "workflows.celery"]
    assert all(line.endswith("[needs redis]") for line in lines)


def test_quick_keeps_every_headline_row_and_leaves_the_chords_to_only() -> None:
    quick = {line.split()[0] for line in list_subjects("--quick")}
    headline = {
        "sitq.sqlite.enq_sync", "pg.enq_sync", "sitq.pool", "sitq.memory.async.inline",
        "sitq.sqlite.lat.child", "sitq.backlog.deep", "pg.drain", "limits.sqlite.idle",
        "limits.pg.none",
    }  # fmt: skip
    assert headline <= quick
    assert not any(key.startswith("workflows.") for key in quick)
    asked = [line.split()[0] for line in list_subjects("--quick", "--only", "workflows.sqlite")]
    assert asked == ["workflows.sqlite.enq", "workflows.sqlite.plain", "workflows.sqlite.join"]
