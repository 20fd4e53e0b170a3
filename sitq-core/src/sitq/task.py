"""The user-facing models: `Task`, `Result` and `TaskStatus`, and how a stored record maps
onto them (`task_from_record`, `result_from_record`)."""

from __future__ import annotations

import enum
import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError
from .meta import check_meta
from .progress import Progress
from .validation import (
    EARLIEST_TIMESTAMP,
    INT32_MAX,
    INT64_MAX,
    LATEST_TIMESTAMP,
    check_int_range,
    check_seconds,
    check_stored_text,
    check_timestamp,
)

if TYPE_CHECKING:
    from .backend import Outcome, TaskRecord

#: Queue used when none is named.
DEFAULT_QUEUE = "default"


#: Status names of sitq 0.x → the text of today's status. A status compares equal to its
#: 0.x name too (``TaskStatus.SUCCEEDED == "success"``) and ``TaskStatus("success")`` is
#: ``SUCCEEDED``; stores keep only today's texts.
STATUS_ALIASES: Mapping[str, str] = MappingProxyType({"success": "succeeded"})


class TaskStatus(str, enum.Enum):
    """Where a task is in its life.

    ``pending → running → succeeded | failed | dead``; ``running → pending`` for a retry or a
    lease that expired; ``pending → cancelled``. A workflow member waits for its parents
    first: ``waiting → pending`` once they end (or ``waiting → cancelled`` when one fails).

    A status is its text (``TaskStatus.SUCCEEDED == "succeeded"``, and hashes like it), and
    also equals its sitq 0.x name (``"success"``, see `STATUS_ALIASES`) in ``==`` and ``!=``
    only: as a dict key or set member, look it up by today's text or the member.
    """

    WAITING = "waiting"
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """True once the task will not run again (unless requeued by hand)."""
        return self in FINAL_STATUSES

    def __str__(self) -> str:
        return self.value

    def __eq__(self, other: object) -> bool:
        if type(other) is str and other in STATUS_ALIASES:
            return self.value == STATUS_ALIASES[other]
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    # a status hashes like its text, so dicts keyed by status are read by text too; not like
    # its 0.x name (one hash per object): that name is for == and != only
    __hash__ = str.__hash__

    @classmethod
    def _missing_(cls, value: object) -> TaskStatus | None:
        """``TaskStatus("success")``: a sitq 0.x name gives today's status."""
        if isinstance(value, str) and value in STATUS_ALIASES:
            return cls(STATUS_ALIASES[value])
        return None


FINAL_STATUSES = frozenset(
    {TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.DEAD, TaskStatus.CANCELLED}
)


