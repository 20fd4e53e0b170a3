"""The worker, in parts: `Worker` and the `WorkerConfig` it is built from.

* ``config.py``: `WorkerConfig`, every option declared and checked once;
* ``worker.py``: the async `Worker`: claim loop, status and metrics;
* ``execution.py``: running one claimed task, stage by stage;
* ``leases.py``: the leases held, shared with the heartbeat thread under one lock;
* ``runner.py``: the plain-code side (background thread, signals, ``run``);
* ``session.py``, ``upkeep.py``, ``codecs.py``, ``callbacks.py``, ``capabilities.py``: the
  executor session, background duties, serializers, callbacks and environment questions.
"""

from __future__ import annotations

from ..metrics import WorkerMetrics, WorkerStatus
from .config import WorkerConfig
from .worker import Worker

__all__ = ["Worker", "WorkerConfig", "WorkerMetrics", "WorkerStatus"]
