"""Registers `SQLiteBackend` for the ``sqlite://`` scheme."""

from __future__ import annotations

from sitq import hookimpl
from sitq.registry import BackendType


def _load() -> type:
    from .backend import SQLiteBackend

    return SQLiteBackend


@hookimpl
def sitq_backends() -> list[BackendType]:
    """The ``sqlite`` scheme."""
    return [BackendType("sqlite", load=_load, distribution="sitq-sqlite")]
