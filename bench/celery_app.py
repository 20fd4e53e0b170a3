"""The Celery app of the bench, built the same way in the bench and its worker process.

Redis is the broker and the result store. Every key it writes starts with the run's
``SITQ_BENCH_PREFIX`` (Celery's ``global_keyprefix``), so `baseline_redis` deletes exactly its
own keys afterwards and runs of the bench side by side do not meet.
"""

from __future__ import annotations

import os
import time

from celery import Celery

URL = os.environ.get("SITQ_BENCH_REDIS", "redis://127.0.0.1:6379/11")
PREFIX = os.environ.get("SITQ_BENCH_PREFIX", "sitq-bench-celery:")
QUEUE = PREFIX + "q"

app = Celery("sitq_bench", broker=URL, backend=URL)
app.conf.update(
    broker_transport_options={"global_keyprefix": PREFIX},
    result_backend_transport_options={"global_keyprefix": PREFIX},
    task_default_queue=QUEUE,
    result_expires=600,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(ignore_result=True)
def noop() -> None:
    """Does nothing (no result stored: the enqueue rate is Celery's best)."""


@app.task
def stamp() -> float:
    """Returns when it started (``time.time()``), for pickup latency."""
    return time.time()
