"""The flow-control bench subjects (``bench/run.py --only limits``) run to the end at a tiny
size: every mode stores its rules and tasks, a worker process drains them all."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_support import bench_module

pytestmark = [pytest.mark.needs_sqlite]


@pytest.mark.parametrize("mode", ["none", "idle", "binding"])
def test_each_limits_subject_drains_every_task(mode: str, tmp_path: Path) -> None:
    subjects = bench_module("limits_subjects")
    sample = subjects.sqlite_drain(str(tmp_path), mode=mode, n=200)
    assert sample.ops == 200 and sample.seconds > 0
