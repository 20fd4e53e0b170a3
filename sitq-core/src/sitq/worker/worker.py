"""`Worker`: the one class users run tasks with, from async code or plain code.

It is built from a `WorkerConfig` (``config.py``) and holds the parts that run it: the claim
loop (``loop.py``), which runs each task through a `TaskExecution` (``execution.py``) and
hands outcomes to an `OutcomeWriter` (a group commit); the `LeaseTable` (``leases.py``) that
the heartbeat thread (``heartbeat.py``) extends; the background duties (``upkeep.py``:
recovery, result expiry, drain); and the `Runner` (``runner.py``) that drives it from plain
code. This module holds its public API, its state, status and metrics.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import logging
import os
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import replace
from datetime import timedelta
from typing import Any, Generic, TypeVar, overload

from ..backend import Backend, Capability
from ..bridge import Deferred, Portal, Waiter, done, forbid_running_loop, running_loop
from ..errors import ConfigurationError, TaskNotFound, WorkerStateError
from ..executors import Executor
from ..heartbeat import LeaseKeeper
from ..metrics import Counters, WorkerMetrics, WorkerStatus
from ..outcomes import OutcomeWriter
from ..payload import AllowList, FunctionAllowList
from ..plugins import Lifecycle, PluginManager
from ..queue import TaskQueue
from ..registry import Serializer, SerializerType
from ..retention import DEFAULT_FAILED_RETENTION, DEFAULT_RETENTION
from ..scheduler import check_scheduler
from ..signing import SecretKey
from ..sync import SyncTaskQueue
from ..task import Result, Task, TaskStatus
from .callbacks import callback_plugins
from .config import WorkerConfig
from .execution import TaskExecution, current_worker, result_of
from .leases import Lease, LeaseTable
from .loop import serve
from .progress import ProgressRelay
from .runner import Runner
from .session import Session

_DECLINED_MEMORY = 1000  # how many declined task ids a worker remembers (and skips)

T = TypeVar("T")


class _Option(Generic[T]):
    """A worker attribute that reads one `WorkerConfig` field; setting it replaces the config
    with a checked copy."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, worker: None, owner: type) -> _Option[T]: ...
    @overload
    def __get__(self, worker: Worker, owner: type) -> T: ...
    def __get__(self, worker: Worker | None, owner: type) -> _Option[T] | T:
        if worker is None:
            return self
        value: T = getattr(worker.config, self.name)
        return value

    def __set__(self, worker: Worker, value: T) -> None:
        changes: dict[str, Any] = {self.name: value}
        worker.config = replace(worker.config, **changes)


