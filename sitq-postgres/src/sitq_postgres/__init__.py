"""sitq-postgres: the PostgreSQL backend of sitq, for workers on many machines."""

from .backend import PostgresBackend
from .errors import PostgresUnavailable

__all__ = ["PostgresBackend", "PostgresUnavailable"]
