"""Prometheus metrics for sitq, as a hook plugin (entry point ``prometheus`` in group ``sitq``)."""

from __future__ import annotations

from .plugin import PrometheusMetrics, metrics

__version__ = "0.1.0"

__all__ = ["PrometheusMetrics", "metrics"]
