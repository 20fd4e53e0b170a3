"""sitq: a task queue for Python, embedded on SQLite first, the same code on PostgreSQL later.

Here are the names a task-queue user writes: queues, workers, tasks and their results, the
running task's context, workflows (`chain`, `group`, `chord`, `ParentFailed`), ``hookimpl``
for plugins and `SitqError`, the base of every error.
Backends ship as plugins (``sitq-sqlite``, ``sitq-memory``, …); ``from sitq import
SQLiteBackend`` works once ``sitq-sqlite`` is installed and says what to install when it is not.

Everything else lives in the module it belongs to: the other errors in `sitq.errors`, the
storage contract for backend authors in `sitq.backend`, the plugin manager in `sitq.plugins`,
registration records in `sitq.registry`, hook specifications in `sitq.hookspecs`. Asking this
module for one of the names it exported in sitq 0.1 says where that name lives now.
"""

from __future__ import annotations

from typing import Any

from .blueprints import Blueprint, SyncBlueprint
from .context import TaskContext, current_task
from .errors import SitqError
from .hookspecs import hookimpl
from .queue import TaskQueue
from .sync import SyncTaskQueue
from .task import Result, Task, TaskStatus
from .worker import Worker, WorkerConfig, WorkerMetrics, WorkerStatus
from .workflows import ParentFailed, chain, chord, group

from ._version import __version__ as __version__  # isort: skip

#: Backends re-exported lazily from their plugin distributions: name → (module, distribution).
_PLUGIN_EXPORTS = {
    "SQLiteBackend": ("sitq_sqlite", "sitq-sqlite"),
    "MemoryBackend": ("sitq_memory", "sitq-memory"),
    "PostgresBackend": ("sitq_postgres", "sitq-postgres"),
}

#: Names exported here in sitq 0.1 that live in one module now: name → that module.
_MOVED = {
    **dict.fromkeys(
        [
            "BackendNotFound",
            "ConfigurationError",
            "EventLoopMisuse",
            "NoCurrentTask",
            "PayloadError",
            "PluginError",
            "QueueClosed",
            "ResultExpired",
            "ResultTimeout",
            "SerializationError",
            "SerializerNotFound",
            "SignatureError",
            "TaskNotFound",
            "TaskTimeout",
            "WorkerStateError",
        ],
        "sitq.errors",
    ),
    **dict.fromkeys(["Backend", "Outcome", "TaskRecord"], "sitq.backend"),
    **dict.fromkeys(["PluginManager", "get_plugin_manager"], "sitq.plugins"),
    **dict.fromkeys(["BackendType", "Serializer", "SerializerType"], "sitq.registry"),
    "hookspec": "sitq.hookspecs",
}


def __getattr__(name: str) -> Any:
    """Import a plugin's backend on first use; say where a name moved out of here lives."""
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
    if name in _MOVED:
        message = f"sitq.{name} moved: from {_MOVED[name]} import {name}"
        if _asked_by_from_import():
            # ``from sitq import X`` turns an AttributeError into "cannot import name 'X'",
            # dropping this message; an ImportError reaches the user as it is
            raise ImportError(message, name="sitq")
        raise AttributeError(message)
    raise AttributeError(f"module 'sitq' has no attribute {name!r}")


def _asked_by_from_import() -> bool:
    """Whether the attribute lookup in progress comes from ``from sitq import …``.

    For a package, the import system checks each imported name with ``hasattr`` in
    ``importlib._bootstrap._handle_fromlist`` before binding it: that function is the caller
    of `__getattr__` then (any other lookup, ``hasattr`` included, gets an AttributeError).
    """
    import sys

    caller = sys._getframe(2).f_code
    return caller.co_name == "_handle_fromlist" and "importlib" in caller.co_filename


__all__ = [
    "Blueprint",
    "MemoryBackend",
    "ParentFailed",
    "PostgresBackend",
    "Result",
    "SQLiteBackend",
    "SitqError",
    "SyncBlueprint",
    "SyncTaskQueue",
    "Task",
    "TaskContext",
    "TaskQueue",
    "TaskStatus",
    "Worker",
    "WorkerConfig",
    "WorkerMetrics",
    "WorkerStatus",
    "chain",
    "chord",
    "current_task",
    "group",
    "hookimpl",
]
