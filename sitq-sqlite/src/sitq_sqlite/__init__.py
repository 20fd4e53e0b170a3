"""sitq-sqlite: the embedded SQLite backend of sitq."""

from .backend import SQLiteBackend

__all__ = ["SQLiteBackend"]
