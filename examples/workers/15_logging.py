"""Custom logging: a logger of your own, each task logged, errors with stack traces,
performance lines.

From the workers guide, section "Monitoring and Logging / Custom Logging". sitq never configures
logging itself; ``logging.basicConfig`` here is the application's choice.
"""

import logging
import sys

import sitq
from sitq import SQLiteBackend, SyncTaskQueue


def greet(name):
    return f"hello {name}"


def broken():
    raise RuntimeError("something broke")


if __name__ == "__main__":
    # Configure worker logging
    logging.basicConfig(
        level=logging.INFO, stream=sys.stdout, format="%(name)s %(levelname)s %(message)s"
    )

    queue = SyncTaskQueue(SQLiteBackend(":memory:"))
    queue.enqueue(greet, "logs")
    queue.enqueue(broken)

    # Worker with custom logger
    worker = sitq.Worker(
        queue=queue,
        logger=logging.getLogger("my_worker"),
        log_level=logging.INFO,
        log_tasks=True,  # Log each task
        log_errors=True,  # Log errors with stack traces
        log_performance=True,  # Log performance metrics
        performance_interval=0.2,  # (every 0.2 s here; every 60 s by default)
    )
    worker.run(duration=0.5)
    queue.close()
