"""Continuous processing: run for a while, then until Ctrl-C.

From the workers guide, section "Worker Lifecycle / Continuous Processing". The first run lasts
1 second (60 in the guide); the second runs until you press Ctrl-C, which lets the running task
finish, hands nothing back unfinished, and raises KeyboardInterrupt.
"""

import time

import sitq
from sitq import SQLiteBackend, SyncTaskQueue


def slow_square(x):
    time.sleep(0.2)
    return x * x


if __name__ == "__main__":
    queue = SyncTaskQueue(SQLiteBackend(":memory:"))
    first = queue.enqueue(slow_square, 3)

    # Worker that processes tasks continuously
    worker = sitq.Worker(queue)

    # Run for a specific duration
    worker.run(duration=1)  # Run for 1 second
    print(f"After run(duration=1): {queue.get_result(first, timeout=0).value}")

    second = queue.enqueue(slow_square, 4)
    # Run until interrupted
    try:
        print("Worker running; press Ctrl-C to stop", flush=True)
        worker.run()  # Runs forever
    except KeyboardInterrupt:
        print("Worker stopped by user")
    print(f"Second task: {queue.get_task(second).status.value}")
    queue.close()
