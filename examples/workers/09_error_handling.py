"""Task error handling: retries, then a final failure.

From the workers guide, section "Error Handling / Task Error Handling" (retry_delay is 0.1 s
instead of 1 s).
"""

import sitq
from sitq import SQLiteBackend, SyncTaskQueue


def risky_task(data):
    """Task that might fail."""
    if data == "fail":
        raise ValueError("Intentional failure")
    return f"Success: {data}"


if __name__ == "__main__":
    queue = SyncTaskQueue(SQLiteBackend(":memory:"))

    # Worker with error handling
    worker = sitq.Worker(
        queue=queue,
        max_retries=3,  # Retry failed tasks up to 3 times
        retry_delay=0.1,  # Wait 0.1 second between retries
        continue_on_error=True,  # Continue processing other tasks
        log_errors=False,  # (keep this example's output short)
    )

    # Process task that will fail
    task = sitq.Task(function=risky_task, args=["fail"])
    task_id = queue.enqueue(task)

    result = worker.process_task(task_id)
    print(f"Final result: {result.is_error}")
    print(f"Attempts: {result.attempts}, error: {result.error}")

    ok = worker.process_task(queue.enqueue(risky_task, "data"))
    print(ok.value)
    queue.close()
