"""Shared pieces of the worker tests: backends, task functions, bounded waits.

Task functions live here, at module level, so child processes of process workers can import
them. The module holds no tests of its own beyond a check of the helpers.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sitq import TaskStatus
from sitq.backend import Backend
from sitq_memory import MemoryBackend
from sitq_sqlite import SQLiteBackend

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_memory]

BACKENDS = ["sqlite", "memory"]


def make_backend(kind: str, tmp_path: Path) -> Backend:
    """A fresh backend: a real SQLite file under ``tmp_path``, or a private memory store."""
    if kind == "sqlite":
        return SQLiteBackend(tmp_path / "tasks.db")
    return MemoryBackend()


def backend_fixture() -> Any:
    """A ``backend`` fixture for a test module (``backend = backend_fixture()``): each test
    that asks for it runs on a SQLite file and on the memory backend."""

    @pytest.fixture(params=BACKENDS)
    def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
        return make_backend(request.param, tmp_path)

    return backend


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(0.01)


async def await_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """`wait_until` for coroutines."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        await asyncio.sleep(0.01)


async def statuses(backend: Backend, ids: list[str]) -> list[TaskStatus]:
    """The stored status of each task."""
    records = [await backend.get_task(i) for i in ids]
    return [r.status for r in records if r is not None]


# -- task functions ---------------------------------------------------------------------------


def add(a: int, b: int) -> int:
    """A quick sync task."""
    return a + b


async def async_add(a: int, b: int) -> int:
    """A quick coroutine task."""
    await asyncio.sleep(0)
    return a + b


def sleep_then(seconds: float, value: Any = None) -> Any:
    """Block for ``seconds`` (I/O-like), then return ``value``."""
    time.sleep(seconds)
    return value


async def async_sleep_then(seconds: float, value: Any = None) -> Any:
    """Sleep on the loop for ``seconds``, then return ``value``."""
    await asyncio.sleep(seconds)
    return value


def getpid_after(seconds: float) -> int:
    """Sleep, then return the pid of the process that ran the task."""
    time.sleep(seconds)
    return os.getpid()


def burn_cpu(iterations: int) -> tuple[int, int]:
    """CPU-bound work; returns (pid, checksum)."""
    total = 0
    for i in range(iterations):
        total = (total + i * i) % 1_000_003
    return os.getpid(), total


def burn_cpu_for(seconds: float) -> int:
    """CPU-bound work for ``seconds`` of wall time (however loaded the machine); returns the
    number of rounds done."""
    deadline = time.monotonic() + seconds
    rounds = 0
    while time.monotonic() < deadline:
        burn_cpu(10_000)
        rounds += 1
    return rounds


def fail(message: str = "boom") -> None:
    """Always raises ValueError."""
    raise ValueError(message)


def die() -> None:
    """Kill the process running the task at once (a crash)."""
    os._exit(3)


def thread_name() -> str:
    """Name of the thread running the task."""
    return threading.current_thread().name


#: Objects a task in this process looks up by name (a closure over a worker cannot be encoded).
REGISTRY: dict[str, Any] = {}


async def stop_registered_async(name: str) -> str:
    """Await ``stop()`` of the worker registered as ``name``, from inside one of its tasks."""
    await REGISTRY[name].stop()
    return "asked"


def stop_registered(name: str) -> str:
    """Call ``stop()`` of the worker registered as ``name`` from a task's thread."""
    REGISTRY[name].stop()
    return "requested"


def test_make_backend_gives_fresh_stores(tmp_path: Path) -> None:
    a, b = make_backend("memory", tmp_path), make_backend("memory", tmp_path)
    assert a.notify_key != b.notify_key
    assert isinstance(make_backend("sqlite", tmp_path), SQLiteBackend)
