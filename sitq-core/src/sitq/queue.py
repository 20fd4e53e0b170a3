"""`TaskQueue`: the async API for enqueuing tasks and reading their results."""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, overload

from . import task as models
from .backend import Backend, Capability, TaskRecord
from .blueprints import Blueprint, DeclaresTasks
from .coalesce import Coalescer
from .envelope import DEFAULT_MAX_PAYLOAD_BYTES, Envelope
from .errors import (
    BackendNotFound,
    ConfigurationError,
    PayloadError,
    QueueClosed,
    ResultExpired,
    ResultTimeout,
    TaskNotFound,
)
from .flow_control import LimitRule, LimitState, parse_rate, task_limits
from .meta import check_meta
from .payload import Codec
from .plugins import PluginManager, get_plugin_manager
from .registry import Serializer, SerializerType
from .schedules import Schedule
from .serializers import DEFAULT_SERIALIZER
from .signing import SecretKey, Signer
from .task import (
    DEFAULT_QUEUE,
    Result,
    Task,
    TaskStatus,
    call_or_task,
    check_task,
    function_name,
    new_task_id,
    to_timestamp,
)
from .unique import unique_seconds, unique_states_from
from .workflow_state import WorkflowSummary
from .workflows import CANVAS_TYPES, AsyncWorkflow, Canvas, Plan, plan

#: Used when neither an argument nor ``SITQ_BACKEND_URL`` names a backend.
DEFAULT_BACKEND_URL = "sqlite:///sitq.db"
ENV_BACKEND_URL = "SITQ_BACKEND_URL"

#: A plain call of ``enqueue_many``: ``(function, args, kwargs)``, as `call_or_task` gives it.
Call = tuple[Any, tuple[Any, ...], Mapping[str, Any]]

_POLL_START = 0.005
_POLL_MAX = 0.1
#: How long past its timeout get_result waits for a store call in flight before giving up.
_STORE_GRACE = 0.5


