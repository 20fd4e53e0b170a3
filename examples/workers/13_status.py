"""Worker status: running or not, counters, the current task, uptime.

From the workers guide, section "Monitoring and Logging / Worker Status".
"""

import time

import sitq
from sitq import SQLiteBackend, SyncTaskQueue


def work(x):
    time.sleep(0.2)
    if x < 0:
        raise ValueError("negative")
    return x


if __name__ == "__main__":
    queue = SyncTaskQueue(SQLiteBackend(":memory:"))
    worker = sitq.Worker(queue, max_workers=1, log_errors=False)
    ids = [queue.enqueue(work, 1), queue.enqueue(work, -1), queue.enqueue(work, 2)]
    worker.start()
    while worker.get_status().current_task_id is None:
        time.sleep(0.01)

    # Check worker status
    status = worker.get_status()
    print(f"Worker running: {status.is_running}")
    print(f"Current task is the first one: {status.current_task_id == ids[0]}")

    for task_id in ids:
        queue.get_result(task_id, timeout=10)
    worker.stop()

    status = worker.get_status()
    print(f"Worker running: {status.is_running}")
    print(f"Tasks processed: {status.tasks_processed}")
    print(f"Tasks failed: {status.tasks_failed}")
    print(f"Current task: {status.current_task_id}")
    print(f"Uptime: {status.uptime:.1f} s")
    queue.close()
