"""Registers `MemoryBackend` for the ``memory://`` scheme."""

from __future__ import annotations

from sitq import hookimpl
from sitq.registry import BackendType


def _load() -> type:
    from .backend import MemoryBackend

    return MemoryBackend


@hookimpl
def sitq_backends() -> list[BackendType]:
    """The ``memory`` scheme."""
    return [BackendType("memory", load=_load, distribution="sitq-memory")]
