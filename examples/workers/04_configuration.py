"""Basic worker configuration: polling, a task budget, timeouts, retries.

From the workers guide, section "Worker Configuration / Basic Configuration" (max_tasks is 3
instead of 100 so the example ends quickly).
"""

import sitq
from sitq import SQLiteBackend, SyncTaskQueue


def double(x):
    return 2 * x


if __name__ == "__main__":
    queue = SyncTaskQueue(SQLiteBackend(":memory:"))
    for i in range(5):
        queue.enqueue(double, i)

    # Worker with custom settings
    worker = sitq.Worker(
        queue=queue,
        poll_interval=1.0,  # Check for tasks every 1 second
        max_tasks=3,  # Process max 3 tasks then stop
        timeout=300.0,  # Task timeout in seconds
        retry_failed=True,  # Automatically retry failed tasks
    )
    worker.run()  # returns once 3 tasks are done

    counts = queue.counts()
    print(f"Succeeded: {counts[sitq.TaskStatus.SUCCEEDED]}")
    print(f"Still pending: {counts[sitq.TaskStatus.PENDING]}")
    queue.close()
