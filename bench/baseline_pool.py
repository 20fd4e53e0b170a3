"""The floor under a process pool: a bare ``ProcessPoolExecutor(2).map`` of `workloads.cpu_1ms`
in a process of its own, timed once the pool is started and warm (as the queues' pools)."""

from __future__ import annotations

from harness import Sample
from procs import run_child


def pool_map(folder: str, n: int, workers: int, warm: int) -> Sample:
    """``n`` calls through ``ProcessPoolExecutor(workers).map`` after ``warm`` ones; CPU of the
    whole process tree."""
    report = run_child(["pool-map", str(n), str(workers), str(warm)], timeout=300)
    return Sample(int(report["ops"]), float(report["seconds"]), cpu_seconds=report["cpu"])
