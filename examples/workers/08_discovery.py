"""Automatic task discovery: a started worker finds queued tasks by itself.

From the workers guide, section "Task Processing / Automatic Task Discovery". Tasks run in
order of priority; the worker stops when asked.
"""

import sitq
from sitq import SQLiteBackend, SyncTaskQueue

order = []  # filled by the on_success callback, which runs in this process


def record(label):
    return label


if __name__ == "__main__":
    queue = SyncTaskQueue(SQLiteBackend(":memory:"))
    ids = [
        queue.enqueue(record, "low", priority=0),
        queue.enqueue(record, "high", priority=10),
        queue.enqueue(record, "medium", priority=5),
    ]

    # Worker automatically finds and processes queued tasks
    worker = sitq.Worker(
        queue,
        poll_interval=0.5,
        max_workers=1,
        on_success=lambda task_id, value: order.append(value),
    )

    # Start continuous processing
    worker.start()

    # Worker will:
    # 1. Poll queue for available tasks
    # 2. Process tasks in order of priority
    # 3. Handle errors and retries
    # 4. Continue until stopped
    for task_id in ids:
        queue.get_result(task_id, timeout=10)
    late = queue.enqueue(record, "enqueued while running")
    queue.get_result(late, timeout=10)
    worker.stop()
    print(f"Run order: {', '.join(order)}")
    queue.close()