class TaskQueue(DeclaresTasks[Blueprint]):
    """Enqueue calls and read their results (async).

    :param backend: a `Backend`, a URL (``"sqlite:///tasks.db"``, ``"memory://"``), or None for
        ``$SITQ_BACKEND_URL`` or else ``sqlite:///sitq.db``.
    :param serializer: name of a registered serializer, or an object with ``dumps``/``loads``;
        ``cloudpickle`` by default. Each task records the serializer that encoded it.
    :param plugins: a `PluginManager` (default: the process-wide one).
    :param secret_key: sign every payload (and check every result) with HMAC-SHA256 under
        this key, so that workers refuse payloads nobody with the key wrote (see
        `sitq.signing`); a list rotates keys (the first signs). Default: ``$SITQ_SECRET_KEY``,
        or no signing.
    :param max_payload_bytes: the largest encoded call (and result) accepted, 64 MiB by
        default; a bigger one raises `ConfigurationError` at ``enqueue`` or ``enqueue_many``,
        storing nothing (and fails its task with `SerializationError` at the worker). Store big
        data elsewhere and pass its path. None: no limit but the backend's (SQLite's is 1 GB).

    Use it as ``async with TaskQueue(...) as queue:`` or call `close` when done.

    Who closes the backend: a queue closes the backend it opened from a URL (or the
    default). A `Backend` object handed in stays its owner's, like an SQLAlchemy engine
    shared by sessions: queues (and workers) connect it when first used and leave it open
    when they close, so later queues can use it again; close it yourself when done with it
    (``await backend.close()``). See `owns_backend`.
    """

    def __init__(
        self,
        backend: Backend | str | None = None,
        *,
        serializer: str | Serializer | SerializerType = DEFAULT_SERIALIZER,
        plugins: PluginManager | None = None,
        secret_key: SecretKey | None = None,
        max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        self.plugins = plugins if plugins is not None else get_plugin_manager()
        #: Seals the calls stored here and opens the results read here.
        self.envelope = Envelope.from_options(
            self.plugins,
            serializer=serializer,
            secret_key=secret_key,
            max_payload_bytes=max_payload_bytes,
        )
        self.backend = self._open_backend(backend)
        #: True if this queue opened its backend (from a URL) and so closes it in `close`;
        #: False for a `Backend` handed in, which its owner closes.
        self.owns_backend = not isinstance(backend, Backend)
        self._lifecycle = self.plugins.lifecycle()
        self._connected = False
        self._closed = False
        self._coalescer: Coalescer[TaskRecord, str] | None = None
        self._coalescer_loop: asyncio.AbstractEventLoop | None = None
        self._declared_limits: dict[str, LimitRule] = {}
        self._limits_to_store = False

    def _open_backend(self, backend: Backend | str | None) -> Backend:
        if isinstance(backend, Backend):
            return backend
        if backend is None:
            url = os.environ.get(ENV_BACKEND_URL) or DEFAULT_BACKEND_URL
            try:
                return self.plugins.backend_from_url(url)
            except BackendNotFound as exc:
                raise BackendNotFound(
                    f"TaskQueue() with no backend uses {url!r}, and no plugin provides it. "
                    f"{exc} Or pass a backend: TaskQueue('memory://')."
                ) from None
        if isinstance(backend, str):
            return self.plugins.backend_from_url(backend)
        raise ConfigurationError(
            f"backend must be a Backend instance or a URL string, got {type(backend).__name__}"
        )

    @property
    def codec(self) -> Codec:
        """The codec calls are encoded with (``serializer``)."""
        return self.envelope.codec

    @property
    def signer(self) -> Signer:
        """Signs the calls stored here and checks the results read here (`sitq.signing`)."""
        return self.envelope.signer

    @property
    def max_payload_bytes(self) -> int | None:
        """The largest encoded call or result accepted (None: no limit)."""
        return self.envelope.max_payload_bytes

    def codec_for(self, name: str) -> Codec:
        """The codec for the serializer a task was stored with (see `Envelope.codec_for`)."""
        return self.envelope.codec_for(name)

    # -- connection --------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect the backend (done automatically on first use)."""
        if self._closed:
            raise QueueClosed("this TaskQueue was closed; create a new one")
        if not self._connected:
            await self.backend.connect()
            self._connected = True
        if self._limits_to_store:
            self._limits_to_store = False
            try:
                await self.backend.set_limits(list(self._declared_limits.values()))
            except BaseException:
                self._limits_to_store = True
                raise

    async def close(self) -> None:
        """Close the queue, and its backend if the queue opened it (`owns_backend`); a
        backend handed in stays open for its owner. The queue cannot be used afterwards."""
        if not self._closed:
            self._closed = True
            if self.owns_backend:
                await self.backend.close()

    @property
    def closed(self) -> bool:
        """True once `close` was called."""
        return self._closed

    @property
    def connected(self) -> bool:
        """True once `connect` succeeded and until `close`."""
        return self._connected and not self._closed

    async def __aenter__(self) -> TaskQueue:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- enqueue -----------------------------------------------------------------------------

    @overload
    async def enqueue(self, function: Canvas, /) -> AsyncWorkflow: ...
    @overload
    async def enqueue(
        self,
        function: Callable[..., Any] | Task | str,
        /,
        *args: Any,
        eta: datetime | timedelta | float | None = None,
        priority: int = 0,
        queue: str = DEFAULT_QUEUE,
        max_retries: int | None = None,
        timeout: float | None = None,
        dedupe_key: str | None = None,
        connection: Any = None,
        **kwargs: Any,
    ) -> str: ...
    async def enqueue(
        self,
        function: Callable[..., Any] | Task | str | Canvas,
        /,
        *args: Any,
        eta: datetime | timedelta | float | None = None,
        priority: int = 0,
        queue: str = DEFAULT_QUEUE,
        max_retries: int | None = None,
        timeout: float | None = None,
        dedupe_key: str | None = None,
        connection: Any = None,
        **kwargs: Any,
    ) -> str | AsyncWorkflow:
        """Store a call to run later; return its task id.

        ``enqueue(func, *args, **kwargs)`` or ``enqueue(Task(...))``. Options: ``eta`` (aware
        datetime or timedelta), ``priority`` (higher first), ``queue``, ``max_retries``,
        ``timeout`` (seconds), ``dedupe_key``, ``connection`` (your own database connection,
        for backends that support it: the task is stored in its open transaction, and vanishes
        if that rolls back; see `Backend.enqueue_in`). To pass a keyword argument with one of
        those names to the function itself, build a `Task`.

        ``enqueue(workflow)`` (a `sitq.chain`, `sitq.group`, `sitq.chord` or ``task.s()``)
        stores its tasks in one batch and returns an `AsyncWorkflow`.
        """
        if isinstance(function, CANVAS_TYPES):
            options = (eta, priority, queue, max_retries, timeout, dedupe_key)
            extra = bool(args or kwargs) or options != (None, 0, DEFAULT_QUEUE, None, None, None)
            return await self._enqueue_workflow(function, extra, connection)
        task = self._task_of(
            function,
            args,
            kwargs,
            eta=eta,
            priority=priority,
            queue=queue,
            max_retries=max_retries,
            timeout=timeout,
            dedupe_key=dedupe_key,
        )
        return await self._enqueue_task(task, checked=task is not function, connection=connection)

    async def _enqueue_task(self, task: Task, *, checked: bool, connection: Any = None) -> str:
        """Store ``task``; ``checked``: built just now (its options were checked then, and
        no other code has held it since), so not checked again."""
        await self.connect()
        record = self._task_record(task, self.backend.clock(), checked=checked)
        if connection is None:
            task_id = await self._enqueuer().submit(record)
        else:
            (task_id,) = await self.backend.enqueue_in(connection, [record])
        await self._announce(self._enqueued([task], [task_id]))
        return task_id

    async def _enqueue_workflow(
        self, canvas: Canvas, extra: bool, connection: Any
    ) -> AsyncWorkflow:
        """Store a workflow's tasks in one `Backend.enqueue_many`."""
        found = self.workflow_plan(canvas, extra)
        await self.connect()
        records = [self._task_record(t, self.backend.clock()) for t in found.tasks]
        if connection is None:
            ids = await self.backend.enqueue_many(records)
        else:
            ids = await self.backend.enqueue_in(connection, records)
        await self._announce(self._enqueued(found.tasks, ids))
        return AsyncWorkflow(self, found)

    def workflow_plan(self, canvas: Canvas, extra: bool = False) -> Plan:
        """The tasks of ``canvas`` (`sitq.workflows.plan`); ``extra``: the enqueue had
        arguments or options, refused (they go on each signature)."""
        if extra:
            raise ConfigurationError(
                "enqueue(workflow) takes no other arguments: give each member its options "
                "with task.options(...).s(...) or task.s(...).options(...)"
            )
        self._check_workflows()
        return plan(canvas)

    def _check_workflows(self) -> None:
        """`ConfigurationError` unless the backend stores tasks that wait for parents."""
        if not self.backend.supports(Capability.WORKFLOWS):
            raise ConfigurationError(
                f"{type(self.backend).__name__} cannot run workflows (chain, group, chord, "
                "depends_on); use a backend that declares Capability.WORKFLOWS (sqlite, "
                "postgresql, memory)"
            )

    def _task_of(
        self,
        function: Callable[..., Any] | Task | str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        **options: Any,
    ) -> Task:
        """The `Task` an ``enqueue(function, *args, **options, **kwargs)`` call stores: the
        one handed in, or one built (and so checked) here. Every enqueue path starts here."""
        if isinstance(function, Task):
            if args or kwargs:
                raise ConfigurationError(
                    "enqueue(Task(...)) takes no other arguments; put them in the Task"
                )
            return function
        if not (callable(function) or isinstance(function, str)):
            raise ConfigurationError(
                f"enqueue() needs a function to call, got {type(function).__name__} "
                f"{function!r}. Write queue.enqueue(my_function, arg1, arg2)."
            )
        return Task(function=function, args=args, kwargs=kwargs, **options)

    def _enqueued(self, calls: Sequence[Task | Call], ids: Sequence[str]) -> list[Task]:
        """Give each `Task` of ``calls`` its stored id; return the tasks to announce through
        ``sitq_task_enqueued`` (none when no plugin listens, the common case)."""
        for call, task_id in zip(calls, ids, strict=True):
            if isinstance(call, Task):
                call.id = task_id
        if not self._lifecycle.has("sitq_task_enqueued"):
            return []
        return [
            call if isinstance(call, Task) else Task(*call, id=task_id)
            for call, task_id in zip(calls, ids, strict=True)
        ]

    async def _announce(self, tasks: Sequence[Task]) -> None:
        """Fire ``sitq_task_enqueued`` for each of ``tasks`` (see `_enqueued`)."""
        for task in tasks:
            await self._lifecycle.emit("sitq_task_enqueued", task=task, backend=self.backend)

    def _announce_blocking(
        self, tasks: Sequence[Task], run: Callable[[Coroutine[Any, Any, Any]], Any]
    ) -> None:
        """`_announce` from plain code: plain implementations are called in this thread, what
        async ones return is awaited through ``run`` (see `Lifecycle.emit_blocking`)."""
        for task in tasks:
            self._lifecycle.emit_blocking(
                "sitq_task_enqueued", run, task=task, backend=self.backend
            )

    def _enqueuer(self) -> Coalescer[TaskRecord, str]:
        """Concurrent `enqueue` calls on this loop share `Backend.enqueue_many` round trips."""
        loop = asyncio.get_running_loop()
        if self._coalescer is None or self._coalescer_loop is not loop:
            self._coalescer = Coalescer(self.backend.enqueue_many)
            self._coalescer_loop = loop
        return self._coalescer

    async def enqueue_many(
        self,
        items: Iterable[Task | Callable[..., Any] | tuple[Any, ...]],
        *,
        connection: Any = None,
    ) -> list[str]:
        """Store many calls in one transaction; return their ids in order.

        Each item is a `Task`, a function (called with no arguments), or a tuple
        ``(function, args)`` / ``(function, args, kwargs)``. ``connection``: as in `enqueue`.
        """
        calls = self._calls_of(items)
        if not calls:
            return []
        await self.connect()
        records = self._records_of(calls, self.backend.clock())
        if connection is None:
            ids = await self.backend.enqueue_many(records)
        else:
            ids = await self.backend.enqueue_in(connection, records)
        await self._announce(self._enqueued(calls, ids))
        return ids

    def _calls_of(
        self, items: Iterable[Task | Callable[..., Any] | tuple[Any, ...]]
    ) -> list[Task | Call]:
        """The items of an ``enqueue_many``: plain calls (functions, tuples) stay tuples and
        become records directly; a `Task` object is built for them only if a plugin adds
        headers (to Task objects)."""
        calls = [call_or_task(item) for item in items]
        if self._lifecycle.headers is not None:
            calls = [c if isinstance(c, Task) else Task(*c) for c in calls]
        return calls

    def _records_of(self, calls: Sequence[Task | Call], now: float) -> list[TaskRecord]:
        """The records of `_calls_of`'s calls, stored at ``now``."""
        return [
            self._task_record(c, now)
            if isinstance(c, Task)
            else self._record(new_task_id(), *c, now)
            for c in calls
        ]

    def _task_record(self, task: Task, now: float, *, checked: bool = False) -> TaskRecord:
        """The record of a `Task`, its options checked again (they may have changed since it
        was built) unless ``checked``: the queue built it just now."""
        if not checked:
            check_task(task)
        if task.parents:
            self._check_workflows()  # else it would run at once, not after its parents
            if task.eta is not None:
                raise ConfigurationError(
                    "a task with parents (depends_on, or a workflow member after the first) "
                    "runs as soon as they end: it cannot have an eta"
                )
        assert task.function is not None
        if self._lifecycle.headers is not None:  # plugins' headers (sitq.headers) added
            task.meta = self._lifecycle.headers.merged(task)
        flow: dict[str, Any] = {}
        if task.limits or task.unique_for is not None or task.unique_states is not None:
            self._require_flow_control("a task with limits, unique_for or unique_states")
            flow = {
                "limits": task_limits(task.limits),
                "unique_for": unique_seconds(task.unique_for),
                "unique_states": unique_states_from(task.unique_states),
            }
        return self._record(
            task.id,
            task.function,
            task.args,
            task.kwargs,
            now,
            queue=task.queue,
            priority=task.priority,
            available_at=to_timestamp(task.eta, now=now),
            max_retries=task.max_retries,
            timeout=task.timeout,
            dedupe_key=task.dedupe_key,
            meta=check_meta(task.meta),
            **flow,
            parents=tuple(task.parents),
            allow_failure=task.allow_failure,
            workflow_id=task.workflow_id,
        )

    def _record(
        self,
        task_id: str,
        function: Callable[..., Any] | str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        now: float,
        *,
        available_at: float | None = None,
        **options: Any,
    ) -> TaskRecord:
        """The record of one call, sealed by the envelope (``options``: `TaskRecord` fields;
        every enqueue path builds its records here, so every one meets the same limits)."""
        if isinstance(function, str):
            self.tasks.check_enqueue(function)  # a queue with declared tasks knows every name
        name = function_name(function)
        return TaskRecord(
            id=task_id,
            function=name,
            payload=self.envelope.seal_call(task_id, name, function, args, kwargs),
            serializer=self.envelope.serializer,
            available_at=now if available_at is None else available_at,
            created_at=now,
            **options,
        )

    # -- periodic schedules (sitq.schedules; declared with ``periodic`` and ``schedule``) -------

    async def enqueue_fire(self, schedule: Schedule, fire_time: float) -> str | None:
        """Store the task of one fire of ``schedule`` at ``fire_time`` (epoch seconds), exactly
        once across every process on the store; its id, or None if that fire was stored
        already or the schedule is paused (see `Backend.enqueue_fire`). Schedulers call it."""
        await self.connect()
        record = self.fire_record(schedule, fire_time)
        return await self.backend.enqueue_fire(schedule.name, fire_time, record)

    def fire_record(self, schedule: Schedule, fire_time: float) -> TaskRecord:
        """The record `enqueue_fire` stores for one fire (encoded and checked like any
        enqueue; its errors are the enqueue's)."""
        return self._task_record(schedule.task_for(fire_time), self.backend.clock())

    # -- flow control (sitq.flow_control; the backend enforces it) ---------------------------

    def limit(
        self,
        pattern: str,
        *,
        rate: str | float | None = None,
        burst: float | None = None,
        concurrency: int | None = None,
    ) -> LimitRule:
        """Declare a limit on the tasks holding a key: ``pattern`` is a key (``"stripe"``) or
        a family (``"tenant:*"``: each distinct key limited on its own); ``rate`` as
        ``"100/s"``, ``"30/m"``, ``"500/h"`` (or tokens a second), ``burst`` the most starts
        at once after a quiet spell, ``concurrency`` the most running at once.

        The rule is stored in the backend, for every worker on it, when the queue connects
        (at its next call to the store if it is connected already), replacing the one stored
        for ``pattern``. Tasks hold keys with ``@queue.task(limits=[...])`` or
        ``.options(limits=[...])``.
        """
        self._require_flow_control("queue.limit(...)")
        rule = LimitRule(pattern, parse_rate(rate), burst, concurrency)
        self._declared_limits[pattern] = rule
        self._limits_to_store = True
        return rule

    async def delete_limits(self, *patterns: str) -> int:
        """Remove the rules of ``patterns`` from the store (their keys are no longer
        limited); how many were stored."""
        for pattern in patterns:
            self._declared_limits.pop(pattern, None)
        await self.connect()
        return await self.backend.delete_limits(list(patterns))

    async def limits(self) -> list[LimitRule]:
        """Every rule stored in the backend (declared by any process), by pattern."""
        await self.connect()
        return await self.backend.limits()

    async def limit_states(self) -> list[LimitState]:
        """Each limited key's rule, tokens now, running and waiting tasks (``sitq limits``)."""
        await self.connect()
        return await self.backend.limit_states()

    async def pause(self, queue: str) -> None:
        """Stop every worker on this backend from claiming tasks of ``queue`` (within one
        poll); running tasks go on, enqueues are still stored."""
        await self._pause(queue, True)

    async def resume(self, queue: str) -> None:
        """Let workers claim tasks of ``queue`` again."""
        await self._pause(queue, False)

    async def _pause(self, queue: str, paused: bool) -> None:
        models.validate_options(
            queue=queue, priority=0, max_retries=None, timeout=None, dedupe_key=None
        )
        self._require_flow_control("pausing a queue")
        await self.connect()
        await self.backend.pause_queue(queue, paused)

    async def paused_queues(self) -> set[str]:
        """The queues paused now, on this backend."""
        await self.connect()
        return await self.backend.paused_queues()

    def _require_flow_control(self, what: str) -> None:
        if not self.backend.supports(Capability.FLOW_CONTROL):
            raise ConfigurationError(
                f"{what} needs a backend that enforces limits (Capability.FLOW_CONTROL); "
                f"{self.backend!r} does not. Use sqlite://, postgresql:// or memory://."
            )

    # -- reading -----------------------------------------------------------------------------

    def task_from_record(self, record: TaskRecord) -> Task:
        """Decode a stored record into a `Task`.

        If the payload cannot be decoded, ``function`` is left as the stored import path and
        ``args``/``kwargs`` are empty.
        """
        try:
            opened = self.envelope.open_call(record, resolve=self.tasks.resolve)
        except (PayloadError, LookupError):
            return models.task_from_record(record)
        return models.task_from_record(record, opened.function, opened.args, opened.kwargs)

    def result_from_record(self, record: TaskRecord) -> Result:
        """Build the `Result` of a finished record (decoding its return value).

        A result that cannot be decoded (or fails its signature check) leaves ``value`` None
        and says why in ``error``; so does an expired one (`get_result` raises
        `ResultExpired` for those instead).
        """
        value: Any = None
        error: str | None = None
        if record.expired:
            error = record.error or f"the result of task {record.id} expired (result_ttl)"
        elif record.status is TaskStatus.SUCCEEDED:
            try:
                value = self.envelope.open_result(record, record.result)
            except (PayloadError, LookupError) as exc:
                error = str(exc)
        return models.result_from_record(record, value, error=error)

    def deserialize_result(self, result: Result) -> Any:
        """The value ``result`` carries: ``result.value`` (None for a failure).

        The sitq 0.x way to read a result; `get_result` now returns it decoded, so new code
        reads ``result.value``.
        """
        return result.value

    async def get_task(self, task_id: str) -> Task | None:
        """The task with this id (decoded), or None if there is none."""
        await self.connect()
        record = await self.backend.get_task(task_id)
        return None if record is None else self.task_from_record(record)

    async def get_result(self, task_id: str, timeout: float | None = None) -> Result:
        """Wait for a task to finish and return its `Result`.

        Waits up to ``timeout`` seconds (None: as long as it takes) and raises `ResultTimeout`
        after that; ``timeout=0`` checks once. Raises `TaskNotFound` for an unknown id, and
        `ResultExpired` for a task that finished but whose result was dropped after the result
        TTL (``Worker(result_ttl=...)``). Wakes as soon as a worker in this process finishes
        the task; finishes in other processes are noticed by polling that backs off from 5 ms
        to 100 ms.
        """
        _check_timeout(timeout)
        await self.connect()
        if timeout is None:
            return await self._wait_for_result(task_id, None)
        try:
            # bounded from outside as well: a store call that never answers (its lock held by
            # a wedged event loop elsewhere in this process) cannot outlast the timeout
            return await asyncio.wait_for(
                self._wait_for_result(task_id, timeout), timeout + _STORE_GRACE
            )
        except ResultTimeout:  # a TimeoutError too: the one the wait raised itself, on time
            raise
        except asyncio.TimeoutError:
            raise ResultTimeout(
                f"task {task_id} is not finished after {timeout} s (the store did not answer "
                "in time)"
            ) from None

    async def _wait_for_result(self, task_id: str, timeout: float | None) -> Result:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        poll = _POLL_START
        while True:
            record = await self.backend.get_task(task_id)
            if record is None:
                raise TaskNotFound(f"no task with id {task_id!r}")
            if record.expired:
                raise _expired(record)
            if record.status.is_final:
                return self.result_from_record(record)
            wait = poll
            if deadline is not None:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise ResultTimeout(
                        f"task {task_id} is still {record.status.value} after {timeout} s"
                    )
                wait = min(wait, remaining)
            await self.backend.wait_for_finish(wait)
            poll = min(poll * 2, _POLL_MAX)

    # -- workflows ---------------------------------------------------------------------------

    async def workflow_tasks(self, workflow_id: str) -> list[Task]:
        """The members of a workflow as stored now (decoded), parents first."""
        await self.connect()
        return [self.task_from_record(r) for r in await self.backend.workflow_tasks(workflow_id)]

    async def cancel_workflow(self, workflow_id: str) -> int:
        """Cancel every member of a workflow not ended yet (running ones too); how many."""
        await self.connect()
        return await self.backend.cancel_workflow(workflow_id)

    async def workflows(
        self, *, limit: int = 100, active_only: bool = False
    ) -> list[WorkflowSummary]:
        """The newest workflows with their members' counts (see `Backend.workflows`)."""
        await self.connect()
        return await self.backend.workflows(limit=limit, active_only=active_only)

    async def get_results(
        self, task_ids: Sequence[str], timeout: float | None = None
    ) -> list[Result]:
        """Wait for every task of ``task_ids`` to finish; the `Result` of each, in order.

        One `Backend.get_results` per poll reads every task not finished yet (waiting on a
        group of 10,000 is not 10,000 waits). ``timeout`` (seconds, for all of them) and the
        errors are `get_result`'s.
        """
        _check_timeout(timeout)
        await self.connect()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        found: dict[str, TaskRecord] = {}
        poll = _POLL_START
        while missing := [i for i in dict.fromkeys(task_ids) if i not in found]:
            read = await self.backend.get_results(missing)
            found.update((r.id, r) for r in read if r is not None)
            if all(i in found for i in missing):
                break
            unfinished = next(i for i in missing if i not in found)
            record = await self.backend.get_task(unfinished)
            if record is None:
                raise TaskNotFound(f"no task with id {unfinished!r}")
            wait = poll
            if deadline is not None:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise ResultTimeout(
                        f"task {unfinished} is still {record.status.value} after {timeout} s"
                    )
                wait = min(wait, remaining)
            await self.backend.wait_for_finish(wait)
            poll = min(poll * 2, _POLL_MAX)
        for record in found.values():
            if record.expired:
                raise _expired(record)
        return [self.result_from_record(found[i]) for i in task_ids]

    # -- control -----------------------------------------------------------------------------

    async def cancel(self, task_id: str) -> bool:
        """Cancel a waiting, pending or running task (see `Backend.cancel`); False if it is in
        none of those states. Its workflow descendants are cancelled with it."""
        await self.connect()
        return await self.backend.cancel(task_id)

    async def requeue(self, task_id: str) -> bool:
        """Run a failed, dead or cancelled task again; False if it is in no such state."""
        await self.connect()
        return await self.backend.requeue(task_id)

    async def counts(self, queue: str | None = None) -> dict[TaskStatus, int]:
        """Number of tasks in each status."""
        await self.connect()
        return await self.backend.counts(queue)

    async def purge(
        self, statuses: Iterable[TaskStatus] | None = None, older_than: float | None = None
    ) -> int:
        """Delete finished tasks (see `Backend.purge`); returns how many."""
        await self.connect()
        return await self.backend.purge(statuses, older_than)

    def __repr__(self) -> str:
        return f"<TaskQueue backend={self.backend!r} serializer={self.codec.name!r}>"


def _check_timeout(timeout: object) -> None:
    """`ConfigurationError` unless ``timeout`` is None or a finite number of seconds >= 0."""
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not 0 <= timeout < math.inf  # NaN fails both comparisons
    ):
        raise ConfigurationError(
            f"timeout must be a finite number of seconds >= 0, or None to wait as long as "
            f"it takes; got {timeout!r}"
        )


def _expired(record: TaskRecord) -> ResultExpired:
    """The error of a result read after ``result_ttl`` dropped it."""
    return ResultExpired(
        f"task {record.id} finished ({record.status.value}) and its result expired: "
        "results are kept for the worker's result_ttl",
        task_id=record.id,
        status=record.status.value,
        finished_at=record.finished_at or 0.0,
    )
