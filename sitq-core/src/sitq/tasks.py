"""Declared tasks: ``@queue.task``, their options, blueprints and the registry of one queue.

A declared task is a function with a stable name and default options. Calling it runs the
function inline; ``.enqueue(*args, **kwargs)`` stores a call (every argument goes to the
function) and returns a typed handle; ``.options(...)`` returns a copy with other options.
One core (`DeclaredTask`, `Enqueuer`) builds the `sitq.Task`; `AsyncTask` and `SyncTask`
only await it on a `TaskQueue` or block on a `SyncTaskQueue`.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypedDict, TypeVar, overload

from .errors import ConfigurationError
from .flow_control import task_limits
from .handles import AsyncTaskHandle, TaskHandle
from .meta import check_meta
from .parent_results import check_pass_mode
from .task import DEFAULT_QUEUE, Task, check_workflow_fields, function_name, validate_options
from .unique import UniqueStates, check_unique
from .validation import check_stored_text
from .workflow_state import PASS_RESULTS_HEADER
from .workflows import Signature, parent_ids

if TYPE_CHECKING:
    from typing_extensions import ParamSpec, Unpack

    P = ParamSpec("P")
else:  # ParamSpec is only needed by type checkers; Generic[P] takes any TypeVar at run time
    P = TypeVar("P")

R = TypeVar("R")
T = TypeVar("T")


class OptionFields(TypedDict, total=False):
    """The per-task options, as keyword arguments of ``@queue.task`` and ``.options()``."""

    queue: str
    priority: int
    eta: datetime | timedelta | float | None
    max_retries: int | None
    timeout: float | None
    dedupe_key: str | None
    meta: Mapping[str, Any]
    limits: Sequence[str]
    unique_for: timedelta | float | None
    unique_states: UniqueStates | None
    depends_on: Any
    allow_failure: bool
    pass_results: str | None


@dataclass(frozen=True)
class TaskOptions:
    """How a declared task's calls are stored: the fields of `sitq.Task` that are not the call.

    Built only through `with_changes`, which rejects unknown names and bad values at the call
    that passed them.
    """

    queue: str = DEFAULT_QUEUE
    priority: int = 0
    eta: datetime | timedelta | float | None = None
    max_retries: int | None = None
    timeout: float | None = None
    dedupe_key: str | None = None
    #: headers stored with every call (`sitq.Task.meta`); enqueue hooks may add more
    meta: Mapping[str, Any] = field(default_factory=dict)
    #: limit keys every call holds (`sitq.flow_control`)
    limits: tuple[str, ...] = ()
    #: how long and over which states ``dedupe_key`` refuses duplicates (`sitq.unique`)
    unique_for: float | None = None
    unique_states: tuple[str, ...] | None = None
    #: tasks to wait for (ids, task handles, workflow handles): `sitq.Task.parents`
    depends_on: tuple[str, ...] = ()
    #: run even when a parent did not succeed (it is passed as a `sitq.ParentFailed`)
    allow_failure: bool = False
    #: receive the parents' results: "first" (the first parent's, as the first argument),
    #: "list" (all of them, in order, as the first argument) or None (nothing)
    pass_results: str | None = None

    def with_changes(self, changes: Mapping[str, Any]) -> TaskOptions:
        """A copy with ``changes``; `ConfigurationError` names an unknown or invalid option."""
        known = [f.name for f in fields(self)]
        for name in changes:
            if name not in known:
                raise ConfigurationError(_unknown_option(name, known))
        options = replace(self, **changes)
        if "meta" in changes:
            options = replace(options, meta=check_meta(options.meta))
        if "depends_on" in changes:
            options = replace(options, depends_on=parent_ids(options.depends_on))
        check_pass_mode(options.pass_results)
        check_workflow_fields(options.depends_on, options.allow_failure, None, "")
        validate_options(
            queue=options.queue,
            priority=options.priority,
            max_retries=options.max_retries,
            timeout=options.timeout,
            dedupe_key=options.dedupe_key,
            eta=options.eta,
        )
        unique_for, unique_states = check_unique(
            options.dedupe_key, options.unique_for, options.unique_states
        )
        return replace(  # in plain forms, as ``sitq tasks --json`` shows them
            options,
            limits=task_limits(options.limits),
            unique_for=unique_for,
            unique_states=None if unique_states is None else tuple(sorted(unique_states)),
        )

    def as_dict(self) -> dict[str, Any]:
        """The options by name."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def task_fields(self) -> dict[str, Any]:
        """What `sitq.Task` takes as keyword arguments: the options, ``depends_on`` as
        ``parents`` and ``pass_results`` as its header (`sitq.workflow_state`)."""
        found = self.as_dict()
        found["parents"] = found.pop("depends_on")
        mode = found.pop("pass_results")
        if mode is not None:
            found["meta"] = {**self.meta, PASS_RESULTS_HEADER: mode}
        return found


