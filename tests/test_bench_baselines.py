"""The raw sqlite3 floors of the bench (``bench/baseline_sqlite.py``) run at a tiny size on
sitq's own schema: its INSERT names every column an enqueue writes, so a column added to the
schema cannot quietly break the rows the headline compares against."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from bench_support import bench_module

pytestmark = [pytest.mark.needs_sqlite]


def _baselines() -> ModuleType:
    return bench_module("baseline_sqlite")


@pytest.mark.parametrize(
    "subject", ["enqueue_each", "enqueue_batch", "process_each", "process_batched"]
)
def test_each_raw_sqlite_floor_runs_on_sitqs_schema(subject: str, tmp_path: Path) -> None:
    sample = getattr(_baselines(), subject)(str(tmp_path), 50)
    assert sample.ops == 50 and sample.seconds > 0


def test_the_raw_backlog_floor_drains_from_a_deeper_queue(tmp_path: Path) -> None:
    sample = _baselines().process_backlog(str(tmp_path), 300, 100)
    assert sample.ops == 100 and sample.seconds > 0
