"""Starting and stopping a worker from async code.

From the workers guide, section "Worker Lifecycle / Starting and Stopping Workers".
"""

import asyncio

from sitq import SQLiteBackend, TaskQueue, Worker


async def greet(name):
    return f"Hello, {name}!"


async def main():
    queue = TaskQueue(backend=SQLiteBackend(":memory:"))
    worker = Worker(queue.backend)
    task_id = await queue.enqueue(greet, "workers")

    try:
        # Start worker in background
        worker_task = asyncio.create_task(worker.start())
        await asyncio.sleep(0.5)  # Let worker process
        print(f"Worker running: {worker.is_running}")
    finally:
        await worker.stop()
        await worker_task

    print(f"Worker running: {worker.is_running}")
    print((await queue.get_result(task_id, timeout=0)).value)
    await queue.close()


if __name__ == "__main__":
    asyncio.run(main())
