"""Worker callbacks: on_error and on_success.

From the workers guide, section "Error Handling / Worker Error Callbacks".
"""

import sitq
from sitq import SQLiteBackend, SyncTaskQueue


def on_task_error(task_id, error, retry_count):
    """Called when a task fails."""
    print(f"Task {task_id} failed (attempt {retry_count}): {error}")


def on_task_success(task_id, result):
    """Called when a task succeeds."""
    print(f"Task {task_id} succeeded: {result}")


def parse_int(text):
    return int(text)


if __name__ == "__main__":
    queue = SyncTaskQueue(SQLiteBackend(":memory:"))

    # Worker with error callbacks
    worker = sitq.Worker(
        queue=queue,
        on_error=on_task_error,
        on_success=on_task_success,
        max_retries=1,
        retry_delay=0.05,
        log_errors=False,
    )
    worker.process_tasks([queue.enqueue(parse_int, "42"), queue.enqueue(parse_int, "forty")])
    queue.close()