class Worker:
    """Runs tasks from a queue.

    :param queue: a `TaskQueue`, a `SyncTaskQueue` or a `Backend` (also accepted as
        ``backend=``). ``worker.queue`` is that queue (a `TaskQueue` over a bare backend):
        a subclass that calls ``self.queue.get_task(id)`` from plain code wants a
        `SyncTaskQueue`.

    Every other keyword is an option of `WorkerConfig`, which says what each does and what
    it accepts; ``worker.config`` holds them, checked, and each is also an attribute
    (``worker.max_workers``, ``worker.lease_seconds``...). ``worker.retry_policy`` and
    ``worker.limits`` are the `RetryPolicy` and `ResourceLimits` built from them.

    The same worker runs from async code (``await worker.start()``,
    ``asyncio.create_task(worker.start())``, ``await worker.stop()``,
    ``await worker.process_task_async(id)``) and from plain code (``worker.start()`` in the
    background, ``worker.stop()``, ``worker.run(duration=60)``,
    ``worker.process_task(id)``). Subclasses may override `should_process_task`.
    """

    worker_type = _Option[str]()
    poll_interval = _Option[float]()
    max_tasks = _Option["int | None"]()
    timeout = _Option["float | None"]()
    continue_on_error = _Option[bool]()
    scheduler = _Option[bool]()
    queues = _Option["tuple[str, ...] | None"]()
    graceful_shutdown = _Option[float]()
    lease_seconds = _Option[float]()
    max_attempts = _Option[int]()
    result_ttl = _Option["float | None"]()
    retention = _Option["float | None"]()
    failed_retention = _Option["float | None"]()
    prune_interval = _Option[float]()
    log_level = _Option[int]()
    log_tasks = _Option[bool]()
    log_errors = _Option[bool]()
    log_performance = _Option[bool]()
    performance_interval = _Option[float]()

    def __init__(
        self,
        queue: TaskQueue | SyncTaskQueue | Backend | None = None,
        *,
        backend: Backend | None = None,
        worker_id: str | None = None,
        worker_type: str = "async",
        max_workers: int | None = None,
        max_concurrency: int | None = None,
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
        scheduler: bool = True,
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
        retention: float | timedelta | None = DEFAULT_RETENTION,
        failed_retention: float | timedelta | None = DEFAULT_FAILED_RETENTION,
        prune_interval: float = 60.0,
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
        # the keyword arguments are WorkerConfig's fields, name for name (a test keeps them so)
        options = {k: v for k, v in locals().items() if k not in ("self", "queue", "backend")}
        options.update(queues=_as_tuple(queues), allowed_functions=_as_tuple(allowed_functions))
        config = WorkerConfig(**options)
        self._queue, self.queue = _queues(queue, backend, plugins)
        if config.worker_id is None:
            host_pid = f"{socket.gethostname()}:{os.getpid()}"
            config = replace(config, worker_id=f"{host_pid}:{uuid.uuid4().hex[:6]}")
        self.config = config
        if config.result_ttl is not None and not self.backend.supports(Capability.EXPIRE_RESULTS):
            raise ConfigurationError(
                f"result_ttl needs a backend that can expire results, and "
                f"{type(self.backend).__name__} cannot; leave result_ttl out and purge "
                "old tasks instead"
            )
        if config.scheduler:
            check_scheduler(self._queue)
        self.limits = config.resource_limits()
        self.retry_policy = config.retry_policy()
        self._allow = _allow_list(config.allowed_functions, self._queue)
        # the queue's registry (one object; tasks declared later join it): names first
        self._resolve = self._queue.tasks.resolve
        self.logger = logger if logger is not None else logging.getLogger("sitq.worker")
        self._writer = OutcomeWriter(self._queue.backend, self.logger)
        self._leases = LeaseTable()
        self._progress = ProgressRelay(self._queue.backend, self.logger, self._leases)
        base_plugins = plugins if plugins is not None else self._queue.plugins
        self.plugins = base_plugins.with_plugins(*callback_plugins(on_error, on_success))
        self.plugins.executor_class(config.worker_type)  # "choose one of ..." if unknown
        self._envelope = self._queue.envelope.for_worker(
            serializer=serializer,
            deserializer=deserializer,
            secret_key=secret_key,
            plugins=self.plugins,
            logger=self.logger,
        )
        if not isinstance(queue if queue is not None else backend, Backend):
            self._envelope.check_compatible()  # a bare backend says nothing of its enqueuers
        if config.worker_type == "process" and self._envelope.decoder is not None:
            from ..processes import check_serializer_portable

            check_serializer_portable(self._envelope.decoder, "deserializer")
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
        self._runner = Runner(self)
        self._lifecycle: Lifecycle | None = None
        self._executor: Executor | None = None
        self._sessions = 0  # open sessions sharing the executor
        self._keeper: LeaseKeeper | None = None
        self._expired_at: float | None = None  # monotonic time of the last expire_results
        self._pruned_at: float | None = None  # monotonic time of the last pruning pass
        self._throttled: str | None = None
        self._retries_due: list[float] = []  # heap: when retries we scheduled become due
        self._claimed_at = 0.0
        self._done = threading.Event()
        self._done.set()
        self._start_pending = False

    # -- attributes read from the config -----------------------------------------------------

    @property
    def worker_id(self) -> str:
        """This worker's name (default ``host:pid:random``)."""
        assert self.config.worker_id is not None
        return self.config.worker_id

    @property
    def max_workers(self) -> int:
        """Tasks run at once."""
        return self.config.concurrency

    @property
    def recovery_interval(self) -> float:
        """Seconds between recovery passes."""
        return self.config.recovery_every

    @property
    def backend(self) -> Backend:
        """The backend this worker takes tasks from."""
        return self._queue.backend

    @property
    def is_running(self) -> bool:
        """True between start and the end of stop."""
        return self._state in ("running", "stopping")

    # -- public API: lifecycle ---------------------------------------------------------------

    def start(self) -> Deferred[None]:
        """Start processing.

        In a running event loop this returns a coroutine that processes tasks until `stop`:
        ``asyncio.create_task(worker.start())`` or ``await worker.start()``. From plain code it
        starts the worker on a background thread of its own and returns at once; such a worker
        is stopped gracefully at interpreter exit if `stop` was never called. What it returns
        then can be ignored, or awaited to wait until the worker stops, so that
        ``asyncio.run(worker.start())`` serves until Ctrl-C too.
        """
        if self.is_running:
            raise WorkerStateError(f"worker {self.worker_id} is already running")
        if running_loop() is not None:
            self._start_pending = True
            return Deferred(self._serve)
        return self._runner.start_in_background()

    def stop(self) -> Awaitable[None]:
        """Stop taking tasks, let running ones finish (up to ``graceful_shutdown`` seconds),
        hand the rest back to the queue, then return.

        From plain code it blocks until the worker has stopped (a Ctrl-C while it waits cuts
        the grace period short) and returns an awaitable that is already done. In a running
        event loop the stop is requested at once and an awaitable is returned:
        ``await worker.stop()`` waits for the worker to stop. Called from one of the worker's
        own tasks or callbacks, it only requests the stop (waiting there would wait for
        itself).
        """
        self._request_stop()
        if current_worker.get() is self:
            return done()
        if running_loop() is not None:
            if not self.is_running:
                return done()
            return Waiter(self._runner.wait_stopped_async)
        self._runner.stop_and_wait()
        return done()

    def run(self, duration: float | None = None) -> None:
        """Process tasks in the foreground for ``duration`` seconds, or until Ctrl-C / SIGTERM.

        Ctrl-C stops gracefully (a second one stops at once, handing running tasks back) and
        then raises `KeyboardInterrupt`, so ``except KeyboardInterrupt`` sees it.
        """
        self._runner.run(duration)

    # -- public API: one task at a time ------------------------------------------------------

    def process_task(self, task_id: str) -> Result:
        """Run one task now, through its retries, and return its final `Result` (blocking).

        If another worker has the task, waits for its result; a finished task's stored result
        is returned as is. In async code, ``await worker.process_task_async(task_id)``: called
        inside a running event loop, this raises `EventLoopMisuse` saying so, as
        `SyncTaskQueue` does.
        """
        forbid_running_loop("Worker.process_task()", "`await worker.process_task_async(...)`")
        return self._runner.call(self.process_task_async(task_id))

    def process_tasks(self, task_ids: Iterable[str]) -> list[Result]:
        """Run several tasks now (concurrently, up to ``max_workers``) and return their
        `Result`s in order (blocking; in async code, `process_tasks_async`)."""
        forbid_running_loop("Worker.process_tasks()", "`await worker.process_tasks_async(...)`")
        return self._runner.call(self.process_tasks_async(list(task_ids)))

    async def process_task_async(self, task_id: str) -> Result:
        """`process_task`, from async code."""
        async with Session(self):
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
                    if stored.status is TaskStatus.WAITING:
                        raise ConfigurationError(
                            f"task {task_id} is waiting for its parents "
                            f"({', '.join(stored.parents)}): process them first"
                        )
                    continue
                outcome = await TaskExecution(self, record).run()
                if outcome.status is not TaskStatus.PENDING:
                    return result_of(self, record, outcome)
                await asyncio.sleep(max(0.0, (outcome.available_at or 0) - self.backend.clock()))

    async def process_tasks_async(self, task_ids: Iterable[str]) -> list[Result]:
        """`process_tasks`, from async code."""
        limit = asyncio.Semaphore(self.max_workers)

        async def one(task_id: str) -> Result:
            async with limit:
                return await self.process_task_async(task_id)

        async with Session(self):  # one executor for the batch, not one per call
            return list(await asyncio.gather(*(one(t) for t in task_ids)))

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
            progress=self._progress.running(),
        )

    def get_metrics(self) -> WorkerMetrics:
        """Average duration, throughput and success/error rates since start."""
        return self._counters.metrics()

    # -- the loop ----------------------------------------------------------------------------

    async def _serve(self, started: threading.Event | None = None) -> None:
        """Serve until stopped (`loop.serve`); ``started`` is set once it runs."""
        await serve(self, started)

    # -- called by the other parts -----------------------------------------------------------

    def _retry_scheduled(self, due: float) -> None:
        """A failed task was put back, due at backend time ``due`` (the idle wait honours it)."""
        while self._retries_due and self._retries_due[0] <= self._claimed_at:
            heapq.heappop(self._retries_due)
        heapq.heappush(self._retries_due, due)

    def _task_declined(self, task_id: str) -> None:
        """``should_process_task`` declined ``task_id``: not an attempt, and never claimed
        again by this worker (it remembers the last thousand)."""
        self._declined[task_id] = None
        while len(self._declined) > _DECLINED_MEMORY:
            self._declined.popitem(last=False)
        self._started_attempts -= 1

    def _leases_lost(self, lost: list[Lease]) -> None:
        """The heartbeat found these leases gone (on this loop): the task was cancelled, or
        recovered by another worker after this one stalled. Stop their executions."""
        for lease in lost:
            job, context = self._leases.interrupt(lease)
            if context is not None:
                context.request_stop()
            if job is not None and not job.done():
                job.cancel()

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

    # -- kept for code that drives a worker's background loop (sitq.testing) ------------------

    def _run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runner.call(coro)

    @property
    def _portal(self) -> Portal | None:
        return self._runner.portal

    @_portal.setter
    def _portal(self, portal: Portal | None) -> None:
        self._runner.portal = portal

    def __repr__(self) -> str:
        return f"<Worker {self.worker_id} {self.worker_type} x{self.max_workers} {self._state}>"


