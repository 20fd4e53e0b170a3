"""The task functions every subject runs: no-ops, importable by the worker processes.

The declared no-ops are the same functions declared as tasks, on blueprints: each subject
registers them on its own fresh queue (a blueprint task enqueues to one open queue at a time).
"""

from __future__ import annotations

import time

from sitq import Blueprint, SyncBlueprint

#: ``async_task``: `async_noop` declared for a `TaskQueue`.
declared = Blueprint()
#: ``sync_task``: `sync_noop` declared for a `SyncTaskQueue`.
sync_declared = SyncBlueprint()


async def async_noop() -> None:
    """Does nothing, on the event loop."""


def sync_noop() -> None:
    """Does nothing, in a thread."""


async def stamp() -> float:
    """Returns when it started (``time.time()``), for pickup latency."""
    return time.time()


@declared.task()
async def async_task() -> None:
    """`async_noop`, declared."""


@sync_declared.task()
def sync_task() -> None:
    """`sync_noop`, declared."""


#: Loop turns of `cpu_1ms`: about 1 ms of CPU on the 2-core machine the bench was written on.
CPU_TURNS = 25_000


def cpu_1ms(_: object = None) -> int:
    """About 1 ms of pure-Python CPU work (a fixed amount, so load does not change it); the
    argument is ignored (``ProcessPoolExecutor.map`` hands one)."""
    total = 0
    for i in range(CPU_TURNS):
        total += i * i
    return total
