"""OpenTelemetry tracing for sitq, as a hook plugin (entry point ``otel`` in group ``sitq``)."""

from __future__ import annotations

from .plugin import OpenTelemetryTracing, tracing

from ._version import __version__ as __version__  # isort: skip

__all__ = ["OpenTelemetryTracing", "tracing"]
