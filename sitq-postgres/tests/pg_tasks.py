"""Task functions the sitq-postgres tests enqueue; imported by name in worker processes.

`record` appends the task's number to a per-process log (``$SITQ_TEST_RUN_LOG_DIR``), one
unbuffered write per run, so a test can count how often each task really ran even when the
process is killed right after.
"""

from __future__ import annotations

import asyncio
import os

_fd: int | None = None


def _log() -> int:
    global _fd
    if _fd is None:
        folder = os.environ["SITQ_TEST_RUN_LOG_DIR"]
        path = os.path.join(folder, f"{os.getpid()}.log")
        _fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    return _fd


async def record(n: int, seconds: float = 0.0) -> int:
    """Note that task ``n`` started here, take ``seconds``; return ``n``."""
    os.write(_log(), b"%d\n" % n)
    if seconds:
        await asyncio.sleep(seconds)
    return n


def add(a: int, b: int) -> int:
    """A plain function task."""
    return a + b


async def noop() -> None:
    """Does nothing (benchmarks and latency checks)."""


def runs(folder: str) -> dict[int, int]:
    """How many times each task number ran, from every log in ``folder``."""
    counts: dict[int, int] = {}
    for name in os.listdir(folder):
        if name.endswith(".log"):
            with open(os.path.join(folder, name), "rb") as f:
                for line in f.read().split():
                    n = int(line)
                    counts[n] = counts.get(n, 0) + 1
    return counts
