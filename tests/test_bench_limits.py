"""The flow-control bench subjects (``bench/run.py --only limits``) run to the end at a tiny
size: every mode stores its rules and tasks, a worker process drains them all."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.needs_sqlite]

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.parametrize("mode", ["none", "idle", "binding"])
def test_each_limits_subject_drains_every_task(mode: str, tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        subjects = importlib.import_module("limits_subjects")
    finally:
        sys.path.remove(str(BENCH))
    sample = subjects.sqlite_drain(str(tmp_path), mode=mode, n=200)
    assert sample.ops == 200 and sample.seconds > 0
