"""Prometheus metrics for sitq, as a hook plugin (entry point ``prometheus`` in group ``sitq``)."""

from __future__ import annotations

from .plugin import PrometheusMetrics, metrics

from ._version import __version__ as __version__  # isort: skip

__all__ = ["PrometheusMetrics", "metrics"]
