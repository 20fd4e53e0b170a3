"""A worker process for the many-machines tests: ``python pg_worker.py URL WORKER_ID``.

Runs a `sitq.Worker` on ``URL`` until SIGTERM. Tuning comes from the environment, so each
simulated machine can differ: ``SITQ_TEST_LEASE`` (seconds), ``SITQ_TEST_MAX_WORKERS``,
``SITQ_TEST_POLL`` (seconds).
"""

from __future__ import annotations

import logging
import os
import sys

from sitq import TaskQueue, Worker


def main() -> None:
    url, worker_id = sys.argv[1], sys.argv[2]
    logging.basicConfig(level=logging.WARNING, format=f"{worker_id} %(levelname)s %(message)s")
    queue = TaskQueue(url)
    worker = Worker(
        queue,
        worker_id=worker_id,
        max_workers=int(os.environ.get("SITQ_TEST_MAX_WORKERS", "50")),
        lease_seconds=float(os.environ.get("SITQ_TEST_LEASE", "30")),
        poll_interval=float(os.environ.get("SITQ_TEST_POLL", "1")),
        max_attempts=int(os.environ.get("SITQ_TEST_MAX_ATTEMPTS", "20")),
        graceful_shutdown=5.0,
    )
    print("ready", flush=True)
    worker.run()


if __name__ == "__main__":
    main()
