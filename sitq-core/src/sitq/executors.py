"""Execution strategies: where a task's function actually runs.

One small interface, `Executor`, with one implementation per ``worker_type``:

* ``"async"`` (`AsyncExecutor`): coroutine functions run on the worker's event loop; plain
  functions in a thread pool so they cannot block it.
* ``"thread"`` (`ThreadExecutor`): every function in a pool of ``max_workers`` threads
  (coroutine functions get an event loop of their own there).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import TaskTimeout


@dataclass(slots=True)
class Call:
    """One function call to execute, with what an out-of-process executor needs to redo it."""

    function: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    timeout: float | None = None
    task_id: str = ""


class Executor(ABC):
    """Runs calls; the worker awaits `run` once per task attempt."""

    #: The ``worker_type`` name this executor implements.
    kind: str = ""

    def __init__(self, max_workers: int) -> None:
        self.max_workers = max_workers

    async def start(self) -> None:
        """Acquire resources (pools, processes) before the first call."""

    @abstractmethod
    async def run(self, call: Call) -> Any:
        """Run ``call`` and return its value; raise what it raised, or `TaskTimeout`."""

    async def close(self) -> None:
        """Release resources; running calls have finished or been abandoned by then."""


def _timeout_error(call: Call) -> TaskTimeout:
    return TaskTimeout(f"task {call.task_id} timed out after {call.timeout} s")


def _run_coroutine_function(call: Call) -> Any:
    return asyncio.run(call.function(*call.args, **call.kwargs))


class AsyncExecutor(Executor):
    """Coroutine functions on the event loop; other callables in a thread pool."""

    kind = "async"

    def __init__(self, max_workers: int) -> None:
        super().__init__(max_workers)
        self._threads: concurrent.futures.ThreadPoolExecutor | None = None

    def _pool(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._threads is None:
            self._threads = concurrent.futures.ThreadPoolExecutor(
                max_workers=self.max_workers, thread_name_prefix="sitq-task"
            )
        return self._threads

    async def run(self, call: Call) -> Any:
        """Await a coroutine function (cancelled on timeout) or run a function in a thread."""
        if inspect.iscoroutinefunction(call.function):
            coro = call.function(*call.args, **call.kwargs)
            if call.timeout is None:
                return await coro
            try:
                return await asyncio.wait_for(coro, call.timeout)
            except asyncio.TimeoutError:
                raise _timeout_error(call) from None
        result = await _in_thread(self._pool(), call)
        if inspect.isawaitable(result):  # a plain function returned a coroutine
            result = await result
        return result

    async def close(self) -> None:
        """Shut the thread pool down without waiting for abandoned (timed-out) calls."""
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._threads = None


class ThreadExecutor(AsyncExecutor):
    """Every call in a pool of ``max_workers`` threads.

    A thread cannot be killed: on timeout the task is failed with `TaskTimeout` and its slot is
    given back at once, but the function keeps running in its thread until it returns.
    """

    kind = "thread"

    async def run(self, call: Call) -> Any:
        """Run the call in a pool thread (a coroutine function on a fresh loop there)."""
        if inspect.iscoroutinefunction(call.function):
            call = Call(
                functools.partial(_run_coroutine_function, call),
                (),
                {},
                call.timeout,
                call.task_id,
            )
        return await _in_thread(self._pool(), call)


async def _in_thread(pool: concurrent.futures.Executor, call: Call) -> Any:
    loop = asyncio.get_running_loop()
    ctx = contextvars.copy_context()
    fn = functools.partial(ctx.run, call.function, *call.args, **call.kwargs)
    future = loop.run_in_executor(pool, fn)
    if call.timeout is None:
        return await future
    try:
        return await asyncio.wait_for(future, call.timeout)
    except asyncio.TimeoutError:
        raise _timeout_error(call) from None


#: worker_type name → executor class; the process executor registers itself in `sitq.processes`.
EXECUTORS: dict[str, type[Executor]] = {
    AsyncExecutor.kind: AsyncExecutor,
    ThreadExecutor.kind: ThreadExecutor,
}


def make_executor(worker_type: str, max_workers: int) -> Executor:
    """Build the executor for ``worker_type``."""
    return EXECUTORS[worker_type](max_workers)
