"""sitq: a task queue for Python, embedded on SQLite first, the same code on PostgreSQL later.

The public names live here. Backends ship as plugins (``sitq-sqlite``, ``sitq-memory``, …);
``from sitq import SQLiteBackend`` works once ``sitq-sqlite`` is installed and says what to
install when it is not.
"""

from __future__ import annotations

from typing import Any

from .backend import Backend, Outcome, TaskRecord
from .context import TaskContext, current_task
from .errors import (
    BackendNotFound,
    ConfigurationError,
    EventLoopMisuse,
    NoCurrentTask,
    PayloadError,
    PluginError,
    QueueClosed,
    ResultExpired,
    ResultTimeout,
    SerializationError,
    SerializerNotFound,
    SignatureError,
    SitqError,
    TaskNotFound,
    TaskTimeout,
    WorkerStateError,
)
from .hookspecs import hookimpl, hookspec
from .plugins import PluginManager, get_plugin_manager
from .queue import TaskQueue
from .registry import BackendType, Serializer, SerializerType
from .sync import SyncTaskQueue
from .task import Result, Task, TaskStatus
from .worker import Worker, WorkerMetrics, WorkerStatus

from ._version import __version__ as __version__  # isort: skip

#: Backends re-exported lazily from their plugin distributions: name → (module, distribution).
_PLUGIN_EXPORTS = {
    "SQLiteBackend": ("sitq_sqlite", "sitq-sqlite"),
    "MemoryBackend": ("sitq_memory", "sitq-memory"),
    "PostgresBackend": ("sitq_postgres", "sitq-postgres"),
}


def __getattr__(name: str) -> Any:
    if name in _PLUGIN_EXPORTS:
        module_name, dist = _PLUGIN_EXPORTS[name]
        import importlib

        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            raise ImportError(
                f"sitq.{name} comes with the {dist} package: pip install {dist}"
            ) from None
        return getattr(module, name)
    raise AttributeError(f"module 'sitq' has no attribute {name!r}")


__all__ = [
    "Backend",
    "BackendNotFound",
    "BackendType",
    "ConfigurationError",
    "EventLoopMisuse",
    "MemoryBackend",
    "NoCurrentTask",
    "Outcome",
    "PayloadError",
    "PluginError",
    "PluginManager",
    "PostgresBackend",
    "QueueClosed",
    "Result",
    "ResultExpired",
    "ResultTimeout",
    "SQLiteBackend",
    "SerializationError",
    "Serializer",
    "SerializerNotFound",
    "SerializerType",
    "SignatureError",
    "SitqError",
    "SyncTaskQueue",
    "Task",
    "TaskContext",
    "TaskNotFound",
    "TaskQueue",
    "TaskRecord",
    "TaskStatus",
    "TaskTimeout",
    "Worker",
    "WorkerMetrics",
    "WorkerStateError",
    "WorkerStatus",
    "current_task",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
]