def _queues(
    queue: TaskQueue | SyncTaskQueue | Backend | None,
    backend: Backend | None,
    plugins: PluginManager | None,
) -> tuple[TaskQueue, TaskQueue | SyncTaskQueue]:
    """The async queue a worker uses, and the queue it shows as ``worker.queue``."""
    if queue is None:
        queue = backend
    elif backend is not None:
        raise ConfigurationError("pass either a queue or backend=, not both")
    if isinstance(queue, SyncTaskQueue):
        return queue.async_queue, queue
    if isinstance(queue, TaskQueue):
        return queue, queue
    if isinstance(queue, Backend):
        async_queue = TaskQueue(queue, plugins=plugins)
        return async_queue, async_queue
    raise ConfigurationError(
        f"Worker needs a TaskQueue, SyncTaskQueue or Backend, got {type(queue).__name__}: "
        "write Worker(queue) or Worker(queue.backend)"
    )


def _as_tuple(names: Iterable[str] | None) -> Any:
    """``names`` as a tuple for `WorkerConfig` (which checks them): one name, or any iterable
    of them; anything else is passed on for the check to refuse."""
    if names is None or isinstance(names, str) or not isinstance(names, Iterable):
        return names
    return tuple(names)


__all__ = ["Worker"]


def _allow_list(patterns: tuple[str, ...] | None, queue: TaskQueue) -> AllowList | None:
    """What ``allowed_functions`` lets run: ``"declared"`` means the queue's declared tasks."""
    if patterns is None:
        return None
    if patterns == ("declared",):
        return queue.tasks
    return FunctionAllowList(patterns)
