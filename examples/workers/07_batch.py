"""Processing several tasks at once with process_tasks.

From the workers guide, section "Task Processing / Batch Processing" (``tasks`` is defined
here: a list of `sitq.Task` objects).
"""

import sitq
from sitq import SQLiteBackend, SyncTaskQueue


def divide(a, b):
    return a / b


if __name__ == "__main__":
    queue = SyncTaskQueue(SQLiteBackend(":memory:"))
    worker = sitq.Worker(queue)
    tasks = [
        sitq.Task(function=divide, args=[10, 2]),
        sitq.Task(function=divide, args=[1, 0]),
        sitq.Task(function=divide, args=[9, 3]),
    ]

    # Process multiple tasks
    task_ids = [queue.enqueue(task) for task in tasks]
    results = worker.process_tasks(task_ids)

    for task_id, result in zip(task_ids, results, strict=True):
        if result.is_success:
            print(f"Task {task_id}: {result.value}")
        else:
            print(f"Task {task_id} failed: {result.error}")
    queue.close()
