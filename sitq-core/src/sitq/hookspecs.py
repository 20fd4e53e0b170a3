"""Every hook a sitq plugin can implement.

A plugin is any module or object with functions named like these hooks and marked with
``@sitq.hookimpl``. Install it as a distribution with an entry point in the ``sitq`` group:

```toml
[project.entry-points.sitq]
myplugin = "my_package.sitq_plugin"
```

and sitq loads it when a queue or worker starts (never at import). Set
``SITQ_DISABLE_PLUGIN_AUTOLOAD=1`` to load none, or ``SITQ_PLUGINS=name1,name2`` to load only
those entry points.

Five kinds of hooks:

* **Registration hooks** (`sitq_backends`, `sitq_serializers`, `sitq_executors`) take no
  argument and return a list of records. Each is called once per plugin manager, the first
  time something needs what it registers (not at import), one implementation at a time in
  registration order; every implementation's records are collected, and two plugins
  registering the same name is a `sitq.errors.PluginError` naming both.
* **Lifecycle hooks** (``sitq_task_*``, ``sitq_worker_*``, ``sitq_schedule_*``) are
  notifications. Every implementation is called, in pluggy's order (last registered first);
  return values are
  ignored, except that an awaitable is awaited. An implementation that raises is logged on the
  ``sitq.plugins`` logger and skipped: it never breaks a worker or loses a task. They run on the
  worker's event loop, so a slow hook slows the worker: keep them quick or hand work off.
* **The enqueue hook** (`sitq_enqueue_headers`) adds headers to each task's ``meta`` as it is
  enqueued (`sitq.headers`).
* **The middleware hook** (`sitq_task_wrap`) wraps each task's run in a worker
  (`sitq.middleware`, docs/guides/middleware.md).
* **The command hook** (`sitq_commands`) adds subcommands to the ``sitq`` command line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping
    from datetime import datetime

    import click

    from .backend import Backend
    from .registry import BackendType, ExecutorType, SerializerType
    from .schedules import Schedule
    from .task import Result, Task
    from .worker import Worker

PROJECT = "sitq"

hookspec = pluggy.HookspecMarker(PROJECT)
#: Marker for hook implementations: decorate your plugin's functions with ``@sitq.hookimpl``.
hookimpl = pluggy.HookimplMarker(PROJECT)


# -- registration ----------------------------------------------------------------------------


@hookspec
def sitq_backends() -> list[BackendType]:  # type: ignore[empty-body]
    """Register storage backends.

    Return a list of `sitq.registry.BackendType` records, each naming a URL scheme and the
    `Backend` subclass that opens it (or a zero-argument function returning the class, to keep
    imports lazy):

    ```python
    from sitq.registry import BackendType

    @sitq.hookimpl
    def sitq_backends():
        return [BackendType("redis", load=lambda: RedisBackend)]
    ```

    Called once per plugin manager. A scheme registered twice is a `sitq.errors.PluginError`.
    """


@hookspec
def sitq_serializers() -> list[SerializerType]:  # type: ignore[empty-body]
    """Register serializers.

    Return a list of `sitq.registry.SerializerType` records, each naming a serializer: an
    object with ``dumps(obj) -> bytes`` and ``loads(bytes) -> obj``. ``carries_code=True`` means
    it can encode functions themselves (like pickle); otherwise functions are sent by import
    path.

    Called once per plugin manager. A name registered twice is a `sitq.errors.PluginError`.
    """


@hookspec
def sitq_executors() -> list[ExecutorType]:  # type: ignore[empty-body]
    """Register executors: where a task's function runs, chosen by ``Worker(worker_type=...)``.

    Return a list of `sitq.registry.ExecutorType` records, each naming a ``worker_type`` and
    the `sitq.executors.Executor` subclass that implements it (or a zero-argument function
    returning the class, to keep imports lazy):

    ```python
    @sitq.hookimpl
    def sitq_executors():
        return [ExecutorType("trio", load=lambda: TrioExecutor)]
    ```

    The worker builds one executor per run as ``cls(max_workers, max_memory_mb=...)``, awaits
    its ``start()``, awaits ``run(call)`` once per task attempt (at most ``max_workers`` at
    once) and awaits ``close()`` when it stops. sitq-core registers ``"async"``, ``"thread"``
    and ``"process"`` this way.

    Called once per plugin manager. A ``worker_type`` registered twice is a
    `sitq.errors.PluginError`; an unknown one is a `sitq.errors.ConfigurationError` listing
    the choices.
    """


@hookspec
def sitq_commands() -> list[click.Command]:  # type: ignore[empty-body]
    """Add subcommands to the ``sitq`` command line (``sitq web`` comes from sitq-web so).

    Return a list of `click.Command` objects; each is added to the ``sitq`` group under its
    own name:

    ```python
    @click.command("hello")
    def hello_command():
        \"\"\"Say hello.\"\"\"
        click.echo("hello")

    @sitq.hookimpl
    def sitq_commands():
        return [hello_command]
    ```

    Called once, when the ``sitq`` command first looks a command up or lists them. A name
    that a built-in command already has, or that two plugins add, stops ``sitq`` with an
    error naming them. Keep the module that implements it light: import what the command needs
    inside the command, so ``sitq -h`` stays quick.
    """


# -- enqueue and middleware ------------------------------------------------------------------


@hookspec
def sitq_enqueue_headers(task: Task) -> Mapping[str, Any] | None:
    """Headers to add to a task's ``meta`` as it is enqueued.

    Called synchronously for every task that `TaskQueue.enqueue` or ``enqueue_many`` stores
    (declared tasks' ``.enqueue`` and ``.options().enqueue`` included), in the enqueuing code's
    thread and context, before the task's record is built: the place to copy what that context
    knows (a trace context, a request id, a tenant) into the task, for the worker's middleware
    to read back as ``task.meta``:

    ```python
    @sitq.hookimpl
    def sitq_enqueue_headers(task):
        return {"request_id": request_id.get()}
    ```

    :param task: the task being enqueued; ``task.meta`` holds the headers its caller set.
        Read it, do not change it.
    :return: a mapping of headers (str keys, JSON values, checked like any ``meta``), or None
        to add nothing. Every implementation is called, in registration order; the mappings
        are merged (a later one's keys over an earlier one's) and the task's own ``meta`` goes
        over them all, so a header the caller set is never replaced. The merged headers are
        stored with the task and set on ``task.meta``.

    Must not be a coroutine function. An implementation that raises, or returns anything but
    a mapping or None, or headers that are not valid ``meta``, fails the enqueue with a
    `sitq.errors.PluginError` naming the plugin; nothing is stored. Not called when no plugin
    implements it.
    """


@hookspec
def sitq_task_wrap(
    task: Task, call_next: Callable[[], Awaitable[Any]], worker: Worker
) -> Awaitable[Any] | Any:
    """Middleware: wrap the run of every task in a worker (docs/guides/middleware.md).

    ```python
    @sitq.hookimpl
    async def sitq_task_wrap(task, call_next):
        async with database.session() as session:
            return await call_next()
    ```

    :param task: the running task, decoded: ``task.id``, ``task.function_name``,
        ``task.queue``, ``task.attempts`` (this attempt counted) and ``task.meta`` (its
        headers). ``sitq.current_task()`` also works here, as in the task.
    :param call_next: a coroutine function of no argument: ``await call_next()`` runs the
        next middleware inward, and the innermost runs the task in the worker's executor. It
        returns the task's value or raises the task's exception. Call it at most once.
    :param worker: the worker running the task.
    :return: the task's value (usually ``await call_next()``), or an awaitable of it. What
        the outermost middleware returns is stored as the task's result; a middleware that
        returns without calling ``call_next`` skips the run, and what it returns is the
        result.

    Calling convention: every implementation wraps the next, outermost first: those marked
    ``tryfirst``, then the rest in registration order (the first registered is outermost),
    then those marked ``trylast``. The chain runs as one coroutine on the worker's event loop,
    around the executor call: for ``worker_type="thread"`` and ``"process"`` the middleware
    runs in the worker process's loop, not in the thread or child process that runs the
    function. Context variables set before ``call_next`` are seen by coroutine functions
    (async worker) and by functions in threads (copied into the thread), not by a child
    process. The task's ``timeout`` limits the executor call only.

    Errors: the task's exception passes through a middleware that lets it propagate
    unchanged (retries as usual). Any other exception a middleware raises, and calling
    ``call_next`` twice, fails the task (retried like any failure) with a
    `sitq.errors.MiddlewareError` naming the plugin, chained to the original; the worker goes
    on. A middleware may also catch the task's exception and return a value: the task then
    succeeds with it. Cancellation (a cancelled task, a lost lease, the worker stopping) is
    delivered through ``call_next`` as `asyncio.CancelledError`: let it through.

    Not called, and costs nothing, when no plugin implements it. The implementations are
    taken once when a worker starts.
    """


# -- lifecycle -------------------------------------------------------------------------------


@hookspec
def sitq_task_enqueued(task: Task, backend: Backend) -> Any:
    """A task was stored as pending by `TaskQueue.enqueue` or `enqueue_many`.

    :param task: the task as enqueued (its ``id`` is final).
    :param backend: the backend it was stored in.
    """


@hookspec
def sitq_task_started(task: Task, worker: Worker) -> Any:
    """A worker claimed ``task`` and is about to run it.

    :param task: the decoded task; ``task.attempts`` counts this attempt.
    :param worker: the worker running it.
    """


@hookspec
def sitq_task_succeeded(task: Task, result: Result, worker: Worker) -> Any:
    """A task returned without raising (a worker's ``on_success`` callback, docs/workers.md).

    :param task: the task that ran.
    :param result: its `Result`; ``result.value`` is the return value.
    :param worker: the worker that ran it.
    """


@hookspec
def sitq_task_failed(
    task: Task, error: BaseException, retry_count: int, will_retry: bool, worker: Worker
) -> Any:
    """A task raised, timed out or could not be decoded (a worker's ``on_error``, docs/workers.md).

    :param task: the task that failed.
    :param error: the exception it raised.
    :param retry_count: how many attempts it has had, this one included (1 on first failure).
    :param will_retry: True if it goes back to the queue for another attempt.
    :param worker: the worker that ran it.
    """


@hookspec
def sitq_task_retried(task: Task, delay: float, worker: Worker) -> Any:
    """A failed task was put back in the queue to run again after ``delay`` seconds.

    :param task: the task; ``task.attempts`` is the number of attempts made so far.
    :param delay: seconds until it becomes due again.
    :param worker: the worker that scheduled the retry.
    """


@hookspec
def sitq_worker_started(worker: Worker) -> Any:
    """A worker connected and is about to take tasks.

    :param worker: the worker; ``worker.worker_id`` names it.
    """


@hookspec
def sitq_worker_stopped(worker: Worker) -> Any:
    """A worker stopped taking tasks and has finished or handed back every running task.

    :param worker: the worker.
    """


@hookspec
def sitq_schedule_fired(schedule: Schedule, fired_at: datetime, task_id: str) -> Any:
    """A scheduler stored the task of one fire of a periodic schedule (`sitq.schedules`).

    Called once per fire time across every scheduler on the store: only the process whose
    write won the fire's unique row calls it.

    :param schedule: the `sitq.Schedule` (``schedule.name``, ``schedule.task_name``).
    :param fired_at: the fire time, an aware datetime in the schedule's time zone.
    :param task_id: the id of the task stored for it.
    """


@hookspec
def sitq_schedule_skipped(schedule: Schedule, fired_at: datetime, reason: str) -> Any:
    """A scheduler decided not to run a missed fire time of a periodic schedule.

    Called when every scheduler was down past the schedule's ``grace`` and its ``catch_up``
    policy drops what was missed (``"none"``, or ``"latest"`` for all but the last missed
    time, or ``"all"`` beyond its ``backfill``). One call per decision, for the latest fire
    time dropped; a paused schedule's fires are not reported.

    :param schedule: the `sitq.Schedule`.
    :param fired_at: the latest fire time dropped, an aware datetime in the schedule's zone.
    :param reason: why, in words (``"missed by 12 min; catch_up='none'"``).
    """


#: Names of the lifecycle hooks (the notifications a worker or queue emits).
LIFECYCLE_HOOKS = (
    "sitq_task_enqueued",
    "sitq_task_started",
    "sitq_task_succeeded",
    "sitq_task_failed",
    "sitq_task_retried",
    "sitq_worker_started",
    "sitq_worker_stopped",
    "sitq_schedule_fired",
    "sitq_schedule_skipped",
)
