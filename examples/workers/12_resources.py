"""Resource management: memory and CPU limits, and a graceful shutdown period.

From the workers guide, section "Performance Optimization / Resource Management". Above
max_memory_mb (resident memory of the worker process) or max_cpu_percent (CPU of the worker
and its children, as a share of the machine) the worker takes no new task until usage is back
under the limit; on stop it waits graceful_shutdown seconds for running tasks, then hands them
back to the queue.
"""

import time

import sitq
from sitq import SQLiteBackend, SyncTaskQueue


def quick(x):
    return x + 1


def endless():
    time.sleep(30)


if __name__ == "__main__":
    queue = SyncTaskQueue(SQLiteBackend(":memory:"))

    # Worker with resource limits
    worker = sitq.Worker(
        queue=queue,
        max_memory_mb=1024,  # Limit memory usage
        max_cpu_percent=80.0,  # Limit CPU usage
        graceful_shutdown=30.0,  # Graceful shutdown timeout
    )
    print(f"Result within limits: {worker.process_task(queue.enqueue(quick, 1)).value}")

    # A short grace period: a task still running at stop goes back to the queue
    impatient = sitq.Worker(queue, graceful_shutdown=0.2)
    stuck = queue.enqueue(endless)
    impatient.start()
    while impatient.get_status().current_task_id != stuck:
        time.sleep(0.01)
    impatient.stop()
    print(f"Unfinished task after stop: {queue.get_task(stuck).status.value}")
    queue.close()