def new_task_id() -> str:
    """Return a fresh, unique task id: a UUID version 7 as 32 hex characters.

    The first 48 bits are the Unix time in milliseconds, the rest random (RFC 9562), so ids
    made one after another sort together: a store's primary-key index grows at its end instead
    of taking each insert at a random page, which keeps inserts into a table of a million
    tasks as cheap as into a small one (uuid4 ids cost a third more there on SQLite).
    """
    raw = bytearray((time.time_ns() // 1_000_000).to_bytes(6, "big") + os.urandom(10))
    raw[6] = (raw[6] & 0x0F) | 0x70  # version 7
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 9562 variant
    return raw.hex()


def function_name(func: Callable[..., Any] | str) -> str:
    """The import path of ``func`` as ``module:qualname`` (what stores and logs show)."""
    if isinstance(func, str):
        return func
    module = getattr(func, "__module__", None) or "?"
    qualname = getattr(func, "__qualname__", None) or type(func).__qualname__
    return f"{module}:{qualname}"


def to_timestamp(when: datetime | timedelta | float | None, *, now: float) -> float:
    """Turn an ``eta`` (aware datetime, timedelta from now, or epoch seconds) into epoch seconds.

    The time must be finite and between 0001-01-02 and 9999-12-31 UTC
    (`sitq.validation.check_timestamp`); anything else is a `ConfigurationError`.
    """
    if when is None:
        return now
    if isinstance(when, timedelta):
        return check_timestamp("eta", now + when.total_seconds())
    if isinstance(when, datetime):
        if when.tzinfo is None or when.utcoffset() is None:
            raise ConfigurationError(
                f"eta={when!r} is a naive datetime; sitq cannot guess its time zone. "
                "Pass an aware datetime such as datetime.now(timezone.utc) + timedelta(minutes=5), "
                "or a timedelta."
            )
        return check_timestamp("eta", when.timestamp())
    if isinstance(when, (int, float)) and not isinstance(when, bool):
        return check_timestamp("eta", when)
    raise ConfigurationError(
        f"eta must be an aware datetime, a timedelta or epoch seconds, not {type(when).__name__}"
    )


_EARLIEST = datetime.fromtimestamp(EARLIEST_TIMESTAMP, tz=timezone.utc)
_LATEST = datetime.fromtimestamp(LATEST_TIMESTAMP, tz=timezone.utc)


def from_timestamp(ts: float | None) -> datetime | None:
    """Epoch seconds to an aware UTC datetime (``None`` stays ``None``).

    Never raises on what a store holds: a time before 0001-01-02 or after 9999-12-31 UTC
    (infinities included, written by a version that did not check) reads as that bound, and
    NaN as ``None``.
    """
    if ts is None or math.isnan(ts):
        return None
    if ts < EARLIEST_TIMESTAMP:
        return _EARLIEST
    if ts > LATEST_TIMESTAMP:
        return _LATEST
    return datetime.fromtimestamp(ts, tz=timezone.utc)


@dataclass
class Task:
    """One call to run later: a function, its arguments and how to run it.

    Build one to pass options that would clash with the function's own keyword arguments:

    ```python
    await queue.enqueue(Task(function=send, kwargs={"priority": "high"}, priority=5))
    ```

    ``priority``: higher numbers run first; equal priorities run first-in, first-out.
    ``eta``: an aware ``datetime`` or a ``timedelta`` from now; the task does not run before it.
    ``max_retries`` / ``timeout``: per-task overrides of the worker's settings.
    ``dedupe_key``: at most one pending or running task per key; ``unique_for`` (a timedelta
    or seconds) and ``unique_states`` (a preset such as ``"successful"``, or statuses) widen
    it (`sitq.unique`).
    ``limits``: the limit keys the task holds, such as ``["stripe", "tenant:42"]``
    (`sitq.flow_control`; the rules are declared with ``queue.limit``).
    ``meta``: headers stored with the task (str keys, JSON values, up to 64 KiB as JSON),
    read by the running task as ``sitq.current_task().meta``.
    ``progress``: what the task last reported (`Progress`), None if it never did.
    ``parents``: ids of tasks it waits for (stored ``waiting`` until they end, see
    `sitq.workflows`); ``allow_failure``: run even if a parent did not succeed;
    ``workflow_id``: the workflow it belongs to.
    """

    function: Callable[..., Any] | str | None = None
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_task_id)
    queue: str = DEFAULT_QUEUE
    priority: int = 0
    eta: datetime | timedelta | float | None = None
    max_retries: int | None = None
    timeout: float | None = None
    dedupe_key: str | None = None
    status: TaskStatus = TaskStatus.PENDING
    attempts: int = 0
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    worker_id: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    progress: Progress | None = None
    limits: Sequence[str] = ()
    unique_for: timedelta | float | None = None
    unique_states: Any = None  # a preset name, or statuses (`sitq.unique.UniqueStates`)
    parents: Sequence[str] = ()
    allow_failure: bool = False
    workflow_id: str | None = None

    def __post_init__(self) -> None:
        self.args, kwargs = check_call(self.function, self.args, self.kwargs)
        self.kwargs = dict(kwargs)
        self.meta = check_meta(self.meta)
        self.parents = tuple(self.parents)
        if self.created_at is not None:
            # Read back from a store (`task_from_record`): shown as stored, even a value an
            # older version let in. Enqueueing it again checks it (`TaskQueue._task_record`).
            return
        check_task(self)

    @property
    def function_name(self) -> str:
        """The function's import path, ``module:qualname``."""
        assert self.function is not None
        return function_name(self.function)


#: ``module:qualname`` or ``module.name``: dotted identifiers, with a ``:`` or at least one dot.
_IMPORT_PATH = re.compile(r"[^\W\d]\w*(\.[^\W\d]\w*)*(:[^\W\d]\w*(\.[^\W\d]\w*)*|\.[^\W\d]\w*)")


def check_task(task: Task) -> None:
    """The rules every stored task meets, for `Task` and for the queue's check at enqueue (a
    `Task` is mutable: its options may have changed since it was built)."""
    validate_options(
        queue=task.queue,
        priority=task.priority,
        max_retries=task.max_retries,
        timeout=task.timeout,
        dedupe_key=task.dedupe_key,
        eta=task.eta,
        task_id=task.id,
        function=task.function,
    )
    if task.limits or task.unique_for is not None or task.unique_states is not None:
        check_flow_options(task.limits, task.dedupe_key, task.unique_for, task.unique_states)
    check_workflow_fields(task.parents, task.allow_failure, task.workflow_id, task.id)


def check_flow_options(
    limits: Any, dedupe_key: str | None, unique_for: Any, unique_states: Any
) -> None:
    """Reject bad ``limits``, ``unique_for`` and ``unique_states`` (`sitq.flow_control`,
    `sitq.unique`) at the call that passed them."""
    # imported here: both modules build on this one's TaskStatus
    from .flow_control import task_limits
    from .unique import check_unique

    task_limits(limits)
    check_unique(dedupe_key, unique_for, unique_states)


def check_workflow_fields(
    parents: Sequence[str], allow_failure: object, workflow_id: object, task_id: str
) -> None:
    """Reject bad ``parents`` (ids of other tasks, each once), ``allow_failure`` (a bool) or
    ``workflow_id`` (None or text)."""
    if not parents and allow_failure is False and workflow_id is None:
        return  # a lone task: the common case, on every enqueue
    if isinstance(parents, (str, bytes)) or not all(
        isinstance(p, str) and p and p != task_id for p in parents
    ):
        raise ConfigurationError(
            f"parents (depends_on) must be a list of other tasks' ids or handles, got {parents!r}"
        )
    if len(set(parents)) != len(parents):
        raise ConfigurationError(f"parents (depends_on) names a task twice: {list(parents)!r}")
    for parent in parents:
        check_stored_text("parent id", parent)
    if not isinstance(allow_failure, bool):
        raise ConfigurationError(f"allow_failure must be True or False, got {allow_failure!r}")
    if workflow_id is not None:
        if not isinstance(workflow_id, str) or not workflow_id:
            raise ConfigurationError(f"workflow_id must be a non-empty string, got {workflow_id!r}")
        check_stored_text("workflow_id", workflow_id)


def check_call(function: Any, args: Any, kwargs: Any) -> tuple[tuple[Any, ...], Mapping[str, Any]]:
    """Reject a bad function, args or kwargs with the error `Task` gives; return args as a
    tuple (kwargs unchanged)."""
    if function is None:
        raise ConfigurationError("Task needs a function: Task(function=my_func, args=[...])")
    if not (callable(function) or isinstance(function, str)):
        raise ConfigurationError(
            f"Task function must be callable (or an import path 'module:name'), "
            f"got {type(function).__name__} {function!r}"
        )
    if type(function) is str and not _IMPORT_PATH.fullmatch(function):
        raise ConfigurationError(
            f"Task function {function!r} is not an import path; write 'package.module:function' "
            f"(or pass the function itself)"
        )
    if type(args) is not tuple:
        if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
            raise ConfigurationError(
                f"Task args must be a list or tuple, got {type(args).__name__}"
            )
        args = tuple(args)
    if type(kwargs) is not dict and not isinstance(kwargs, Mapping):
        raise ConfigurationError(f"Task kwargs must be a dict, got {type(kwargs).__name__}")
    return args, kwargs


def call_or_task(
    item: Task | Callable[..., Any] | tuple[Any, ...],
) -> Task | tuple[Any, tuple[Any, ...], Mapping[str, Any]]:
    """An item of ``enqueue_many``: a `Task` as is, or a plain call (a function, or a tuple
    ``(function, args[, kwargs])``) checked as `Task` would, as ``(function, args, kwargs)``."""
    if isinstance(item, Task):
        return item
    if isinstance(item, tuple) and 1 <= len(item) <= 3:
        function = item[0]
        args, kwargs = check_call(
            function, item[1] if len(item) > 1 else (), item[2] if len(item) > 2 else {}
        )
        return function, args, kwargs
    if callable(item):
        return item, (), {}
    raise ConfigurationError(
        f"enqueue_many items must be Task objects, functions or (function, args[, kwargs]) "
        f"tuples, got {type(item).__name__}"
    )


#: The bounds of ``priority``: what a 64-bit integer column stores (SQLite, PostgreSQL bigint).
PRIORITY_RANGE = (-INT64_MAX, INT64_MAX)

#: The bounds of ``max_retries``: PostgreSQL stores it as ``integer`` (32-bit), and the attempt
#: limit adds 1 to it, so every backend takes at most 2**31 - 2.
MAX_RETRIES_RANGE = (0, INT32_MAX - 1)


def validate_options(
    *,
    queue: str,
    priority: int,
    max_retries: int | None,
    timeout: float | None,
    dedupe_key: str | None,
    eta: object = None,
    task_id: object = None,
    function: object = None,
) -> None:
    """Reject bad per-task options at the call that passed them.

    Every enqueue path calls this (`Task`, `TaskQueue.enqueue`, ``enqueue_many``, declared
    tasks' ``.options()``), so every backend gets only what all of them store alike: integers
    in their columns' range, finite times, text without NUL or lone surrogates. ``eta``: a
    timedelta is checked later, against the enqueue's clock (`to_timestamp`); ``task_id`` and
    ``function`` (a string import path) only when given.
    """
    if not isinstance(queue, str) or not queue:
        raise ConfigurationError(f"queue must be a non-empty string, got {queue!r}")
    check_stored_text("queue", queue)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ConfigurationError(f"priority must be an int (higher runs first), got {priority!r}")
    low, high = PRIORITY_RANGE
    check_int_range("priority", priority, minimum=low, maximum=high, what="an int")
    if max_retries is not None:
        low, high = MAX_RETRIES_RANGE
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigurationError(f"max_retries must be an int >= 0, got {max_retries!r}")
        check_int_range("max_retries", max_retries, minimum=low, maximum=high, what="an int")
    if timeout is not None:
        check_seconds("timeout", timeout)
    if dedupe_key is not None:
        if not isinstance(dedupe_key, str):
            raise ConfigurationError(f"dedupe_key must be a string, got {dedupe_key!r}")
        check_stored_text("dedupe_key", dedupe_key)
    if eta is not None and not isinstance(eta, timedelta):
        to_timestamp(eta, now=0.0)  # type: ignore[arg-type]  # refuses bad types and times
    if task_id is not None:
        if not isinstance(task_id, str) or not task_id:
            raise ConfigurationError(f"task id must be a non-empty string, got {task_id!r}")
        check_stored_text("task id", task_id)
    if isinstance(function, str):
        check_stored_text("function", function)


@dataclass
class Result:
    """The outcome of a task, as stored by the worker that ran it.

    Can be built by hand, e.g. ``Result(is_error=True, error="not supported")``.
    ``status`` is a `TaskStatus`, which also equals the sitq 0.x names: a succeeded result's
    ``status == "success"`` (and ``== "succeeded"``).
    """

    task_id: str | None = None
    status: TaskStatus | None = None
    value: Any = None
    error: str | None = None
    traceback: str | None = None
    is_success: bool | None = None
    is_error: bool | None = None
    enqueued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = 0

    def __post_init__(self) -> None:
        if self.status is None:
            if self.is_error:
                self.status = TaskStatus.FAILED
            elif self.is_success or self.error is None:
                self.status = TaskStatus.SUCCEEDED
            else:
                self.status = TaskStatus.FAILED
        self.status = TaskStatus(self.status)
        if self.is_success is None:
            self.is_success = self.status is TaskStatus.SUCCEEDED
        if self.is_error is None:
            self.is_error = not self.is_success

    @property
    def duration(self) -> float | None:
        """Seconds between start and finish, when both are known."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


def task_from_record(
    record: TaskRecord,
    function: Callable[..., Any] | str | None = None,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    worker_id: str | None = None,
) -> Task:
    """The `Task` a stored record describes, given the call decoded from its payload.

    Leave ``function``, ``args`` and ``kwargs`` out when the payload could not be decoded: the
    task then shows the stored import path and no arguments. ``worker_id``: the worker running
    it right now; the task then shows as RUNNING on that worker, with no finish time (a record
    as claimed need not say so yet).
    """
    running = worker_id is not None
    return Task(
        function=record.function if function is None else function,
        args=args,
        kwargs={} if kwargs is None else kwargs,
        id=record.id,
        queue=record.queue,
        priority=record.priority,
        eta=from_timestamp(record.available_at),
        max_retries=record.max_retries,
        timeout=record.timeout,
        dedupe_key=record.dedupe_key,
        limits=record.limits,
        unique_for=record.unique_for,
        unique_states=record.unique_states,
        status=TaskStatus.RUNNING if running else record.status,
        attempts=record.attempts,
        created_at=from_timestamp(record.created_at),
        started_at=from_timestamp(record.started_at),
        finished_at=None if running else from_timestamp(record.finished_at),
        worker_id=worker_id if running else record.worker_id,
        meta=record.meta,
        progress=record.progress,
        parents=record.parents,
        allow_failure=record.allow_failure,
        workflow_id=record.workflow_id,
    )


def result_from_record(
    record: TaskRecord,
    value: Any = None,
    *,
    error: str | None = None,
    outcome: Outcome | None = None,
) -> Result:
    """The `Result` of a record, given its decoded return value.

    ``error``: why there is no value to show (it could not be read, or it expired); it replaces
    the stored error. ``outcome``: what the worker that just ran ``record`` (the record as it
    claimed it) reports; status, error, traceback and finish time are then the outcome's.
    """
    done: TaskRecord | Outcome = record if outcome is None else outcome
    status = done.status
    if error is None:
        error = done.error
    return Result(
        task_id=record.id,
        status=status,
        value=value,
        error=error,
        traceback=done.traceback,
        is_success=status is TaskStatus.SUCCEEDED and error is None,
        enqueued_at=from_timestamp(record.created_at),
        started_at=from_timestamp(record.started_at),
        finished_at=from_timestamp(done.finished_at),
        attempts=record.attempts,
    )
