"""Worker pooling: several workers share one queue; each task runs once.

From the workers guide, section "Performance Optimization / Worker Pooling" (they run until
the queue is empty instead of for 60 seconds).
"""

import time
from collections import Counter

import sitq
from sitq import SQLiteBackend, SyncTaskQueue


def handle(n):
    time.sleep(0.01)
    return n


if __name__ == "__main__":
    queue = SyncTaskQueue(SQLiteBackend(":memory:"))
    task_ids = [queue.enqueue(handle, n) for n in range(40)]

    # Create multiple workers for parallel processing
    workers = [sitq.Worker(queue, worker_id=f"worker_{i}") for i in range(4)]

    # Start all workers
    for worker in workers:
        worker.start()

    # Let them process tasks
    results = [queue.get_result(task_id, timeout=30) for task_id in task_ids]

    # Stop all workers
    for worker in workers:
        worker.stop()

    print(f"Tasks done: {sum(r.is_success for r in results)} of {len(task_ids)}")
    per_worker = Counter(queue.get_task(task_id).worker_id for task_id in task_ids)
    print(f"Runs counted across workers: {sum(per_worker.values())}")
    print(
        f"Tasks processed per worker add up: {sum(w.get_status().tasks_processed for w in workers)}"
    )
    queue.close()
