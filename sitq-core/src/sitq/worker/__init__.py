"""The worker, in parts: `Worker` and the `WorkerConfig` it is built from.

* ``config.py``: `WorkerConfig`, every option declared and checked once (``settings.py``: its
  fields as `sitq worker` options, `SITQ_*` variables and `[tool.sitq]` keys);
* ``loop.py``: the claim loop;
* ``worker.py``: `Worker`: construction, lifecycle, one-off calls, status and metrics;
* ``execution.py``: running one claimed task, stage by stage;
* ``leases.py``: the leases held, shared with the heartbeat thread under one lock;
* ``runner.py``: the plain-code side (background thread, signals, ``run``);
* ``session.py``, ``upkeep.py``, ``callbacks.py``: the executor session, background duties
  and the ``on_error``/``on_success`` callbacks.
"""

from __future__ import annotations

from ..metrics import WorkerMetrics, WorkerStatus
from .config import WorkerConfig
from .worker import Worker

__all__ = ["Worker", "WorkerConfig", "WorkerMetrics", "WorkerStatus"]
