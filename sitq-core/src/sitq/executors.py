"""Execution strategies: where a task's function actually runs.

One small interface, `Executor`, with one implementation per ``worker_type``:

* ``"async"`` (`AsyncExecutor`): coroutine functions run on the worker's event loop (cancelled
  on timeout); plain functions in a pool of threads so they cannot block it.
* ``"thread"`` (`ThreadExecutor`): every function in a pool of ``max_workers`` threads
  (coroutine functions on an event loop of their own there).
* ``"process"`` (`sitq.processes.ProcessExecutor`, imported only when chosen): every
  function in a pool of child processes, one task per child at a time.

Each is registered through the ``sitq_executors`` hook (implemented here for the three
built-ins), like any third-party executor; `make_executor` builds the one a worker chose.

What a timeout can do depends on where the function runs. A coroutine is cancelled. A child
process is killed and replaced. A thread cannot be stopped from outside in Python: the task is
failed with `TaskTimeout` at once and its slot is given to a new thread, but the function goes
on running in its abandoned thread until it returns, and what it returns is thrown away.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextvars
import functools
import inspect
import logging
import queue as queue_module
import threading
import types
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .context import TaskContext
from .errors import TaskTimeout
from .hookspecs import hookimpl
from .payload import Codec
from .registry import ExecutorType

if TYPE_CHECKING:
    from .plugins import PluginManager

logger = logging.getLogger("sitq.executors")


@dataclass(slots=True)
class Call:
    """One function call to execute.

    ``payload`` and ``serializer`` are the call as stored (encoded bytes and the codec that
    decodes them): an out-of-process executor sends those instead of the decoded objects.
    ``context`` is what `sitq.current_task()` returns while the call runs: in-process
    executors see the caller's context variables; an out-of-process one sends it along.
    """

    function: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    timeout: float | None = None
    task_id: str = ""
    payload: bytes | None = None
    serializer: Codec | None = None
    context: TaskContext | None = None


class Executor(ABC):
    """Runs calls; the worker awaits `run` once per task attempt, at most ``max_workers`` at once.

    :param max_workers: calls that may run at once.
    :param max_memory_mb: for executors with child processes, the resident memory above which
        a child is replaced after its current call (None: no limit).
    """

    #: The ``worker_type`` name this executor implements.
    kind: str = ""

    def __init__(self, max_workers: int, *, max_memory_mb: float | None = None) -> None:
        self.max_workers = max_workers
        self.max_memory_mb = max_memory_mb

    async def start(self) -> None:  # noqa: B027 (optional hook)
        """Acquire resources (pools, processes) before the first call."""

    @abstractmethod
    async def run(self, call: Call) -> Any:
        """Run ``call`` and return its value; raise what it raised, or `TaskTimeout`.

        If the awaiting task is cancelled, the call is abandoned (or killed, where possible).
        """

    async def close(self) -> None:  # noqa: B027 (optional hook)
        """Release resources; running calls have finished or been abandoned by then."""


def timeout_error(call: Call) -> TaskTimeout:
    """The `TaskTimeout` raised when ``call`` ran past its timeout."""
    return TaskTimeout(f"task {call.task_id} timed out after {call.timeout} s")


class ThreadPool:
    """Up to ``size`` daemon threads running calls, where a stuck call can be abandoned.

    `abandon` gives up on a running call: its thread finishes the call in the background and
    is not counted any more, so the next submit gets a fresh thread at once. The threads are
    daemons, so a call that never returns cannot keep the interpreter from exiting.

    `submit` returns a `concurrent.futures.Future`. `submit_async` returns an asyncio future
    of the running loop, and is the fast path for the worker: results travel back through a
    per-loop inbox that wakes the loop once for all the calls that finished meanwhile, rather
    than once per call.
    """

    def __init__(self, size: int, name: str = "sitq-task") -> None:
        self.size = size
        self._name = name
        self._work: queue_module.SimpleQueue[Any] = queue_module.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads done with a call and not yet promised to a new one
        self._threads = 0  # threads alive
        self._abandoned: set[Any] = set()  # handles of abandoned calls still running
        self._running: dict[Any, threading.Thread] = {}  # handle → thread running it
        self._closed = False
        self._counter = 0

    @property
    def abandoned(self) -> int:
        """Abandoned calls still running in their threads."""
        return len(self._abandoned)

    def submit(self, fn: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        """Run ``fn()`` in a pool thread; returns its future."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._put(_FutureJob(fn, future))
        return future

    def submit_async(self, fn: Callable[[], Any]) -> _LoopJob:
        """Run ``fn()`` in a pool thread; await the returned job's ``future`` (on this loop).

        Cancelling that future before the call starts drops the call; afterwards, use
        `abandon` with the job.
        """
        job = _LoopJob(fn, asyncio.get_running_loop().create_future())
        self._put(job)
        return job

    def _put(self, job: _Job) -> None:
        if self._closed:
            raise RuntimeError("the thread pool is closed")
        self._work.put(job)
        with self._lock:
            if self._idle:  # an idle thread will take it
                self._idle -= 1
                return
            if self._closed:
                raise RuntimeError("the thread pool is closed")
            if self._threads - len(self._abandoned) < self.size:
                self._threads += 1
                self._counter += 1
                thread = threading.Thread(
                    target=self._serve, name=f"{self._name}-{self._counter}", daemon=True
                )
                thread.start()

    def abandon(self, handle: concurrent.futures.Future[Any] | _LoopJob) -> None:
        """Stop counting the thread running the call behind ``handle`` (a future from
        `submit`, or a job from `submit_async`), or drop the call if it has not started."""
        if isinstance(handle, concurrent.futures.Future):
            if handle.cancel():
                return
            with self._lock:
                if handle in self._running and not handle.done():
                    self._abandoned.add(handle)
            return
        with self._lock:
            if handle.state == _PENDING:
                handle.state = _DROPPED
            elif handle.state == _RUNNING and handle in self._running:
                self._abandoned.add(handle)

    def _serve(self) -> None:
        while True:
            job = self._work.get()
            if job is None:
                return
            with self._lock:
                started = job.start()
                if started:
                    self._running[job.handle] = threading.current_thread()
                else:
                    self._idle += 1
            if not started:
                continue
            try:
                value = job.fn()
            except BaseException as exc:
                job.finish(False, exc)
            else:
                job.finish(True, value)
            with self._lock:
                handle = job.handle
                del self._running[handle]
                was_abandoned = handle in self._abandoned
                self._abandoned.discard(handle)
                if was_abandoned and self._threads - len(self._abandoned) > self.size:
                    self._threads -= 1  # a replacement took this thread's place
                    return
                self._idle += 1
            del job, handle

    def shutdown(self) -> None:
        """Let idle threads exit and pending calls be cancelled; running calls go on."""
        with self._lock:
            self._closed = True
            threads = self._threads
        while True:
            try:
                job = self._work.get_nowait()
            except queue_module.Empty:
                break
            if job is not None:
                job.cancel()
        for _ in range(threads):
            self._work.put(None)


