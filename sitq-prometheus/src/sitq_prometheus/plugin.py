"""`PrometheusMetrics`: sitq's lifecycle hooks turned into Prometheus counters and histograms.

A worked example of a hook plugin: every hook is a quick, non-blocking update (hooks run on
the worker's event loop), and nothing here can fail a task: sitq logs and skips a hook that
raises.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import start_http_server as _start_http_server

import sitq
from sitq.backend import Backend
from sitq.schedules import Schedule

logger = logging.getLogger("sitq.prometheus")

ENV_PORT = "SITQ_PROMETHEUS_PORT"
ENV_ADDR = "SITQ_PROMETHEUS_ADDR"

#: Histogram buckets in seconds, from a no-op task to a long batch job.
BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)

_LABELS = ("function", "queue")


class PrometheusMetrics:
    """The metrics of sitq queues and workers, kept in ``registry``.

    :param registry: where the metrics live (default: prometheus_client's global registry).
    """

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.enqueued = Counter(
            "sitq_tasks_enqueued", "Tasks stored by enqueue.", _LABELS, registry=registry
        )
        self.started = Counter(
            "sitq_tasks_started", "Task attempts started by a worker.", _LABELS, registry=registry
        )
        self.succeeded = Counter(
            "sitq_tasks_succeeded", "Task attempts that returned.", _LABELS, registry=registry
        )
        self.failed = Counter(
            "sitq_tasks_failed",
            "Tasks that failed for good (no retry left).",
            _LABELS,
            registry=registry,
        )
        self.retried = Counter(
            "sitq_tasks_retried",
            "Failed task attempts put back in the queue for a retry.",
            _LABELS,
            registry=registry,
        )
        self.duration = Histogram(
            "sitq_task_duration_seconds",
            "Run time of task attempts, by outcome (succeeded, failed, retried).",
            (*_LABELS, "outcome"),
            buckets=BUCKETS,
            registry=registry,
        )
        self.running = Gauge(
            "sitq_tasks_running", "Task attempts running now.", ("queue",), registry=registry
        )
        self.schedule_fires = Counter(
            "sitq_schedule_fires",
            "Fire times of periodic schedules this process decided: stored (fired) or dropped "
            "by their catch-up policy (skipped).",
            ("schedule", "outcome"),
            registry=registry,
        )
        # task id -> (worker id, queue, start time) of attempts running in this process
        self._began: dict[str, tuple[str, str, float]] = {}
        self._server_lock = threading.Lock()
        self._server_port: int | None = None

    # -- hooks ---------------------------------------------------------------------------------

    @sitq.hookimpl
    def sitq_task_enqueued(self, task: sitq.Task, backend: Backend) -> None:
        """Count an enqueued task."""
        self.enqueued.labels(task.function_name, task.queue).inc()

    @sitq.hookimpl
    def sitq_task_started(self, task: sitq.Task, worker: sitq.Worker) -> None:
        """Count a started attempt and note when it began."""
        self.started.labels(task.function_name, task.queue).inc()
        self.running.labels(task.queue).inc()
        self._began[task.id] = (worker.worker_id, task.queue, time.perf_counter())

    @sitq.hookimpl
    def sitq_task_succeeded(self, task: sitq.Task, result: sitq.Result) -> None:
        """Count a success and its duration."""
        self.succeeded.labels(task.function_name, task.queue).inc()
        self._ended(task, "succeeded")

    @sitq.hookimpl
    def sitq_task_failed(self, task: sitq.Task, will_retry: bool) -> None:
        """Count a final failure (retries are counted by `sitq_task_retried`) and its duration."""
        if not will_retry:
            self.failed.labels(task.function_name, task.queue).inc()
        self._ended(task, "retried" if will_retry else "failed")

    @sitq.hookimpl
    def sitq_task_retried(self, task: sitq.Task) -> None:
        """Count a retry."""
        self.retried.labels(task.function_name, task.queue).inc()

    @sitq.hookimpl
    def sitq_worker_started(self, worker: sitq.Worker) -> None:
        """Serve ``/metrics`` if ``SITQ_PROMETHEUS_PORT`` is set (once per process)."""
        port = os.environ.get(ENV_PORT)
        if port:
            self.serve(int(port), os.environ.get(ENV_ADDR) or "127.0.0.1")

    @sitq.hookimpl
    def sitq_worker_stopped(self, worker: sitq.Worker) -> None:
        """Forget the attempts a stopping worker handed back unfinished."""
        for task_id, (worker_id, queue, _) in list(self._began.items()):
            if worker_id == worker.worker_id and self._began.pop(task_id, None) is not None:
                self.running.labels(queue).dec()

    @sitq.hookimpl
    def sitq_schedule_fired(self, schedule: Schedule, fired_at: datetime, task_id: str) -> None:
        """Count a fire this process stored."""
        self.schedule_fires.labels(schedule.name, "fired").inc()

    @sitq.hookimpl
    def sitq_schedule_skipped(self, schedule: Schedule, fired_at: datetime, reason: str) -> None:
        """Count a missed fire time dropped by its schedule's catch-up policy."""
        self.schedule_fires.labels(schedule.name, "skipped").inc()

    # -- helpers -------------------------------------------------------------------------------

    def _ended(self, task: sitq.Task, outcome: str) -> None:
        began = self._began.pop(task.id, None)
        if began is None:  # never started here (e.g. an undecodable payload)
            return
        _, queue, start = began
        self.running.labels(queue).dec()
        self.duration.labels(task.function_name, task.queue, outcome).observe(
            time.perf_counter() - start
        )

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """Serve ``/metrics`` over HTTP on ``addr:port`` (once; later calls do nothing)."""
        with self._server_lock:
            if self._server_port is not None:
                return
            _start_http_server(port, addr=addr, registry=self.registry)
            self._server_port = port
        logger.info("serving Prometheus metrics on http://%s:%d/metrics", addr, port)

    def __repr__(self) -> str:
        return f"<PrometheusMetrics registry={self.registry!r}>"


#: The instance the ``prometheus`` entry point registers, on the global registry.
metrics = PrometheusMetrics()

__all__ = ["PrometheusMetrics", "metrics"]
