"""`Session`: a worker's executor, plugin lifecycle and heartbeat, shared while in use.

A run (`Worker.start`) and each one-off call (`Worker.process_task`) open a session. Sessions
nest and overlap (``process_task`` calls running at once, or during a run): the first one in
connects the backend, starts the executor and the heartbeat; the last one out stops them.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from ..executors import make_executor
from ..heartbeat import LeaseKeeper

if TYPE_CHECKING:
    from .worker import Worker


class Session:
    """``async with Session(worker):`` holds the worker's executor for the block."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    async def __aenter__(self) -> None:
        w = self.worker
        await w._queue.connect()
        w._progress.bind(asyncio.get_running_loop())
        w._sessions += 1
        if w._executor is not None:
            return
        w._lifecycle = w.plugins.lifecycle()
        executor = make_executor(
            w.worker_type, w.max_workers, max_memory_mb=w.limits.max_memory_mb, plugins=w.plugins
        )
        try:
            await executor.start()
        except BaseException:
            w._sessions -= 1
            with contextlib.suppress(Exception):
                await executor.close()
            raise
        w._executor = executor
        w._keeper = LeaseKeeper(
            w.backend,
            w._leases,
            lease_seconds=w.lease_seconds,
            interval=w.lease_seconds / 3,
            on_lost=w._leases_lost,
            logger=w.logger,
            worker_id=w.worker_id,
        )
        w._keeper.start()

    async def __aexit__(self, *exc: object) -> None:
        w = self.worker
        w._sessions -= 1
        if w._sessions > 0:  # a concurrent run or call still uses the executor
            return
        if w._keeper is not None:
            keeper, w._keeper = w._keeper, None
            await keeper.stop()
        if w._executor is not None:
            executor, w._executor = w._executor, None
            await executor.close()


__all__ = ["Session"]
