"""Where declared tasks live: a queue's `TaskRegistry`, `Blueprint`s, and ``queue.task``.

`DeclaresTasks` gives `TaskQueue` and `SyncTaskQueue` their ``task``, ``register`` and
``tasks``. A `SyncTaskQueue` keeps its tasks in the registry of the `TaskQueue` it drives, so
a worker built on either sees the same names.

A blueprint declares tasks before any queue exists (in a library, say) and its tasks bind to
the queue that registers it. Its flavour is chosen when it is declared, because the code
calling ``.enqueue`` is written either to await or to block: `Blueprint` tasks are awaited
and register on a `TaskQueue`; `SyncBlueprint` tasks block and register on a `SyncTaskQueue`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from .errors import ConfigurationError, PayloadError
from .schedules import (
    SCHEDULE_FIELDS,
    Schedule,
    ScheduleBook,
    ScheduleFields,
    make_schedule,
)
from .task import function_name
from .tasks import (
    AsyncTask,
    DeclaredTask,
    Enqueuer,
    OptionFields,
    SyncTask,
    TaskOptions,
    check_task_name,
)

if TYPE_CHECKING:
    from typing_extensions import ParamSpec, Unpack

    P = ParamSpec("P")
else:
    P = TypeVar("P")

R = TypeVar("R")


class PeriodicFields(OptionFields, ScheduleFields, total=False):
    """The keyword arguments of ``periodic``: the schedule's and the task's options."""


TaskT = TypeVar("TaskT", bound=DeclaredTask[Any, Any])


class TaskRegistry(Mapping[str, DeclaredTask[Any, Any]]):
    """The declared tasks of one queue, by name (read-only; tasks are added by declaring).

    Also the rules that use names: `resolve` for a worker decoding a stored name,
    `check_enqueue` for a string enqueued, and the allow-list interface of
    `sitq.payload.FunctionAllowList` (`allows`, `check_path`, `check_defined`) for
    ``allowed_functions="declared"``. A task is known by its name and by its import path
    (``module:qualname``, what a stored record names it by).
    """

    def __init__(self) -> None:
        self._by_name: dict[str, DeclaredTask[Any, Any]] = {}
        self._by_path: dict[str, DeclaredTask[Any, Any]] = {}

    def add(self, task: DeclaredTask[Any, Any]) -> None:
        """Register ``task``; `ConfigurationError` if another task has its name."""
        other = self._by_name.get(task.name)
        if other is task:
            return
        if other is not None:
            raise ConfigurationError(
                f"two tasks are named {task.name!r}: {function_name(other.function)} and "
                f"{function_name(task.function)}. Give one another name: @queue.task(name=...)."
            )
        self._by_name[task.name] = task
        self._by_path.setdefault(function_name(task.function), task)

    def __getitem__(self, name: str) -> DeclaredTask[Any, Any]:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def find(self, name: str) -> DeclaredTask[Any, Any] | None:
        """The task with this name or import path, or None."""
        return self._by_name.get(name) or self._by_path.get(name)

    def resolve(self, name: str) -> Callable[..., Any] | None:
        """The function to run for a stored name (a task name or import path), or None.

        A worker asks this before importing ``name``, so a custom ``name=`` runs too.
        """
        task = self.find(name)
        return None if task is None else task.function

    def check_enqueue(self, name: str) -> None:
        """Refuse enqueueing the string ``name`` if this queue declares tasks and not this one.

        `ConfigurationError` lists the closest declared names. A queue without declared
        tasks accepts any import path, as before.
        """
        if not self._by_name or self.find(name) is not None:
            return
        known = sorted({*self._by_name, *self._by_path})
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"Did you mean {', '.join(map(repr, close))}? " if close else ""
        raise ConfigurationError(
            f"no declared task is named {name!r}. {hint}This queue declares "
            f"{len(self._by_name)} task(s) (see queue.tasks or `sitq tasks APP`); declare it "
            "with @queue.task, or pass the function itself."
        )

    def allows(self, path: str) -> bool:
        """True if ``path`` names a declared task (the allow-list of ``"declared"``)."""
        return self.find(path) is not None

    def check_path(self, path: str) -> None:
        """`PayloadError` unless ``path`` names a declared task."""
        if not self.allows(path):
            raise PayloadError(
                f"task function {path!r} is not a declared task of this queue, and this "
                "worker runs declared tasks only (allowed_functions='declared')"
            )

    def check_defined(self, function: Callable[..., Any], path: str) -> None:
        """`PayloadError` unless ``function`` is the declared task ``path`` names."""
        task = self.find(path)
        if task is None or function not in (task, task.function):
            raise PayloadError(f"task function {path!r} is not the task declared under it")

    def __repr__(self) -> str:
        return f"<TaskRegistry {list(self._by_name)}>"


def _declare(
    kind: type[TaskT],
    function: Callable[..., Any] | None,
    name: str | None,
    options: Mapping[str, Any],
    add: Callable[[TaskT], None],
) -> Any:
    """``@x.task`` and ``@x.task(...)``: build a ``kind`` task and hand it to ``add``."""
    check_task_name(name)
    defaults = TaskOptions().with_changes(options)

    def decorate(fn: Callable[..., Any]) -> TaskT:
        task = kind(fn, name, defaults)
        add(task)
        return task

    return decorate if function is None else decorate(function)


def _periodic(
    kind: type[TaskT],
    function: object,
    name: str | None,
    arguments: Mapping[str, Any],
    add: Callable[[TaskT], None],
    add_schedule: Callable[[Schedule], None],
) -> Callable[[Callable[..., Any]], TaskT]:
    """``@x.periodic(...)``: declare a ``kind`` task (options from ``arguments``) and its
    schedule (the `ScheduleFields` in ``arguments``), both named ``name``."""
    if function is not None:
        raise ConfigurationError(
            "periodic needs its schedule: write @queue.periodic(cron='*/5 * * * *') or "
            "@queue.periodic(every=timedelta(seconds=10)), not a bare @queue.periodic"
        )
    fields = {k: v for k, v in arguments.items() if k in SCHEDULE_FIELDS}
    options = {k: v for k, v in arguments.items() if k not in SCHEDULE_FIELDS}
    declare = _declare(kind, None, name, options, lambda task: None)

    def decorate(fn: Callable[..., Any]) -> TaskT:
        task: TaskT = declare(fn)
        schedule = make_schedule(task, name=name, **fields)  # checked before the task is added
        add(task)
        add_schedule(schedule)
        return task

    return decorate


class _Blueprint(Generic[TaskT]):
    """Tasks declared before their queue exists; `DeclaresTasks.register` binds them."""

    _kind: type[TaskT]
    _queue_class: str

    def __init__(self) -> None:
        self._tasks: list[TaskT] = []
        self._schedules: list[Schedule] = []

    @property
    def tasks(self) -> tuple[TaskT, ...]:
        """The tasks declared on this blueprint, in order."""
        return tuple(self._tasks)

    @property
    def schedules(self) -> tuple[Schedule, ...]:
        """The schedules declared on this blueprint, in order (`periodic`, `schedule`)."""
        return tuple(self._schedules)

    def _add(self, task: TaskT) -> None:
        self._tasks.append(task)

    def periodic(
        self, function: None = None, /, *, name: str | None = None, **fields: Any
    ) -> Callable[[Callable[..., Any]], TaskT]:
        """Declare a task and its schedule; both go to the queue that registers this
        blueprint. Arguments as `DeclaresTasks.periodic`."""
        return _periodic(self._kind, function, name, fields, self._add, self._schedules.append)

    def schedule(
        self,
        task: Any,
        /,
        *,
        name: str | None = None,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **fields: Unpack[ScheduleFields],
    ) -> Schedule:
        """Schedule a task declared already; added to the queue that registers this
        blueprint. Arguments as `DeclaresTasks.schedule`."""
        found = make_schedule(task, name=name, args=args, kwargs=kwargs, **fields)
        self._schedules.append(found)
        return found


class Blueprint(_Blueprint[AsyncTask[Any, Any]]):
    """Declare async tasks in a module that has no queue; ``queue.register(bp)`` on a
    `TaskQueue` later. Their ``.enqueue`` is awaited; before registration it raises."""

    _kind = AsyncTask
    _queue_class = "TaskQueue"

    @overload
    def task(self, function: Callable[P, R], /) -> AsyncTask[P, R]: ...
    @overload
    def task(
        self, /, *, name: str | None = None, **options: Unpack[OptionFields]
    ) -> Callable[[Callable[P, R]], AsyncTask[P, R]]: ...
    def task(
        self,
        function: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        **options: Any,
    ) -> Any:
        """Declare a task: ``@bp.task`` or ``@bp.task(name=..., queue=..., priority=...)``."""
        return _declare(AsyncTask, function, name, options, self._add)


class SyncBlueprint(_Blueprint[SyncTask[Any, Any]]):
    """Declare blocking tasks in a module that has no queue; ``queue.register(bp)`` on a
    `SyncTaskQueue` later. Their ``.enqueue`` blocks; before registration it raises."""

    _kind = SyncTask
    _queue_class = "SyncTaskQueue"

    @overload
    def task(self, function: Callable[P, R], /) -> SyncTask[P, R]: ...
    @overload
    def task(
        self, /, *, name: str | None = None, **options: Unpack[OptionFields]
    ) -> Callable[[Callable[P, R]], SyncTask[P, R]]: ...
    def task(
        self,
        function: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        **options: Any,
    ) -> Any:
        """Declare a task: ``@bp.task`` or ``@bp.task(name=..., queue=..., priority=...)``."""
        return _declare(SyncTask, function, name, options, self._add)


BlueprintT = TypeVar("BlueprintT", Blueprint, SyncBlueprint)


class DeclaresTasks(Generic[BlueprintT]):
    """``task``, ``register`` and ``tasks`` of `TaskQueue` and `SyncTaskQueue`.

    ``BlueprintT`` is the blueprint kind whose tasks the queue takes: `Blueprint` for a
    `TaskQueue`, `SyncBlueprint` for a `SyncTaskQueue`; its tasks are the ones ``task`` makes.
    """

    def _core_queue(self) -> Any:
        # A SyncTaskQueue drives a TaskQueue (its .async_queue): the registry lives there.
        return getattr(self, "async_queue", self)

    def _task_kind(self) -> type[DeclaredTask[Any, Any]]:
        return AsyncTask if self._core_queue() is self else SyncTask

    @property
    def tasks(self) -> TaskRegistry:
        """The declared tasks of this queue by name (a read-only mapping)."""
        return self._task_registry()

    def _task_registry(self) -> TaskRegistry:
        # made on first use: the queues' constructors know nothing of declared tasks
        core = self._core_queue()
        registry: TaskRegistry | None = core.__dict__.get("_declared_tasks")
        if registry is None:
            registry = core.__dict__["_declared_tasks"] = TaskRegistry()
        return registry

    @overload
    def task(self: DeclaresTasks[Blueprint], function: Callable[P, R], /) -> AsyncTask[P, R]: ...
    @overload
    def task(self: DeclaresTasks[SyncBlueprint], function: Callable[P, R], /) -> SyncTask[P, R]: ...
    @overload
    def task(
        self: DeclaresTasks[Blueprint],
        /,
        *,
        name: str | None = None,
        **options: Unpack[OptionFields],
    ) -> Callable[[Callable[P, R]], AsyncTask[P, R]]: ...
    @overload
    def task(
        self: DeclaresTasks[SyncBlueprint],
        /,
        *,
        name: str | None = None,
        **options: Unpack[OptionFields],
    ) -> Callable[[Callable[P, R]], SyncTask[P, R]]: ...
    def task(
        self,
        function: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        **options: Any,
    ) -> Any:
        """Declare a task on this queue: ``@queue.task`` or ``@queue.task(queue=..., ...)``.

        Options (``queue``, ``priority``, ``eta``, ``max_retries``, ``timeout``,
        ``dedupe_key``, ``meta``) are its defaults; ``name`` (default ``module:qualname``) is
        the name the registry knows it by. See `sitq.tasks`.
        """
        return _declare(self._task_kind(), function, name, options, self._bind)

    # -- periodic schedules (sitq.schedules) ------------------------------------------------

    @property
    def schedules(self) -> ScheduleBook:
        """The periodic schedules of this queue by name (a read-only mapping)."""
        core = self._core_queue()
        book: ScheduleBook | None = core.__dict__.get("_schedules")
        if book is None:
            book = core.__dict__["_schedules"] = ScheduleBook()
        return book

    @overload
    def periodic(
        self: DeclaresTasks[Blueprint],
        /,
        *,
        name: str | None = None,
        **arguments: Unpack[PeriodicFields],
    ) -> Callable[[Callable[P, R]], AsyncTask[P, R]]: ...
    @overload
    def periodic(
        self: DeclaresTasks[SyncBlueprint],
        /,
        *,
        name: str | None = None,
        **arguments: Unpack[PeriodicFields],
    ) -> Callable[[Callable[P, R]], SyncTask[P, R]]: ...
    def periodic(
        self, function: Any = None, /, *, name: str | None = None, **arguments: Any
    ) -> Any:
        """Declare a task and its periodic schedule: ``@queue.periodic(cron="*/5 * * * *",
        tz="Europe/Berlin")`` or ``@queue.periodic(every=timedelta(seconds=10))``.

        Schedule arguments: ``cron`` (five fields, or six with leading seconds, or
        ``@hourly``…) or ``every``; ``tz`` (cron only, default UTC); ``catch_up``
        (``"latest"``, ``"all"``, ``"none"``), ``grace`` and ``backfill`` (see
        `sitq.schedules`). Every other keyword is a task option as in `task`. ``name`` names
        the task and the schedule (default: the task's ``module:qualname``). A function taking
        ``fired_at`` is given the fire time (an aware datetime).
        """
        kind = self._task_kind()
        return _periodic(kind, function, name, arguments, self._bind, self.schedules.add)

    def schedule(
        self,
        task: Enqueuer[Any, Any],
        /,
        *,
        name: str | None = None,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **fields: Unpack[ScheduleFields],
    ) -> Schedule:
        """Run a declared task periodically: ``queue.schedule(report.options(queue="x"),
        cron="0 6 * * MON-FRI", args=("daily",))``. ``name`` defaults to the task's name;
        the other arguments are `periodic`'s."""
        found = make_schedule(task, name=name, args=args, kwargs=kwargs, **fields)
        self.schedules.add(found)
        return found

    def register(self, blueprint: BlueprintT) -> None:
        """Bind every task of ``blueprint`` to this queue and add it to `tasks`, and its
        schedules to `schedules`."""
        if not isinstance(blueprint, _Blueprint):
            raise ConfigurationError(
                f"register() takes a sitq.Blueprint or sitq.SyncBlueprint, got {blueprint!r}"
            )
        if blueprint._kind is not self._task_kind():
            other = "SyncBlueprint" if blueprint._kind is AsyncTask else "Blueprint"
            raise ConfigurationError(
                f"a {type(blueprint).__name__} declares tasks for a {blueprint._queue_class}, "
                f"and this is a {type(self).__name__}. Register it on a "
                f"{blueprint._queue_class}, or declare the tasks on a sitq.{other}()."
            )
        for task in blueprint.tasks:
            self._bind(task)
        for schedule in blueprint.schedules:
            self.schedules.add(schedule)

    def _bind(self, task: DeclaredTask[Any, Any]) -> None:
        bound = task._queue
        if bound is not None and bound is not self and not _closed(bound):
            raise ConfigurationError(
                f"task {task.name!r} is already registered on {bound!r}, which is open; a "
                "declared task enqueues to one queue. Close that queue first."
            )
        self._task_registry().add(task)
        task._queue = self


def _closed(queue: Any) -> bool:
    return bool(getattr(queue, "async_queue", queue).closed)
