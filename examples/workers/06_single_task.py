"""Processing one specific task with process_task.

From the workers guide, section "Task Processing / Single Task Processing".
"""

import sitq
from sitq import SQLiteBackend, SyncTaskQueue


def word_count(text):
    return len(text.split())


if __name__ == "__main__":
    queue = SyncTaskQueue(SQLiteBackend(":memory:"))
    worker = sitq.Worker(queue)
    task_id = queue.enqueue(word_count, "the quick brown fox")

    # Process a specific task
    result = worker.process_task(task_id)

    if result.is_success:
        print(f"Task succeeded: {result.value}")
    else:
        print(f"Task failed: {result.error}")
    queue.close()
