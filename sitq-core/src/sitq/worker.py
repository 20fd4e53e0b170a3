"""`Worker`: claims tasks from a backend, runs them, and stores their outcomes.

The loop, in one place (`Worker._serve`):

1. claim as many due tasks as there are free slots, in one backend call;
2. run each in the executor chosen by ``worker_type``, bounded by ``max_workers``;
3. hand each outcome to the `OutcomeWriter` (``outcomes.py``), which writes every outcome
   gathered since its last write in one ``Backend.finish`` call (a group commit);
4. when nothing is due, sleep until an enqueue in this process wakes it or ``poll_interval``
   passes.

A heartbeat thread (``heartbeat.py``) extends the leases of running tasks; a recovery pass
puts back tasks whose worker died. The same object is driven from async code
(``await worker.start()``) or plain code (``worker.start()`` in the background,
``worker.run()`` in the foreground).
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import contextvars
import heapq
import logging
import os
import signal
import socket
import threading
import time
import traceback as traceback_module
import uuid
import weakref
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any

from .backend import Backend, Outcome, TaskRecord
from .bridge import Background, Portal, forbid_running_loop, running_loop
from .context import TaskContext, reset_current, set_current
from .errors import (
    ConfigurationError,
    PayloadError,
    SerializationError,
    TaskNotFound,
    WorkerStateError,
)
from .executors import EXECUTORS, Call, Executor, make_executor
from .heartbeat import LeaseKeeper
from .hookspecs import hookimpl
from .limits import ResourceLimits
from .metrics import Counters, WorkerMetrics, WorkerStatus
from .outcomes import OutcomeWriter
from .payload import Codec, FunctionAllowList, serializer_entry
from .plugins import Lifecycle, PluginManager
from .queue import TaskQueue
from .registry import Serializer, SerializerType
from .retry import RetryPolicy
from .signing import SecretKey, Signer
from .sync import SyncTaskQueue
from .task import Result, Task, TaskStatus, from_timestamp

_DECLINED_MEMORY = 1000  # how many declined task ids a worker remembers (and skips)

#: The worker whose task is running in this context (a task, or a thread running a task).
_current_worker: contextvars.ContextVar[Worker | None] = contextvars.ContextVar(
    "sitq_current_worker", default=None
)


class _OnError:
    """A worker's ``on_error`` argument, as a plugin of its own."""

    def __init__(self, on_error: Callable[[str, BaseException, int], Any]) -> None:
        self.on_error = on_error

    @hookimpl
    def sitq_task_failed(self, task: Task, error: BaseException, retry_count: int) -> Any:
        """Call ``on_error(task_id, error, retry_count)`` (awaited if it returns an awaitable)."""
        return self.on_error(task.id, error, retry_count)


class _OnSuccess:
    """A worker's ``on_success`` argument, as a plugin of its own."""

    def __init__(self, on_success: Callable[[str, Any], Any]) -> None:
        self.on_success = on_success

    @hookimpl
    def sitq_task_succeeded(self, task: Task, result: Result) -> Any:
        """Call ``on_success(task_id, value)`` (awaited if it returns an awaitable)."""
        return self.on_success(task.id, result.value)


def _callbacks(
    on_error: Callable[[str, BaseException, int], Any] | None,
    on_success: Callable[[str, Any], Any] | None,
) -> list[object]:
    """The callback plugins to register: only those given, so the others cost nothing."""
    plugins: list[object] = []
    if on_error is not None:
        plugins.append(_OnError(on_error))
    if on_success is not None:
        plugins.append(_OnSuccess(on_success))
    return plugins


