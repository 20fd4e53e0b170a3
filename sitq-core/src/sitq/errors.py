"""Every exception sitq raises, each saying what went wrong and how to fix it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .task import Result


class SitqError(Exception):
    """Base class of every error raised by sitq."""


class ConfigurationError(SitqError, ValueError):
    """An argument or setting is invalid; the message names it and the fix."""


class ForeignDatabase(ConfigurationError):
    """The database a backend was pointed at is not one this sitq may write to: a directory,
    a file that is not a database or is damaged, another application's tables, or sitq tables
    at a schema version newer than this code knows. It is refused when the backend connects,
    before anything is written; the message names what was found and the fix, and
    ``location`` is the file (or table prefix) concerned."""

    def __init__(self, message: str, *, location: str = "") -> None:
        super().__init__(message)
        self.location = location


class PluginError(SitqError):
    """A plugin is broken, duplicated or missing."""


class MiddlewareError(PluginError):
    """A plugin's task middleware (``sitq_task_wrap``) raised, or misused ``call_next``: the
    task it wrapped fails with this error, which names the plugin; ``__cause__`` is what the
    middleware raised. The task's own exceptions pass through middleware unchanged."""


class BackendNotFound(PluginError, LookupError):
    """No installed plugin provides a backend for a URL scheme."""


class SerializerNotFound(PluginError, LookupError):
    """No installed plugin provides a serializer of the requested name."""


class SerializationError(SitqError, TypeError):
    """A value could not be encoded with, or decoded from, a serializer."""


class PayloadError(SerializationError):
    """A stored task payload cannot be decoded or its function cannot be found."""


class SignatureError(PayloadError):
    """A payload or stored result failed its HMAC check: unsigned, tampered with, moved from
    another task, or signed with another key. It is refused before it is decoded."""


class TaskNotFound(SitqError, KeyError):
    """No task with the given id exists in the backend."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "task not found"


class ResultExpired(SitqError, LookupError):
    """The task finished, but its result was dropped after the result TTL (``result_ttl``).

    Told apart from `TaskNotFound` (no such task): the task's id, final ``status`` and
    ``finished_at`` (epoch seconds) are kept and set on the error.
    """

    def __init__(
        self, message: str, *, task_id: str = "", status: str = "", finished_at: float = 0.0
    ) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.status = status
        self.finished_at = finished_at


class ResultTimeout(SitqError, TimeoutError):
    """A result did not become available within the requested timeout."""


class TaskFailed(SitqError):
    """A declared task finished without a value: it failed, died or was cancelled.

    ``status`` is its final `TaskStatus`; ``error`` and ``traceback`` are what the worker
    stored. `sitq.TaskQueue.get_result` returns the full `Result` instead of raising.
    """

    def __init__(self, task_id: str, result: Result) -> None:
        self.task_id = task_id
        self.status = result.status
        self.error = result.error
        self.traceback = result.traceback
        status = result.status.value if result.status is not None else "unknown"
        super().__init__(
            f"task {task_id} {status}: {result.error or 'no error was recorded'}. "
            "Its traceback is on this exception (.traceback) and in `sitq inspect TASK_ID`."
        )


class TaskTimeout(SitqError, TimeoutError):
    """A task ran longer than its timeout."""


class ResourceLimitExceeded(SitqError):
    """A task used more of a resource than its worker allows, and was stopped for it: with
    ``worker_type="process"`` and ``max_memory_mb``, a child process whose resident memory goes
    over the limit is killed (and replaced) and its task fails with this error, which names
    the limit and what was used. ``limit_mb`` and ``used_mb`` are on it."""

    def __init__(self, message: str, *, limit_mb: float = 0.0, used_mb: float = 0.0) -> None:
        super().__init__(message)
        self.limit_mb = limit_mb
        self.used_mb = used_mb


class QueueClosed(SitqError, RuntimeError):
    """The queue (or its backend) was closed and cannot be used any more."""


class EventLoopMisuse(SitqError, RuntimeError):
    """A blocking sitq call was made from inside a running event loop."""


class WorkerStateError(SitqError, RuntimeError):
    """A worker was asked to do something its current state does not allow."""


class NoCurrentTask(SitqError, LookupError):
    """`sitq.current_task()` was called outside a task run by a sitq worker."""
