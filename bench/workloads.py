"""The task functions every subject runs: no-ops, importable by the worker processes."""

from __future__ import annotations

import time


async def async_noop() -> None:
    """Does nothing, on the event loop."""


def sync_noop() -> None:
    """Does nothing, in a thread."""


async def stamp() -> float:
    """Returns when it started (``time.time()``), for pickup latency."""
    return time.time()
