"""Huey instances for the comparison, built the same way in the bench and its consumer process.

Huey finds a task by its module and name, so the consumer process imports this module and
calls `make_huey` with the same arguments as the bench.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import workloads
from huey import MemoryHuey, SqliteHuey
from huey.storage import SqliteStorage


class NormalSyncStorage(SqliteStorage):
    """SqliteHuey's storage with ``synchronous=NORMAL`` (Huey can only choose FULL or OFF)."""

    def _create_connection(self) -> Any:
        conn = super()._create_connection()
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn


class HueyApp(NamedTuple):
    """A Huey instance and its tasks: ``noop``, ``stamp`` (returns when it started) and
    ``cpu`` (`workloads.cpu_1ms`)."""

    huey: Any
    noop: Any
    stamp: Any
    cpu: Any


def make_huey(kind: str, path: str | None = None) -> HueyApp:
    """Huey and its tasks for ``kind`` ``memory``, ``sqlite`` or ``sqlite-normal``."""
    if kind == "memory":
        huey: Any = MemoryHuey("bench", immediate=False)
    elif kind == "sqlite":
        huey = SqliteHuey("bench", filename=path)
    elif kind == "sqlite-normal":
        huey = SqliteHuey("bench", filename=path, storage_class=NormalSyncStorage)
    else:
        raise ValueError(f"unknown huey kind {kind!r}")

    @huey.task()
    def noop() -> None:
        """Does nothing."""

    @huey.task()
    def stamp() -> float:
        """Returns when it started."""
        return time.time()

    @huey.task()
    def cpu() -> int:
        """About 1 ms of CPU."""
        return workloads.cpu_1ms()

    return HueyApp(huey, noop, stamp, cpu)