def _unknown_option(name: str, known: list[str]) -> str:
    if name == "retry_delay":
        return (
            "retry_delay is not a per-task option: backends store no delay per task. Set it "
            "on the worker, Worker(retry_delay=...), or sitq worker --retry-delay."
        )
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return (
        f"{name!r} is not a task option; {hint}the options are {', '.join(known)}. Arguments "
        "of the function itself go to .enqueue(...)."
    )


class Enqueuer(Generic[P, R]):
    """What to enqueue and how: a declared task and the options its calls are stored with.

    ``R`` is the function's return type as written (a coroutine type for ``async def``);
    handles give what awaiting that produces.
    """

    __slots__ = ("_declared", "_options", "_stored_with")

    def __init__(self, declared: DeclaredTask[P, R], options: TaskOptions) -> None:
        self._declared = declared
        self._options = options
        # resolved once here, not per call: every .enqueue() of this enqueuer passes these
        self._stored_with = options.task_fields()

    @property
    def task_options(self) -> TaskOptions:
        """The options calls are stored with."""
        return self._options

    def _configured(self, changes: Mapping[str, Any]) -> TaskOptions:
        return self._options.with_changes(changes)

    def _task(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Task:
        """The `sitq.Task` of one call: every argument goes to the function."""
        return Task(self._declared, args, kwargs, **self._stored_with)

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A call to run as a workflow member (`sitq.chain`, `sitq.group`, `sitq.chord`),
        with these options; it receives its parents' results before ``args``."""
        return Signature(self._declared, self._options, args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """Like `s`, but the call receives nothing from its parents (it only waits)."""
        return Signature(self._declared, self._options, args, kwargs, immutable=True)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._declared.name} {self._options}>"


class AsyncEnqueuer(Enqueuer[P, R]):
    """Enqueues on a `TaskQueue`: ``await .enqueue(...)`` gives an `AsyncTaskHandle`."""

    __slots__ = ()

    def options(self, **changes: Unpack[OptionFields]) -> AsyncEnqueuer[P, R]:
        """A copy that stores calls with these options changed (the task is not changed)."""
        return AsyncEnqueuer(self._declared, self._configured(changes))

    @overload
    async def enqueue(  # the first overload that matches wins: async def
        self: AsyncEnqueuer[P, Coroutine[Any, Any, T]], *args: P.args, **kwargs: P.kwargs
    ) -> AsyncTaskHandle[T]: ...
    @overload
    async def enqueue(
        self: AsyncEnqueuer[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> AsyncTaskHandle[T]: ...
    async def enqueue(self, *args: Any, **kwargs: Any) -> AsyncTaskHandle[Any]:
        """Store a call to run later; all arguments go to the function."""
        queue = self._declared.queue_for("await {name}.enqueue(...)")
        task_id = await queue._enqueue_task(self._task(args, kwargs), checked=True)
        return AsyncTaskHandle(queue, task_id)


class SyncEnqueuer(Enqueuer[P, R]):
    """Enqueues on a `SyncTaskQueue`: ``.enqueue(...)`` blocks and gives a `TaskHandle`."""

    __slots__ = ()

    def options(self, **changes: Unpack[OptionFields]) -> SyncEnqueuer[P, R]:
        """A copy that stores calls with these options changed (the task is not changed)."""
        return SyncEnqueuer(self._declared, self._configured(changes))

    @overload
    def enqueue(  # the first overload that matches wins: async def
        self: SyncEnqueuer[P, Coroutine[Any, Any, T]], *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle[T]: ...
    @overload
    def enqueue(self: SyncEnqueuer[P, T], *args: P.args, **kwargs: P.kwargs) -> TaskHandle[T]: ...
    def enqueue(self, *args: Any, **kwargs: Any) -> TaskHandle[Any]:
        """Store a call to run later; all arguments go to the function."""
        queue = self._declared.queue_for("{name}.enqueue(...)")
        return TaskHandle(queue, queue._enqueue_task(self._task(args, kwargs), checked=True))


class DeclaredTask(Enqueuer[P, R]):
    """A function with a stable ``name`` and default options; calling it runs it inline.

    It stands in for the function wherever the function is looked up: it pickles by
    reference to where it is defined, it has the function's ``__name__``, ``__module__``,
    ``__qualname__`` and signature, and `inspect.iscoroutinefunction` sees through it.
    """

    def __init__(self, function: Callable[P, R], name: str | None, options: TaskOptions) -> None:
        super().__init__(self, options)
        if not callable(function) or isinstance(function, DeclaredTask):
            raise ConfigurationError(f"@task decorates a function, got {function!r}")
        check_task_name(name)
        functools.update_wrapper(self, function)
        #: The function as written.
        self.function = function
        #: The name the registry, workers and ``sitq tasks`` know it by (``module:qualname``).
        self.name = name or function_name(function)
        self._where: tuple[str, str] = (function.__module__, function.__qualname__)
        # inspect.iscoroutinefunction() (and so the worker's executors) treat an object with
        # a function's code attributes as that function: these make an ``async def`` task
        # count. Plain attributes, not properties: the worker asks for every task it runs.
        if hasattr(function, "__code__"):
            self.__code__ = function.__code__
        self.__defaults__ = getattr(function, "__defaults__", None)
        self.__kwdefaults__ = getattr(function, "__kwdefaults__", None)
        self._queue: Any = None

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function now, in this process (no queue involved)."""
        return self.function(*args, **kwargs)

    def queue_for(self, call: str) -> Any:
        """The queue this task is registered on; `ConfigurationError` naming the fix if none."""
        if self._queue is None:
            raise ConfigurationError(
                f"task {self.name!r} is declared on a blueprint that no queue has registered, "
                f"so {call.format(name=getattr(self.function, '__name__', 'task'))} has "
                "nowhere to go. Call "
                "queue.register(blueprint) when the application builds its queue (calling "
                "the function directly runs it inline)."
            )
        return self._queue

    def __reduce__(self) -> str | tuple[Any, ...]:
        # By reference (the worker imports it) when the module attribute is this task; else
        # (a task declared inside a function) carry the plain function. By reference is
        # pickle's own global form (as for a function: written and read in C) once the module
        # is imported; while it is still being imported, that form would import it again
        # while pickling and deadlock if the importing thread is the one waiting for this
        # enqueue, so `_import_task` (which only looks in sys.modules) stands in.
        name, qualname = self._where
        module = sys.modules.get(name)
        if _attribute(module, qualname) is not self:
            return _plain_function, (self.function,)
        if getattr(getattr(module, "__spec__", None), "_initializing", False):
            return _import_task, self._where
        return qualname

    def __sitq_by_reference__(self) -> bool:
        """True if this task pickles by reference: the attribute it is defined as, in its
        module (already imported), is this task. The standard pickler then writes the bytes
        cloudpickle would, so `sitq.serializers` takes its fast path for it."""
        return _attribute(sys.modules.get(self._where[0]), self._where[1]) is self

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def check_task_name(name: str | None) -> None:
    """`ConfigurationError` unless ``name`` is None (the default name) or a non-empty string."""
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ConfigurationError(f"task name= must be a non-empty string, got {name!r}")
    if name is not None:
        check_stored_text("task name=", name)


def _import_task(module: str, qualname: str) -> Any:
    """Unpickles a task pickled while its module was being imported: ``module.qualname``."""
    imported = sys.modules.get(module)
    return _attribute(
        imported if imported is not None else importlib.import_module(module), qualname
    )


def _attribute(found: Any, qualname: str) -> Any:
    """The attribute ``qualname`` (dotted for nested names) of ``found``, or None."""
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found


def _plain_function(function: Callable[..., Any]) -> Callable[..., Any]:
    """Unpickles a task declared where it cannot be imported from as its plain function."""
    return function


class AsyncTask(AsyncEnqueuer[P, R], DeclaredTask[P, R]):
    """A task declared on a `TaskQueue` (or a `Blueprint`): ``await task.enqueue(...)``."""


class SyncTask(SyncEnqueuer[P, R], DeclaredTask[P, R]):
    """A task declared on a `SyncTaskQueue` (or a `SyncBlueprint`): ``task.enqueue(...)``."""
