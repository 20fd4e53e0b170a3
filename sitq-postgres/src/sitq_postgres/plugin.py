"""Registers `PostgresBackend` for the ``postgresql://`` and ``postgres://`` schemes."""

from __future__ import annotations

from sitq import hookimpl
from sitq.registry import BackendType


def _load() -> type:
    from .backend import PostgresBackend

    return PostgresBackend


@hookimpl
def sitq_backends() -> list[BackendType]:
    """The ``postgresql`` scheme and its short spelling ``postgres``."""
    return [
        BackendType("postgresql", load=_load, distribution="sitq-postgres"),
        BackendType("postgres", load=_load, distribution="sitq-postgres"),
    ]
