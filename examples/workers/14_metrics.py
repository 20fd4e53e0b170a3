"""Worker metrics: average duration, throughput, success and error rates.

From the workers guide, section "Monitoring and Logging / Worker Metrics".
"""

import time

import sitq
from sitq import SQLiteBackend, SyncTaskQueue


def work(x):
    time.sleep(0.05)
    if x % 4 == 3:
        raise ValueError("every fourth fails")
    return x


if __name__ == "__main__":
    queue = SyncTaskQueue(SQLiteBackend(":memory:"))
    worker = sitq.Worker(queue, max_tasks=8, log_errors=False)
    for i in range(8):
        queue.enqueue(work, i)
    worker.run()  # returns after 8 tasks

    # Get detailed metrics
    metrics = worker.get_metrics()
    print(f"Average task duration: {metrics.avg_task_duration:.2f} s")
    print(f"Tasks per second: {metrics.tasks_per_second:.1f}")
    print(f"Success rate: {metrics.success_rate:.2f}")
    print(f"Error rate: {metrics.error_rate:.2f}")
    queue.close()