_PENDING, _RUNNING, _DROPPED = "pending", "running", "dropped"


class _Job(ABC):
    """One call queued in a `ThreadPool`; ``handle`` is what `abandon` is given for it."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn

    @property
    def handle(self) -> Any:
        return self

    @abstractmethod
    def start(self) -> bool:
        """Called (pool lock held) before running: False if the call was dropped."""

    @abstractmethod
    def finish(self, ok: bool, value: Any) -> None:
        """Deliver the return value (``ok``) or the exception raised."""

    @abstractmethod
    def cancel(self) -> None:
        """The pool shut down before the call started."""


class _FutureJob(_Job):
    __slots__ = ("future",)

    def __init__(self, fn: Callable[[], Any], future: concurrent.futures.Future[Any]) -> None:
        super().__init__(fn)
        self.future = future

    @property
    def handle(self) -> Any:
        return self.future

    def start(self) -> bool:
        return self.future.set_running_or_notify_cancel()

    def finish(self, ok: bool, value: Any) -> None:
        if ok:
            self.future.set_result(value)
        else:
            self.future.set_exception(value)

    def cancel(self) -> None:
        self.future.cancel()


class _LoopJob(_Job):
    """A call whose result is delivered to an asyncio future through its loop's inbox."""

    __slots__ = ("future", "state")

    def __init__(self, fn: Callable[[], Any], future: asyncio.Future[Any]) -> None:
        super().__init__(fn)
        self.future = future
        self.state = _PENDING

    def start(self) -> bool:
        if self.state == _DROPPED:
            return False
        self.state = _RUNNING
        return True

    def finish(self, ok: bool, value: Any) -> None:
        _Inbox.of(self.future.get_loop()).put(self.future, ok, value)

    def cancel(self) -> None:
        _Inbox.of(self.future.get_loop()).put(self.future, False, None)