class Worker:
    """Runs tasks from a queue.

    :param queue: a `TaskQueue`, a `SyncTaskQueue` or a `Backend` (also accepted as
        ``backend=``). ``worker.queue`` is that queue (a `TaskQueue` over a bare backend):
        a subclass that calls ``self.queue.get_task(id)`` from plain code wants a
        `SyncTaskQueue`.
    :param worker_id: a name for this worker (default: ``host:pid:random``).
    :param worker_type: ``"async"`` (coroutines on the loop, functions in threads),
        ``"thread"`` (every function in a thread) or ``"process"`` (CPU-bound work in child
        processes that never touch the database; see `sitq.processes`).
    :param max_workers: tasks run at once (default: 100 async, 8 threads, one process per CPU).
    :param poll_interval: seconds between looks at the queue when idle. Enqueues and retries
        in this process wake the worker at once.
    :param max_tasks: stop after exactly this many task attempts (a retry is a new attempt;
        a declined task is not one).
    :param timeout: seconds a task may run (a task's own ``timeout`` wins). On timeout the task
        fails with `TaskTimeout` (and is retried if retries are left). A coroutine is
        cancelled; a child process is killed and replaced (there the timeout counts from the
        function's start, not the child's startup); a thread cannot be stopped: its slot goes
        to a fresh thread at once, while the function runs on unseen until it returns.
    :param max_retries: retries of a failing task (a task's own ``max_retries`` wins).
    :param retry_delay: seconds before the first retry; ``retry_backoff`` multiplies it for each
        later retry (2: exponential), up to ``max_retry_delay``; ``retry_jitter`` randomizes
        it (True: anywhere from 0; a fraction such as 0.2: up to 20 % shorter). See
        `sitq.retry.RetryPolicy`.
    :param retry_failed: False turns every retry off.
    :param continue_on_error: False stops the worker after a task fails for good.
    :param on_error: ``on_error(task_id, error, retry_count)`` after each failed attempt:
        ``error`` is the exception, ``retry_count`` the attempt number (1 on first failure).
    :param on_success: ``on_success(task_id, value)`` after each success, with the returned
        value. Both run on the worker's event loop once the outcome is stored (a coroutine
        function is awaited); one that raises is logged on ``sitq.plugins`` and ignored, so it
        can neither stop the worker nor lose the task. They are registered as a plugin of this
        worker only.
    :param queues: names of the queues to take tasks from (default: all).
    :param serializer: a registered serializer name, or any object with ``dumps``/``loads``
        (such as the ``pickle`` module), that encodes results (default: the serializer named in
        the task record). Readers decode results with the serializer named in the record, so
        it must write what that one reads: a worker built from a queue checks this against
        the queue's serializer at construction, and stores the results of tasks whose own
        serializer cannot read it with that serializer instead (logging a warning).
    :param deserializer: the same kinds of value; decodes task payloads instead of the
        serializer named in the task record (checked against a queue's serializer at
        construction). Needed when tasks were written with a serializer object that is not
        registered in this process.
    :param max_memory_mb: while the worker process uses more resident memory than this, it
        takes no new task; a process worker also replaces children above it (see
        `sitq.limits`).
    :param max_cpu_percent: while the worker and its children use more than this share of the
        machine's CPU (100 = all cores), it takes no new task.
    :param graceful_shutdown: seconds `stop` waits for running tasks before cancelling them and
        handing them back to the queue (pending again, attempt not counted).
    :param lease_seconds: how long a claim holds before another worker may recover the task;
        extended every ``lease_seconds / 3`` from the claim on, by a heartbeat thread that a
        task blocking the event loop cannot starve (see `sitq.heartbeat`). A cancelled task,
        or one whose lease was lost, is stopped at the next heartbeat.
    :param max_attempts: attempts after which a task whose worker keeps dying goes ``dead``.
        Attempts are counted when a task is claimed, so a task that kills its worker runs
        at most this many times.
    :param result_ttl: seconds a finished task keeps its payload and result. After that
        (checked on recovery passes, at least once a minute) they are dropped and a
        tombstone stays, so ``get_result`` raises `ResultExpired` rather than `TaskNotFound`.
        None (the default) keeps them until purged.
    :param secret_key: the key payload signatures are checked with and results signed with
        (see `sitq.signing`); default: the queue's (``TaskQueue(secret_key=...)`` or
        ``$SITQ_SECRET_KEY``). Unsigned or badly signed payloads go dead undecoded.
    :param allowed_functions: ``module:name`` patterns of the functions tasks may call, e.g.
        ``["myapp.tasks:*"]`` (see `sitq.payload.FunctionAllowList`); a task calling anything
        else goes dead unrun, and its module is never imported. With a data-only
        ``deserializer`` ("msgpack" or "json"), the setting for queues that untrusted
        parties write to.
    :param logger: the logger to use (default ``sitq.worker``); never configured by sitq.
    :param log_tasks: log each task's start and end at ``log_level``.
    :param log_errors: log failures with their tracebacks.
    :param log_performance: log throughput every ``performance_interval`` seconds.
    :param plugins: a `PluginManager` (default: the queue's).
    """

    def __init__(
        self,
        queue: TaskQueue | SyncTaskQueue | Backend | None = None,
        *,
        backend: Backend | None = None,
        worker_id: str | None = None,
        worker_type: str = "async",
        max_workers: int | None = None,
        poll_interval: float = 1.0,
        max_tasks: int | None = None,
        timeout: float | None = None,
        max_retries: int = 0,
        retry_delay: float = 1.0,
        retry_backoff: float = 1.0,
        max_retry_delay: float = 3600.0,
        retry_jitter: bool | float = False,
        retry_failed: bool = True,
        continue_on_error: bool = True,
        on_error: Callable[[str, BaseException, int], Any] | None = None,
        on_success: Callable[[str, Any], Any] | None = None,
        queues: Iterable[str] | None = None,
        serializer: str | Serializer | SerializerType | None = None,
        deserializer: str | Serializer | SerializerType | None = None,
        max_memory_mb: float | None = None,
        max_cpu_percent: float | None = None,
        graceful_shutdown: float = 30.0,
        lease_seconds: float = 30.0,
        recovery_interval: float | None = None,
        max_attempts: int = 5,
        result_ttl: float | None = None,
        secret_key: SecretKey | None = None,
        allowed_functions: Iterable[str] | None = None,
        logger: logging.Logger | None = None,
        log_level: int = logging.INFO,
        log_tasks: bool = False,
        log_errors: bool = True,
        log_performance: bool = False,
        performance_interval: float = 60.0,
        plugins: PluginManager | None = None,
    ) -> None:
        if queue is None:
            queue = backend
        elif backend is not None:
            raise ConfigurationError("pass either a queue or backend=, not both")
        if isinstance(queue, SyncTaskQueue):
            self.queue: TaskQueue | SyncTaskQueue = queue
            self._queue = queue.async_queue
        elif isinstance(queue, TaskQueue):
            self.queue = self._queue = queue
        elif isinstance(queue, Backend):
            self._queue = TaskQueue(queue, plugins=plugins)
            self.queue = self._queue
        else:
            raise ConfigurationError(
                f"Worker needs a TaskQueue, SyncTaskQueue or Backend, got {type(queue).__name__}: "
                "write Worker(queue) or Worker(queue.backend)"
            )
        if worker_type not in EXECUTORS:
            _load_process_executor()
        if worker_type not in EXECUTORS:
            raise ConfigurationError(
                f"unknown worker_type {worker_type!r}; choose one of: {', '.join(EXECUTORS)}"
            )
        if max_workers is None:
            max_workers = {"async": 100, "thread": 8}.get(worker_type, os.cpu_count() or 1)
        _check_int("max_workers", max_workers, minimum=1)
        if max_tasks is not None:
            _check_int("max_tasks", max_tasks, minimum=1)
        _check_int("max_attempts", max_attempts, minimum=1)
        for name, value in (
            ("poll_interval", poll_interval),
            ("graceful_shutdown", graceful_shutdown),
            ("lease_seconds", lease_seconds),
        ):
            _check_seconds(name, value, allow_zero=name == "graceful_shutdown")
        if timeout is not None:
            _check_seconds("timeout", timeout)
        if recovery_interval is not None:
            _check_seconds("recovery_interval", recovery_interval)
        for name, fn in (("on_error", on_error), ("on_success", on_success)):
            if fn is not None and not callable(fn):
                raise ConfigurationError(f"{name} must be callable, got {fn!r}")
        if queues is not None:
            if isinstance(queues, str):
                queues = [queues]
            queues = list(queues)
            if not queues or not all(isinstance(q, str) and q for q in queues):
                raise ConfigurationError(
                    f"queues must be a list of queue names, got {queues!r}; "
                    "leave it out to take tasks from every queue"
                )
        self.limits = ResourceLimits(max_memory_mb, max_cpu_percent)

        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.worker_type = worker_type
        self.max_workers = max_workers
        self.poll_interval = float(poll_interval)
        self.max_tasks = max_tasks
        self.timeout = timeout
        self.retry_policy = RetryPolicy(
            max_retries=max_retries,
            retry_delay=retry_delay,
            retry_backoff=retry_backoff,
            max_retry_delay=max_retry_delay,
            retry_jitter=retry_jitter,
            retry_failed=retry_failed,
        )
        self.continue_on_error = continue_on_error
        self.queues = None if queues is None else tuple(queues)
        self.graceful_shutdown = float(graceful_shutdown)
        self.lease_seconds = float(lease_seconds)
        self.recovery_interval = (
            float(recovery_interval) if recovery_interval is not None else self.lease_seconds / 2
        )
        self.max_attempts = max_attempts
        if result_ttl is not None:
            _check_seconds("result_ttl", result_ttl)
            if type(self.backend).expire_results is Backend.expire_results:
                raise ConfigurationError(
                    f"result_ttl needs a backend that can expire results, and "
                    f"{type(self.backend).__name__} cannot; leave result_ttl out and purge "
                    "old tasks instead"
                )
        self.result_ttl = None if result_ttl is None else float(result_ttl)
        self._signer = self._queue.signer if secret_key is None else Signer.from_option(secret_key)
        self._allow = None if allowed_functions is None else FunctionAllowList(allowed_functions)
        self.logger = logger if logger is not None else logging.getLogger("sitq.worker")
        self._writer = OutcomeWriter(self._queue.backend, self.logger)
        self.log_level = log_level
        self.log_tasks = log_tasks
        self.log_errors = log_errors
        self.log_performance = log_performance
        self.performance_interval = performance_interval

        base_plugins = plugins if plugins is not None else self._queue.plugins
        self.plugins = base_plugins.with_plugins(*_callbacks(on_error, on_success))
        self._encoder = _codec("serializer", serializer, self.plugins)
        self._decoder = _codec("deserializer", deserializer, self.plugins)
        if not isinstance(queue, Backend):  # a bare backend says nothing of its enqueuers
            _check_compatible(self._queue.codec, self._encoder, self._decoder)
        if worker_type == "process" and self._decoder is not None:
            from .processes import check_serializer_portable

            check_serializer_portable(self._decoder, "deserializer")
        self._compatible: dict[str, bool] = {}  # record serializer → reads our results?
        self._routing = type(self).should_process_task is not Worker.should_process_task

        self._counters = Counters()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._declined: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._state = "new"  # new → running → stopping → stopped
        self._started_attempts = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._stop_requested = False
        self._portal: Portal | None = None
        self._background: Any = None
        self._lifecycle: Lifecycle | None = None
        self._executor: Executor | None = None
        self._sessions = 0  # open _Session contexts sharing the executor
        self._leases: dict[str, str] = {}
        self._keeper: LeaseKeeper | None = None
        # by (task id, lease token) (a batch claim may share one token): the asyncio task
        # awaiting each running execution, and its context
        self._executing: dict[tuple[str, str], tuple[asyncio.Task[Any] | None, TaskContext]] = {}
        self._lost: set[tuple[str, str]] = set()  # leases the heartbeat found lost
        self._interrupted: set[tuple[str, str]] = set()  # leases whose execution we cancelled
        self._expired_at: float | None = None  # monotonic time of the last expire_results
        self._throttled: str | None = None
        self._retries_due: list[float] = []  # heap: when retries we scheduled become due
        self._claimed_at = 0.0
        self._done = threading.Event()
        self._done.set()
        self._start_pending = False

    # -- public API: lifecycle ---------------------------------------------------------------

    @property
    def backend(self) -> Backend:
        """The backend this worker takes tasks from."""
        return self._queue.backend

    def start(self) -> Any:
        """Start processing.

        In a running event loop this returns a coroutine that processes tasks until `stop`:
        ``asyncio.create_task(worker.start())`` or ``await worker.start()``. From plain code it
        starts the worker on a background thread of its own and returns at once; such a worker
        is stopped gracefully at interpreter exit if `stop` was never called. What it returns
        then can be ignored, or awaited to wait until the worker stops, so that
        ``asyncio.run(worker.start())`` serves until Ctrl-C too.
        """
        if self._state in ("running", "stopping"):
            raise WorkerStateError(f"worker {self.worker_id} is already running")
        if running_loop() is not None:
            self._start_pending = True
            return self._serve()
        self._close_portal()
        self._portal = Portal(f"sitq-worker-{self.worker_id}")
        started = threading.Event()
        self._start_pending = True
        self._background = background = self._portal.submit(self._serve(started=started))
        _stop_at_exit(self)
        while not started.wait(0.05):
            if background.done():
                break
        if background.done() and background.exception() is not None:
            self._background = None
            self._close_portal()
            background.result()  # raises why it could not start
        return Background(background, self._stop_async_from_outside)

    def stop(self) -> Any:
        """Stop taking tasks, let running ones finish (up to ``graceful_shutdown`` seconds),
        hand the rest back to the queue, then return.

        From plain code it blocks until the worker has stopped (a Ctrl-C while it waits cuts
        the grace period short). In a running event loop the stop is requested at once and an
        awaitable is returned: ``await worker.stop()`` waits for the worker to stop. Called
        from one of the worker's own tasks or callbacks, it only requests the stop (waiting
        there would wait for itself).
        """
        self._request_stop()
        if running_loop() is not None:
            if _current_worker.get() is self or not self.is_running:
                done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                done.set_result(None)
                return done
            return asyncio.ensure_future(self._stop_async())
        if _current_worker.get() is self:
            return None
        try:
            self._wait_stopped()
        except KeyboardInterrupt:
            self.graceful_shutdown = 0.0  # a second Ctrl-C: hand running tasks back now
            self._request_stop()
            self._wait_stopped()
            raise
        return None

    def _wait_stopped(self) -> None:
        if self._background is not None:
            try:
                self._background.result()
            finally:
                self._background = None
                self._close_portal()
        else:
            while not self._done.wait(0.1):
                pass

    def _close_portal(self) -> None:
        if self._portal is not None and (self._background is None or self._background.done()):
            self._portal.close()
            self._portal = None

    def run(self, duration: float | None = None) -> None:
        """Process tasks in the foreground for ``duration`` seconds, or until Ctrl-C / SIGTERM.

        Ctrl-C stops gracefully (a second one stops at once, handing running tasks back) and
        then raises `KeyboardInterrupt`, so ``except KeyboardInterrupt`` sees it.
        """
        forbid_running_loop("Worker.run()", "`await worker.start()`")
        if duration is not None:
            _check_seconds("duration", duration, allow_zero=True)
        interrupted = asyncio.run(self._run_for(duration))
        if interrupted:
            raise KeyboardInterrupt

    async def _run_for(self, duration: float | None) -> bool:
        loop = asyncio.get_running_loop()
        interrupted = False

        def on_signal(signum: int) -> None:
            nonlocal interrupted
            interrupted = interrupted or signum == signal.SIGINT
            if self._state == "stopping":
                self.graceful_shutdown = 0.0
                self._wake_now()
            self._request_stop()

        installed = []
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(signum, on_signal, signum)
                    installed.append(signum)
                except (NotImplementedError, RuntimeError):
                    pass
        timer = loop.call_later(duration, self._request_stop) if duration is not None else None
        try:
            await self._serve()
        finally:
            if timer is not None:
                timer.cancel()
            for signum in installed:
                loop.remove_signal_handler(signum)
        return interrupted

    async def _stop_async_from_outside(self) -> None:
        self._request_stop()
        await self._stop_async()

    async def _stop_async(self) -> None:
        if self._stopped is not None and self._loop is asyncio.get_running_loop():
            await asyncio.shield(self._stopped)
        elif self._background is not None:
            await asyncio.wrap_future(self._background)
        else:
            await asyncio.to_thread(self._done.wait)

    def _request_stop(self) -> None:
        if self._start_pending or self.is_running:
            self._stop_requested = True
        loop, event = self._loop, self._stop_event
        if loop is None or event is None or loop.is_closed():
            return
        if running_loop() is loop:
            event.set()
        else:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:
                pass

    def _wake_now(self) -> None:
        if self._stop_event is not None:
            self._stop_event.set()

    @property
    def is_running(self) -> bool:
        """True between start and the end of stop."""
        return self._state in ("running", "stopping")

    # -- public API: one task at a time ------------------------------------------------------

    def process_task(self, task_id: str) -> Any:
        """Run one task now, through its retries, and return its final `Result`.

        In a running event loop this returns a coroutine to await. If another worker has the
        task, waits for its result; a finished task's stored result is returned as is.
        """
        coro = self._process_task_async(task_id)
        return coro if running_loop() is not None else self._run_sync(coro)

    def process_tasks(self, task_ids: Iterable[str]) -> Any:
        """Run several tasks now (concurrently, up to ``max_workers``) and return their
        `Result`s in order. In a running event loop this returns a coroutine to await."""
        coro = self._process_tasks_async(list(task_ids))
        return coro if running_loop() is not None else self._run_sync(coro)

    def _run_sync(self, coro: Coroutine[Any, Any, Any]) -> Any:
        if self._portal is None:
            self._portal = Portal(f"sitq-worker-{self.worker_id}")
        return self._portal.run(coro)

    async def _process_tasks_async(self, task_ids: list[str]) -> list[Result]:
        limit = asyncio.Semaphore(self.max_workers)

        async def one(task_id: str) -> Result:
            async with limit:
                return await self._process_task_async(task_id)

        async with self._session():  # one executor for the batch, not one per call
            return list(await asyncio.gather(*(one(t) for t in task_ids)))

    async def _process_task_async(self, task_id: str) -> Result:
        async with self._session():
            while True:
                record = await self.backend.claim_by_id(
                    task_id, worker_id=self.worker_id, lease_seconds=self.lease_seconds
                )
                if record is None:
                    stored = await self.backend.get_task(task_id)
                    if stored is None:
                        raise TaskNotFound(f"no task with id {task_id!r}")
                    if stored.status.is_final:
                        return self._queue.result_from_record(stored)
                    if stored.status is TaskStatus.RUNNING:
                        return await self._queue.get_result(task_id)
                    continue
                outcome = await self._execute(record)
                if outcome.status is not TaskStatus.PENDING:
                    return self._result_of(record, outcome)
                await asyncio.sleep(max(0.0, (outcome.available_at or 0) - self.backend.clock()))

    # -- public API: routing and monitoring --------------------------------------------------

    def should_process_task(self, task: Task) -> bool:
        """Override to decline tasks: return False and the task goes back to the queue for
        other workers (this one will not claim it again). Named ``queues`` are the efficient
        way to route; this is the flexible one."""
        return True

    def get_status(self) -> WorkerStatus:
        """A snapshot: running or not, counters, running task ids, uptime."""
        c = self._counters
        running = tuple(self._running)
        return WorkerStatus(
            worker_id=self.worker_id,
            is_running=self.is_running,
            tasks_processed=c.processed,
            tasks_succeeded=c.succeeded,
            tasks_failed=c.failed,
            tasks_retried=c.retried,
            current_task_id=running[0] if running else None,
            running_task_ids=running,
            uptime=c.uptime(),
            throttled=self._throttled,
        )

    def get_metrics(self) -> WorkerMetrics:
        """Average duration, throughput and success/error rates since start."""
        return self._counters.metrics()

    # -- the loop ----------------------------------------------------------------------------

    async def _serve(self, started: threading.Event | None = None) -> None:
        if self._state in ("running", "stopping"):
            raise WorkerStateError(f"worker {self.worker_id} is already running")
        self._state = "running"
        self._start_pending = False
        self._done.clear()
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        self._stopped = self._loop.create_future()
        if self._stop_requested:
            self._stop_event.set()
        self._stop_requested = False
        self._counters = Counters(started_at=time.monotonic())
        self._started_attempts = 0
        try:
            async with self._session():
                assert self._lifecycle is not None
                await self._lifecycle.emit("sitq_worker_started", worker=self)
                self.logger.log(
                    self.log_level,
                    "worker %s started: %s x%d on %r, queues %s",
                    self.worker_id,
                    self.worker_type,
                    self.max_workers,
                    self.backend,
                    ", ".join(self.queues) if self.queues else "all",
                )
                if started is not None:
                    started.set()
                background = [asyncio.create_task(self._recover())]
                if self.log_performance:
                    background.append(asyncio.create_task(self._log_performance()))
                try:
                    await self._claim_loop()
                finally:
                    self._state = "stopping"
                    await self._drain()
                    for job in background:
                        job.cancel()
                    await asyncio.gather(*background, return_exceptions=True)
                    await self._lifecycle.emit("sitq_worker_stopped", worker=self)
                    c = self._counters
                    self.logger.log(
                        self.log_level,
                        "worker %s stopped: %d tasks processed, %d failed",
                        self.worker_id,
                        c.processed,
                        c.failed,
                    )
        finally:
            self._state = "stopped"
            self._stop_requested = False
            self._throttled = None
            self._counters.stopped_at = time.monotonic()
            if started is not None:
                started.set()
            if not self._stopped.done():
                self._stopped.set_result(None)
            self._done.set()

    def _session(self) -> _Session:
        return _Session(self)

    async def _claim_loop(self) -> None:
        assert self._stop_event is not None
        stop = self._stop_event
        slot_freed = self._wake = asyncio.Event()
        while not stop.is_set():
            if self.max_tasks is not None and self._started_attempts >= self.max_tasks:
                if not self._running:
                    break
                await _first(stop.wait(), slot_freed.wait())
                slot_freed.clear()
                continue
            free = self.max_workers - len(self._running)
            if free <= 0:
                await _first(stop.wait(), slot_freed.wait())
                slot_freed.clear()
                continue
            if self.max_tasks is not None:
                free = min(free, self.max_tasks - self._started_attempts)
            if self.limits.active and self._throttle():
                await _first(stop.wait(), asyncio.sleep(self.limits.interval))
                continue
            try:
                self._claimed_at = self.backend.clock()
                records = await self.backend.claim(
                    worker_id=self.worker_id,
                    limit=free,
                    lease_seconds=self.lease_seconds,
                    queues=self.queues,
                    exclude=self._declined,
                )
            except Exception:
                self.logger.exception("claiming tasks failed; retrying in %s s", self.poll_interval)
                await _first(stop.wait(), asyncio.sleep(self.poll_interval))
                continue
            if not records:
                await _first(stop.wait(), self.backend.wait_for_work(self._idle_wait()))
                continue
            for record in records:
                self._started_attempts += 1
                if record.lease_token is not None:  # the heartbeat keeps it from the claim on
                    self._leases[record.id] = record.lease_token
                self._running[record.id] = asyncio.create_task(self._run_claimed(record))

    def _throttle(self) -> bool:
        """True while a resource limit says not to claim (logged when it starts and ends)."""
        reason = self.limits.over_limit()
        if reason != self._throttled:
            if reason is not None:
                self.logger.warning("worker %s takes no new task: %s", self.worker_id, reason)
            else:
                self.logger.log(self.log_level, "worker %s takes tasks again", self.worker_id)
            self._throttled = reason
        return reason is not None

    def _idle_wait(self) -> float:
        """Seconds to wait for work after a claim found none: ``poll_interval``, or less if a
        retry we scheduled is due sooner."""
        due = self._retries_due
        while due and due[0] <= self._claimed_at:  # was due at that claim: taken or gone
            heapq.heappop(due)
        if not due:
            return self.poll_interval
        return min(self.poll_interval, max(0.0, due[0] - self.backend.clock()) + 0.001)

    async def _run_claimed(self, record: TaskRecord) -> None:
        try:
            outcome = await self._execute(record)
            if (
                outcome.status in (TaskStatus.FAILED, TaskStatus.DEAD)
                and not self.continue_on_error
            ):
                self.logger.log(
                    self.log_level, "worker %s stops: continue_on_error=False", self.worker_id
                )
                self._request_stop()
        except asyncio.CancelledError:
            pass
        except Exception:  # a bug of ours must not kill the loop or strand the task
            self.logger.exception("sitq worker error while handling task %s", record.id)
            if record.lease_token is not None:
                try:  # fenced: a no-op if its outcome was stored
                    await self.backend.finish([Outcome.release(record.id, record.lease_token)])
                except Exception:
                    self.logger.exception("handing task %s back failed", record.id)
        finally:
            self._running.pop(record.id, None)
            if self._leases.get(record.id) == record.lease_token:  # cancelled before it ran
                del self._leases[record.id]
            if self._wake is not None:
                self._wake.set()

    async def _execute(self, record: TaskRecord) -> Outcome:
        """Run one claimed task and store its outcome; returns the outcome."""
        assert self._lifecycle is not None and self._executor is not None
        lifecycle = self._lifecycle
        assert record.lease_token is not None
        self._leases[record.id] = record.lease_token
        token = _current_worker.set(self)
        try:
            try:
                codec = self._decoder or self._queue.codec_for(record.serializer)
                body = self._signer.open_call(
                    record.id, record.function, record.serializer, record.payload
                )  # checked before a byte of it is decoded
                function, args, kwargs = codec.decode_call(body, self._allow)
            except (PayloadError, LookupError) as exc:
                return await self._undecodable(record, exc)
            task: Task | None = None
            if self._routing or lifecycle.has("sitq_task_started"):
                task = self._task(record, function, args, kwargs)
            if self._routing:
                assert task is not None
                try:
                    accepted = self.should_process_task(task)
                except Exception:
                    self.logger.exception(
                        "should_process_task raised for task %s; declining it", record.id
                    )
                    accepted = False
                if not accepted:
                    return await self._decline(record)
            if task is not None:
                await lifecycle.emit("sitq_task_started", task=task, worker=self)
            if self.log_tasks:
                self.logger.log(
                    self.log_level,
                    "task %s %s started (attempt %d)",
                    record.id,
                    record.function,
                    record.attempts,
                    extra={
                        "task_id": record.id,
                        "function": record.function,
                        "attempt": record.attempts,
                    },
                )
            timeout = record.timeout if record.timeout is not None else self.timeout
            lease = (record.id, record.lease_token)
            if lease in self._lost:  # cancelled (or recovered elsewhere) before it started
                return await self._lease_lost(record)
            if self._keeper is not None:
                self._keeper.deadline(record.id, timeout)
            context = TaskContext(
                record.id, record.attempts, self.worker_id, record.queue, record.function
            )
            began = time.perf_counter()
            try:
                current = set_current(context)
                self._executing[lease] = (asyncio.current_task(), context)
                try:
                    value = await self._executor.run(
                        Call(function, args, kwargs, timeout, record.id, body, codec, context)
                    )
                finally:
                    del self._executing[lease]
                    reset_current(current)
                result = self._signer.seal_result(
                    record.id, self._result_codec(record).encode_result(value)
                )
                limit = self._queue.max_payload_bytes
                if limit is not None and len(result) > limit:
                    raise SerializationError(
                        f"the task returned {len(result):,} bytes once encoded, over the "
                        f"queue's max_payload_bytes ({limit:,}); return a reference (a path, "
                        "a key) to large data instead"
                    )
            except asyncio.CancelledError:
                if lease in self._interrupted and _undo_cancel():
                    return await self._lease_lost(record)
                raise
            except Exception as exc:
                duration = time.perf_counter() - began
                return await self._failed(record, task, function, args, kwargs, exc, duration)
            duration = time.perf_counter() - began
            outcome = Outcome.succeeded(record.id, record.lease_token, result)
            applied = await self._writer.report(outcome)
            self._counters.record(duration, ok=True, retried=False)
            if self.log_tasks:
                self.logger.log(
                    self.log_level,
                    "task %s %s succeeded in %.3f s",
                    record.id,
                    record.function,
                    duration,
                    extra={
                        "task_id": record.id,
                        "function": record.function,
                        "attempt": record.attempts,
                        "duration": duration,
                    },
                )
            if applied and lifecycle.has("sitq_task_succeeded"):
                task = task or self._task(record, function, args, kwargs)
                res = self._result_of(record, outcome, value=value)
                await lifecycle.emit("sitq_task_succeeded", task=task, result=res, worker=self)
            return outcome
        finally:
            self._leases.pop(record.id, None)
            self._lost.discard((record.id, record.lease_token))
            self._interrupted.discard((record.id, record.lease_token))
            _current_worker.reset(token)

    async def _failed(
        self,
        record: TaskRecord,
        task: Task | None,
        function: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        exc: Exception,
        duration: float,
    ) -> Outcome:
        assert self._lifecycle is not None and record.lease_token is not None
        error = f"{type(exc).__name__}: {exc}"
        tb = "".join(traceback_module.format_exception(type(exc), exc, exc.__traceback__))
        will_retry = not isinstance(exc, SerializationError) and self.retry_policy.will_retry(
            record.attempts, record.max_retries
        )
        delay = self.retry_policy.delay(record.attempts) if will_retry else 0.0
        if will_retry:
            due = self.backend.clock() + delay
            outcome = Outcome.retry(record.id, record.lease_token, due, error, tb)
            while self._retries_due and self._retries_due[0] <= self._claimed_at:
                heapq.heappop(self._retries_due)
            heapq.heappush(self._retries_due, due)
        else:
            outcome = Outcome.failed(record.id, record.lease_token, error, tb)
        applied = await self._writer.report(outcome)
        self._counters.record(duration, ok=False, retried=will_retry)
        if self.log_errors:
            self.logger.log(
                logging.ERROR if not will_retry else logging.WARNING,
                "task %s %s failed (attempt %d)%s: %s",
                record.id,
                record.function,
                record.attempts,
                f", retrying in {delay:.3g} s" if will_retry else "",
                error,
                exc_info=(type(exc), exc, exc.__traceback__),
                extra={
                    "task_id": record.id,
                    "function": record.function,
                    "attempt": record.attempts,
                    "duration": duration,
                },
            )
        if applied:
            lifecycle = self._lifecycle
            if lifecycle.has("sitq_task_failed") or lifecycle.has("sitq_task_retried"):
                task = task or self._task(record, function, args, kwargs)
                await lifecycle.emit(
                    "sitq_task_failed",
                    task=task,
                    error=exc,
                    retry_count=record.attempts,
                    will_retry=will_retry,
                    worker=self,
                )
                if will_retry:
                    await lifecycle.emit("sitq_task_retried", task=task, delay=delay, worker=self)
        return outcome

    async def _undecodable(self, record: TaskRecord, exc: Exception) -> Outcome:
        """A payload that cannot be decoded never runs: the task goes dead, the worker goes on."""
        assert self._lifecycle is not None and record.lease_token is not None
        error = f"{type(exc).__name__}: {exc}"
        outcome = Outcome.dead(record.id, record.lease_token, error)
        applied = await self._writer.report(outcome)
        self._counters.record(0.0, ok=False, retried=False)
        self.logger.error(
            "task %s %s cannot run: %s",
            record.id,
            record.function,
            error,
            extra={"task_id": record.id, "function": record.function, "attempt": record.attempts},
        )
        if applied and self._lifecycle.has("sitq_task_failed"):
            task = self._queue.task_from_record(record)
            await self._lifecycle.emit(
                "sitq_task_failed",
                task=task,
                error=exc,
                retry_count=record.attempts,
                will_retry=False,
                worker=self,
            )
        return outcome

    async def _decline(self, record: TaskRecord) -> Outcome:
        assert record.lease_token is not None
        self._declined[record.id] = None
        while len(self._declined) > _DECLINED_MEMORY:
            self._declined.popitem(last=False)
        self._started_attempts -= 1
        outcome = Outcome.release(record.id, record.lease_token)
        await self._writer.report(outcome)
        return outcome

    def _task(
        self,
        record: TaskRecord,
        function: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Task:
        return Task(
            function=function,
            args=args,
            kwargs=kwargs,
            id=record.id,
            queue=record.queue,
            priority=record.priority,
            eta=from_timestamp(record.available_at),
            max_retries=record.max_retries,
            timeout=record.timeout,
            dedupe_key=record.dedupe_key,
            status=TaskStatus.RUNNING,
            attempts=record.attempts,
            created_at=from_timestamp(record.created_at),
            started_at=from_timestamp(record.started_at),
            worker_id=self.worker_id,
        )

    def _result_codec(self, record: TaskRecord) -> Codec:
        """The codec for a task's result: ``serializer`` if the task's own serializer (which
        readers decode results with) reads what it writes, else the task's own."""
        try:
            own = self._queue.codec_for(record.serializer)
        except LookupError:  # not registered here: only our own codecs can write it
            fallback = self._encoder or self._decoder
            if fallback is None:
                raise
            return fallback
        encoder = self._encoder
        if encoder is None:
            return own
        ok = self._compatible.get(record.serializer)
        if ok is None:
            ok = self._compatible[record.serializer] = _writes_for(encoder, own, _PROBE_VALUE)
            if not ok:
                self.logger.warning(
                    "serializer=%r writes results that the %r serializer of some tasks cannot "
                    "read; their results are stored with %r instead",
                    encoder.name,
                    own.name,
                    own.name,
                )
        return encoder if ok else own

    def _result_of(self, record: TaskRecord, outcome: Outcome, value: Any = None) -> Result:
        if outcome.status is TaskStatus.SUCCEEDED and value is None and outcome.result is not None:
            body = self._signer.open_result(record.id, outcome.result)
            value = self._result_codec(record).decode_result(body)
        return Result(
            task_id=record.id,
            status=outcome.status,
            value=value,
            error=outcome.error,
            traceback=outcome.traceback,
            enqueued_at=from_timestamp(record.created_at),
            started_at=from_timestamp(record.started_at),
            finished_at=from_timestamp(outcome.finished_at),
            attempts=record.attempts,
        )

    # -- background duties -------------------------------------------------------------------

    def _leases_lost(self, lost: dict[str, str]) -> None:
        """The heartbeat found these leases gone (on this loop): the task was cancelled, or
        recovered by another worker after this one stalled. Stop their executions."""
        for task_id, token in lost.items():
            if self._leases.get(task_id) != token:
                continue  # its outcome was stored meanwhile
            lease = (task_id, token)
            self._lost.add(lease)
            running = self._executing.get(lease)
            if running is None:
                continue  # not started yet (it never will) or already reporting (refused)
            job, context = running
            context.request_stop()
            if job is not None and not job.done():
                self._interrupted.add(lease)
                job.cancel()

    async def _lease_lost(self, record: TaskRecord) -> Outcome:
        """End an execution whose lease is gone: nothing is stored (nothing could be)."""
        assert record.lease_token is not None
        why = "it was recovered by another worker after this one stalled past its lease"
        try:
            stored = await self.backend.get_task(record.id)
            if stored is not None and stored.status is TaskStatus.CANCELLED:
                why = "it was cancelled"
        except Exception:
            pass
        self.logger.warning(
            "task %s %s stopped (attempt %d): %s. A coroutine is cancelled and a child process "
            "killed; a function in a thread runs on until it returns (it can check "
            "sitq.current_task().cancelled), and what it returns is thrown away.",
            record.id,
            record.function,
            record.attempts,
            why,
            extra={"task_id": record.id, "function": record.function, "attempt": record.attempts},
        )
        return Outcome.release(record.id, record.lease_token)  # not stored: for the caller

    async def _recover(self) -> None:
        while True:
            try:
                recovered = await self.backend.recover_expired(max_attempts=self.max_attempts)
                if recovered:
                    self.logger.warning(
                        "recovered %d tasks whose worker stopped answering", len(recovered)
                    )
                await self._expire_results()
            except Exception:
                self.logger.exception("recovering expired leases failed")
            await asyncio.sleep(self.recovery_interval)

    async def _expire_results(self) -> None:
        """Drop payloads and results older than ``result_ttl`` (at most once a minute, or
        once per ``result_ttl`` if shorter)."""
        if self.result_ttl is None:
            return
        now = time.monotonic()
        if self._expired_at is not None and now < self._expired_at + min(self.result_ttl, 60.0):
            return
        self._expired_at = now
        count = await self.backend.expire_results(self.backend.clock() - self.result_ttl)
        if count:
            self.logger.log(self.log_level, "expired the results of %d tasks (result_ttl)", count)

    async def _log_performance(self) -> None:
        while True:
            await asyncio.sleep(self.performance_interval)
            m = self.get_metrics()
            self.logger.log(
                self.log_level,
                "worker %s: %d tasks, %.1f tasks/s, avg %.4f s, success rate %.1f%%",
                self.worker_id,
                m.tasks_processed,
                m.tasks_per_second,
                m.avg_task_duration,
                100 * m.success_rate,
                extra={"worker_id": self.worker_id, "metrics": m},
            )

    async def _drain(self) -> None:
        """Wait up to ``graceful_shutdown`` for running tasks, then cancel and release them."""
        if not self._running:
            return
        pending = set(self._running.values())
        assert self._stop_event is not None
        deadline = asyncio.get_running_loop().time() + self.graceful_shutdown
        while pending:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0 or self.graceful_shutdown == 0:
                break
            _, pending = await asyncio.wait(pending, timeout=min(remaining, 0.1))
            pending = {t for t in pending if not t.done()}
        if pending:
            leases = dict(self._leases)
            for job in pending:
                job.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await self._release_all(leases)
        # outcomes of cancelled tasks may still be on their way to the backend
        await self._writer.wait_flushed()

    async def _release_all(self, leases: dict[str, str]) -> None:
        if not leases:
            return
        outcomes = [Outcome.release(task_id, token) for task_id, token in leases.items()]
        for attempt in range(5):
            try:
                applied = await self.backend.finish(outcomes)
                break
            except Exception:
                self.logger.exception("handing %d tasks back failed", len(outcomes))
                if attempt == 4:
                    return  # their leases lapse and recovery hands them back
                await asyncio.sleep(0.1 * 2**attempt)
        self.logger.warning(
            "worker %s handed %d unfinished tasks back to the queue",
            self.worker_id,
            sum(applied),
        )

    def __repr__(self) -> str:
        return f"<Worker {self.worker_id} {self.worker_type} x{self.max_workers} {self._state}>"


class _Session:
    """Connects the backend and sets up the executor and hooks for a run or a one-off call.

    Sessions nest and overlap (``process_task`` calls running at once, or during a run): the
    first one in sets the executor up, the last one out tears it down.
    """

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    async def __aenter__(self) -> None:
        w = self.worker
        await w._queue.connect()
        w._sessions += 1
        if w._executor is None:
            w._lifecycle = w.plugins.lifecycle()
            executor = make_executor(
                w.worker_type, w.max_workers, max_memory_mb=w.limits.max_memory_mb
            )
            try:
                await executor.start()
            except BaseException:
                w._sessions -= 1
                with contextlib.suppress(Exception):
                    await executor.close()
                raise
            w._executor = executor
            w._keeper = LeaseKeeper(
                w.backend,
                w._leases,
                lease_seconds=w.lease_seconds,
                interval=w.lease_seconds / 3,
                on_lost=w._leases_lost,
                logger=w.logger,
            )
            w._keeper.start()

    async def __aexit__(self, *exc: object) -> None:
        w = self.worker
        w._sessions -= 1
        if w._sessions > 0:  # a concurrent run or call still uses the executor
            return
        if w._keeper is not None:
            keeper, w._keeper = w._keeper, None
            await keeper.stop()
        if w._executor is not None:
            executor, w._executor = w._executor, None
            await executor.close()


def _undo_cancel() -> bool:
    """Take back one `cancel()` of the current task (ours); False if another one is pending,
    which the caller must then let through."""
    uncancel = getattr(asyncio.current_task(), "uncancel", None)  # Python 3.11+
    return uncancel is None or uncancel() == 0


async def _first(*aws: Coroutine[Any, Any, Any]) -> None:
    """Wait until the first of ``aws`` finishes; cancel the others."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


def _check_int(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_seconds(name: str, value: Any, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigurationError(f"{name} must be a number of seconds {bound}, got {value!r}")


def _codec(name: str, spec: Any, plugins: PluginManager) -> Codec | None:
    """The codec for a ``serializer=``/``deserializer=`` argument, or a clear error."""
    if spec is None:
        return None
    if not isinstance(spec, (str, SerializerType)) and not (
        callable(getattr(spec, "dumps", None)) and callable(getattr(spec, "loads", None))
    ):
        raise ConfigurationError(
            f"{name}={spec!r} has no dumps()/loads(); pass a registered serializer name "
            f"({', '.join(sorted(plugins.serializers))}) or an object with dumps(obj) -> bytes "
            "and loads(bytes) -> obj, such as the pickle module"
        )
    return Codec(serializer_entry(spec, plugins))


_PROBE_VALUE = {"sitq": [1, 2.5, "probe", None, True]}
_PROBE_CALL = ("sitq.probe:probe", [1, "a"], {"k": [1.5, None]})


def _writes_for(writer: Codec, reader: Codec, sample: Any) -> bool:
    """True if ``reader`` reads back what ``writer`` writes (lists and tuples alike)."""
    try:
        back = reader.serializer.loads(writer.serializer.dumps(sample))
    except Exception:
        return False
    return bool(_plain(back) == _plain(sample))


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _check_compatible(queue: Codec, encoder: Codec | None, decoder: Codec | None) -> None:
    """Reject a serializer/deserializer that cannot talk to the queue's serializer."""
    if encoder is not None and not _writes_for(encoder, queue, _PROBE_VALUE):
        raise ConfigurationError(
            f"serializer={encoder.name!r} writes results that this queue's {queue.name!r} "
            f"serializer (which get_result decodes them with) cannot read. Leave serializer "
            f"out to store results with the task's own serializer, or use the same one as "
            f"the queue: TaskQueue(..., serializer=...)."
        )
    if decoder is not None and not _writes_for(queue, decoder, _PROBE_CALL):
        raise ConfigurationError(
            f"deserializer={decoder.name!r} cannot read task payloads written by this queue's "
            f"{queue.name!r} serializer. Leave deserializer out to decode each task with the "
            f"serializer it was stored with, or use the same one as the queue."
        )


_at_exit: weakref.WeakSet[Worker] = weakref.WeakSet()
_at_exit_lock = threading.Lock()
_at_exit_registered = False


def _stop_at_exit(worker: Worker) -> None:
    """Stop ``worker`` gracefully at interpreter exit if it is still running then.

    The hook runs where `concurrent.futures` registers its own (``threading``'s exit hooks,
    last registered first), so the stop happens while thread pools still take work, and before
    the process executor's `atexit` handler kills child processes.
    """
    global _at_exit_registered
    with _at_exit_lock:
        _at_exit.add(worker)
        if not _at_exit_registered:
            # loaded now, thread pools register their exit hook before ours, so ours runs first
            import concurrent.futures.thread  # noqa: F401

            register = getattr(threading, "_register_atexit", atexit.register)
            try:
                register(_stop_workers)
            except RuntimeError:  # the interpreter is already shutting down
                return
            _at_exit_registered = True


def _stop_workers() -> None:
    for worker in list(_at_exit):
        if worker._background is not None:
            try:
                worker.stop()
            except BaseException:
                worker.logger.exception("stopping worker %s at exit failed", worker.worker_id)


def _load_process_executor() -> None:
    """Register the process executor (kept in its own module: it pulls in multiprocessing)."""
    try:
        from . import processes  # noqa: F401
    except ImportError:
        pass


__all__: Sequence[str] = ("Worker", "WorkerMetrics", "WorkerStatus")
