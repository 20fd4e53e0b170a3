"""A worker process for test_sqlite_wakeups: polls only once a minute, so it can only notice
another process's enqueue in time through the WAL watch. Stops when its stdin closes."""

from __future__ import annotations

import asyncio
import sys

from sitq import TaskQueue, Worker
from sitq_sqlite import SQLiteBackend


async def main(path: str) -> None:
    async with TaskQueue(SQLiteBackend(path)) as queue:
        worker = Worker(queue, poll_interval=60.0)
        serving = asyncio.ensure_future(worker.start())
        await asyncio.sleep(0.2)  # it has claimed nothing and is waiting for work
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await worker.stop()
        await serving


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