class _Inbox:
    """Results of pool calls for one event loop, delivered in batches on that loop.

    A thread appends its result and schedules a drain only if none is pending, so a burst of
    calls finishing together costs one wake-up of the loop instead of one each.
    """

    _by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Inbox] = (
        weakref.WeakKeyDictionary()
    )
    _by_loop_lock = threading.Lock()

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: collections.deque[tuple[asyncio.Future[Any], bool, Any]] = collections.deque()
        self._lock = threading.Lock()
        self._scheduled = False

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> _Inbox:
        """The inbox of ``loop``."""
        inbox = cls._by_loop.get(loop)
        if inbox is None:
            with cls._by_loop_lock:
                inbox = cls._by_loop.get(loop)
                if inbox is None:
                    inbox = cls._by_loop[loop] = _Inbox(loop)
        return inbox

    def put(self, future: asyncio.Future[Any], ok: bool, value: Any) -> None:
        """Deliver a result (``ok``), an exception, or a cancellation (``ok=False``, None)."""
        self._items.append((future, ok, value))
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: nobody waits for these any more
            pass

    def _drain(self) -> None:
        with self._lock:
            self._scheduled = False
        items = self._items
        while items:
            future, ok, value = items.popleft()
            if future.done():  # cancelled meanwhile (timeout, worker stopping)
                continue
            if ok:
                future.set_result(value)
            elif value is None:
                future.cancel()
            else:
                future.set_exception(value)


async def run_in_pool(pool: ThreadPool, call: Call, fn: Callable[[], Any]) -> Any:
    """Await ``fn()`` in ``pool`` with ``call.timeout``; abandon the thread on timeout/cancel."""
    job = pool.submit_async(fn)
    try:
        if call.timeout is None:
            return await job.future
        return await asyncio.wait_for(job.future, call.timeout)
    except asyncio.TimeoutError:
        pool.abandon(job)
        if pool.abandoned:
            logger.warning(
                "task %s timed out; its thread cannot be stopped and runs on in the background "
                "(%d abandoned threads still running). Use worker_type='process' for tasks that "
                "must be killed on timeout.",
                call.task_id,
                pool.abandoned,
            )
        raise timeout_error(call) from None
    except asyncio.CancelledError:
        pool.abandon(job)
        raise


def is_coroutine_function(function: Callable[..., Any]) -> bool:
    """`inspect.iscoroutinefunction`, with a shortcut for a plain ``async def`` function (the
    common case; asked once per task)."""
    if type(function) is types.FunctionType and function.__code__.co_flags & inspect.CO_COROUTINE:
        return True
    return inspect.iscoroutinefunction(function)


def _bound_call(call: Call) -> Callable[[], Any]:
    ctx = contextvars.copy_context()
    return functools.partial(ctx.run, call.function, *call.args, **call.kwargs)


