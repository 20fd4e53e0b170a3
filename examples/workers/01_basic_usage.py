"""Basic worker usage: enqueue a coroutine, run a worker in the same event loop.

From the workers guide, section "Basic Worker Usage".
"""

import asyncio

from sitq import SQLiteBackend, TaskQueue, Worker


async def process_data(data):
    """Process some data."""
    await asyncio.sleep(0.1)  # Simulate work
    return f"Processed: {data}"


async def main():
    # Create a queue and worker
    queue = TaskQueue(backend=SQLiteBackend(":memory:"))
    worker = Worker(queue.backend)

    # Enqueue a task
    task_id = await queue.enqueue(process_data, "test_data")
    print(f"Task enqueued: {task_id}")

    # Start worker to process the task
    try:
        worker_task = asyncio.create_task(worker.start())
        result = await queue.get_result(task_id, timeout=10)
        print(result.value)
    finally:
        await worker.stop()
        await worker_task
        await queue.close()


if __name__ == "__main__":
    asyncio.run(main())