async def _await_call(call: Call) -> Any:
    """Await a coroutine function's call on the running loop, cancelled on timeout."""
    coro = call.function(*call.args, **call.kwargs)
    if call.timeout is None:
        return await coro
    try:
        return await asyncio.wait_for(coro, call.timeout)
    except asyncio.TimeoutError:
        raise timeout_error(call) from None


def _run_coroutine_function(call: Call) -> Any:
    """Run a coroutine function on a fresh event loop in this thread, cancelled on timeout."""
    return asyncio.run(_await_call(call))


class AsyncExecutor(Executor):
    """Coroutine functions on the event loop; other callables in a pool of threads."""

    kind = "async"

    def __init__(self, max_workers: int, *, max_memory_mb: float | None = None) -> None:
        super().__init__(max_workers, max_memory_mb=max_memory_mb)
        self._threads: ThreadPool | None = None

    def _pool(self) -> ThreadPool:
        if self._threads is None:
            self._threads = ThreadPool(self.max_workers)
        return self._threads

    async def run(self, call: Call) -> Any:
        """Await a coroutine function (cancelled on timeout) or run a function in a thread."""
        if is_coroutine_function(call.function):
            if call.timeout is None:  # one frame less than `_await_call`, the common case
                return await call.function(*call.args, **call.kwargs)
            return await _await_call(call)
        result = await run_in_pool(self._pool(), call, _bound_call(call))
        if inspect.isawaitable(result):  # a plain function returned a coroutine
            result = await result
        return result

    async def close(self) -> None:
        """Let the threads go without waiting for abandoned (timed-out) calls."""
        if self._threads is not None:
            self._threads.shutdown()
            self._threads = None


class ThreadExecutor(AsyncExecutor):
    """Every call in a pool of ``max_workers`` threads.

    A thread cannot be killed: on timeout the task is failed with `TaskTimeout` and its slot is
    given to a new thread at once, but the function keeps running in its old thread until it
    returns (its result is discarded). A coroutine function runs on an event loop of its own
    in the thread, where the timeout does cancel it.
    """

    kind = "thread"

    async def run(self, call: Call) -> Any:
        """Run the call in a pool thread (a coroutine function on a fresh loop there)."""
        if is_coroutine_function(call.function):
            ctx = contextvars.copy_context()
            fn: Callable[[], Any] = functools.partial(ctx.run, _run_coroutine_function, call)
            # the loop in the thread applies the timeout; the outer one is a backstop
            outer = Call(call.function, (), {}, None, call.task_id)
            if call.timeout is not None:
                outer.timeout = call.timeout + 1.0
            try:
                return await run_in_pool(self._pool(), outer, fn)
            except TaskTimeout:
                raise timeout_error(call) from None
        return await run_in_pool(self._pool(), call, _bound_call(call))


# -- registration ----------------------------------------------------------------------------


def _process_executor() -> type[Executor]:
    """`sitq.processes.ProcessExecutor`, imported only when a worker chooses it (it pulls in
    multiprocessing)."""
    from .processes import ProcessExecutor

    return ProcessExecutor


@hookimpl
def sitq_executors() -> list[ExecutorType]:
    """The built-in executors: ``"async"``, ``"thread"`` and ``"process"``."""
    return [
        ExecutorType(AsyncExecutor.kind, load=AsyncExecutor),
        ExecutorType(ThreadExecutor.kind, load=ThreadExecutor),
        ExecutorType("process", load=_process_executor),
    ]


def make_executor(
    worker_type: str,
    max_workers: int,
    *,
    max_memory_mb: float | None = None,
    plugins: PluginManager | None = None,
) -> Executor:
    """Build the executor registered as ``worker_type`` in ``plugins`` (default: the
    process-wide plugin manager); `ConfigurationError` listing the choices if there is none."""
    if plugins is None:
        plugins = _default_plugins()
    return plugins.executor_class(worker_type)(max_workers, max_memory_mb=max_memory_mb)


def _default_plugins() -> PluginManager:
    from .plugins import get_plugin_manager  # not at import: plugins.py imports this module

    return get_plugin_manager()
