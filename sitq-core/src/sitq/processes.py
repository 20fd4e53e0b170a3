"""`ProcessExecutor`: ``worker_type="process"``, CPU-bound tasks in child processes.

A pool of ``max_workers`` child processes (``forkserver`` where the platform has it, else
``spawn``; never a plain ``fork`` of the threaded worker). Each child runs one task at a time:

* the parent sends the task's stored payload bytes and the serializer that decodes them (the
  serializer object itself goes to a child once, the first time that child needs it), and the
  child decodes the call, runs it (a coroutine function on an event loop of its own) and sends
  back the value or the exception (plain pickle for a plain value, else cloudpickle);
* the parent reads its children's pipes on the worker's event loop (``add_reader``) and sends
  calls from there too: no thread hand-off on the way to a child or back. A call or reply
  larger than `INLINE_LIMIT` goes through an I/O thread, so it never blocks the loop (a
  child announces a large reply with a message of its own first);
* ``set_progress`` in a child sends the value up the same pipe before the reply
  (`sitq.relay`); the parent hands it to the worker, which stores it;
* on timeout, or when the worker gives up on the task at shutdown, the child is killed and a
  fresh one takes its place. The timeout counts from when the function starts in the child
  (which tells the parent, for a call with a timeout): getting there (a fresh child starting,
  decoding the payload, importing the function's module) may take `STARTUP_ALLOWANCE`
  seconds, or the timeout if that is longer;
* with ``max_memory_mb``, the event loop looks at a busy child's resident memory (RSS) every
  `MEMORY_CHECK_INTERVAL` seconds: a child over the limit is killed at once, its task fails
  with `ResourceLimitExceeded` naming the limit and what was used, and a fresh child takes
  its place. A limit on the child itself
  (``setrlimit(RLIMIT_AS)``) would count address space that Python's allocator reserves and
  never touches, and fail innocent tasks with a bare `MemoryError`. A task that grows faster
  than the interval may go past the limit by what it allocates in that time before it is
  stopped. A child that ends a task above the limit (memory the task freed but the allocator
  kept) is replaced too.

Children never open the database: everything they need travels over their pipe, and every
write stays with the parent. They ignore Ctrl-C (SIGINT) so that the worker, not the terminal,
decides what happens to the tasks they run. As with any ``multiprocessing`` program, a script
that starts a process worker must guard its entry point with ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import logging
import math
import multiprocessing
import pickle
import threading
import weakref
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import cloudpickle
import psutil

from .context import TaskContext
from .errors import ConfigurationError, ResourceLimitExceeded, SerializationError
from .executors import Call, Executor, ThreadPool, timeout_error
from .payload import Codec
from .process_child import (
    CODE,
    INLINE_LIMIT,
    LARGE,
    STARTED,
    ChildTaskError,
    child_main,
)
from .relay import PROGRESS_TAG, read_progress

logger = logging.getLogger("sitq.processes")

#: Seconds a call may take to reach its function in a child (startup, decoding, importing
#: the function's module) on top of its timeout; the timeout itself counts from then.
STARTUP_ALLOWANCE = 30.0
#: Seconds between looks at a busy child's resident memory, when ``max_memory_mb`` is set.
MEMORY_CHECK_INTERVAL = 0.05


def start_method() -> str:
    """``forkserver`` where available (fast, and safe with threads), else ``spawn``."""
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"


def check_serializer_portable(codec: Codec, what: str) -> None:
    """Raise `ConfigurationError` if ``codec``'s serializer cannot be sent to a child process."""
    try:
        cloudpickle.dumps(codec)
    except Exception as exc:
        raise ConfigurationError(
            f"worker_type='process' sends the {what} {codec.name!r} to its child processes, "
            f"and it cannot be pickled ({exc}). Pass a registered serializer name, a module "
            f"such as pickle, or an instance of a class defined at module level."
        ) from exc


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a child process (set as its ``__cause__``)."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


#: Runs a blocking call in an I/O thread; its future resolves on the event loop.
_InThread = Callable[[Callable[[], Any]], "asyncio.Future[Any]"]


class _OverMemory(Exception):
    """The child went over its memory limit during a call, and was killed."""

    def __init__(self, used_mb: float) -> None:
        super().__init__(used_mb)
        self.used_mb = used_mb


# -- the parent side --------------------------------------------------------------------------


class _Child:
    """One child process and the parent's end of its pipe."""

    def __init__(self, ctx: Any) -> None:
        parent_end, child_end = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=child_main, args=(child_end,), name="sitq-task-child")
        self.process.start()
        child_end.close()
        self.conn: Connection = parent_end
        self.pid: int = self.process.pid
        self.serializers: set[str] = set()  # serializers this child has received
        self.dead = False
        self.replaced = False  # `ProcessExecutor._replace` has taken it out of the pool
        # one thread at a time waits for the process: under forkserver its exit status is
        # read once from a pipe, and a second concurrent reader gets EOF and 255 instead
        self._reaping = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop reading the pipe
        self._fd = -1  # the pipe's descriptor, as the loop watches it
        self._in_thread: _InThread | None = None  # runs blocking pipe I/O off that loop
        self._died: Callable[[_Child], None] | None = None  # told when it dies while idle
        self._watched = False  # the loop watches the pipe (else an I/O thread reads a call's)
        # the call in flight: its reply, progress relay, timeout, and the timers of its
        # deadline and memory watch
        self._reply: asyncio.Future[bytes] | None = None
        self._progress: Callable[[bytes], None] | None = None
        self._timeout: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._watcher: asyncio.TimerHandle | None = None

    def listen(
        self,
        loop: asyncio.AbstractEventLoop,
        in_thread: _InThread,
        died: Callable[[_Child], None],
    ) -> None:
        """Read the pipe on ``loop`` from now on, for every call (call on that loop); a
        large message is sent or read with ``in_thread``, off the loop; ``died(self)`` is
        called if the child dies between calls. A loop that cannot watch a pipe (Windows'
        proactor loop) has each call's messages read by ``in_thread`` instead."""
        self._loop, self._in_thread, self._died = loop, in_thread, died
        self._fd = self.conn.fileno()
        try:
            loop.add_reader(self._fd, self._readable)
        except NotImplementedError:
            self._watched = False
        else:
            self._watched = True

    def unlisten(self) -> None:
        """Stop reading the pipe (call on the loop, before closing it); a call still waiting
        for its reply gets `EOFError`."""
        if self._loop is not None:
            if self._watched:  # by the number it was watched by: the pipe may be closed
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(self._fd)
            self._loop = None
        if self._reply is not None and not self._reply.done():
            self._reply.set_exception(EOFError("the child's pipe is no longer read"))

    async def call(
        self,
        message: bytes,
        timeout: float | None,
        progress: Callable[[bytes], None],
        max_memory_mb: float | None,
    ) -> bytes:
        """Send one call and return the child's reply (on the loop given to `listen`).

        ``progress(message)`` is called for each progress message. `asyncio.TimeoutError`
        if the function runs past ``timeout`` (counted from its start in the child); a child
        whose resident memory goes over ``max_memory_mb`` is killed and `_OverMemory` raised;
        `EOFError` or `OSError` if the child dies.
        """
        loop, in_thread = self._loop, self._in_thread
        if loop is None or in_thread is None:
            raise EOFError("the child's pipe is closed")
        reply: asyncio.Future[bytes] = loop.create_future()
        self._reply, self._progress, self._timeout = reply, progress, timeout
        try:
            if len(message) <= INLINE_LIMIT:
                self.conn.send_bytes(message)  # the child is idle: its pipe is empty
            else:
                await in_thread(functools.partial(self.conn.send_bytes, message))
            if timeout is not None:
                self._timer = loop.call_later(max(timeout, STARTUP_ALLOWANCE), self._expire)
            if max_memory_mb is not None:
                self._watch(loop, max_memory_mb)
            if not self._watched:
                self._read_in_thread(loop, in_thread, reply)
            return await reply
        finally:
            for handle in (self._timer, self._watcher):
                if handle is not None:
                    handle.cancel()
            self._reply = self._progress = self._timer = self._watcher = None

    def _readable(self) -> None:
        """The pipe has data (on the loop): read every message already there."""
        reply, progress = self._reply, self._progress
        if reply is None or reply.done() or progress is None:
            self._drop()
            return
        try:
            while not self._dispatch(self.conn.recv_bytes(), reply, progress):
                if not self.conn.poll():
                    return
        except Exception as exc:  # EOF (the child died), or a failing progress relay
            reply.set_exception(exc)

    def _dispatch(
        self, message: bytes, reply: asyncio.Future[bytes], progress: Callable[[bytes], None]
    ) -> bool:
        """Handle one message of the call in flight (on the loop); True once the loop is to
        read no more of them."""
        if message == STARTED:
            self._started()
            return False
        if message[:1] == PROGRESS_TAG:  # progress comes before the reply
            progress(message)
            return False
        if message == LARGE:
            self._read_large(reply)
        else:
            reply.set_result(message)
        return True

    def _read_in_thread(
        self, loop: asyncio.AbstractEventLoop, in_thread: _InThread, reply: asyncio.Future[bytes]
    ) -> None:
        """Where the loop cannot watch the pipe: an I/O thread reads the call's messages
        and hands each to the loop, up to the reply."""
        progress = self._progress
        assert progress is not None

        def deliver(message: bytes) -> None:  # on the loop
            if not reply.done():
                try:
                    self._dispatch(message, reply, progress)
                except Exception as exc:
                    reply.set_exception(exc)

        def read() -> None:  # in the I/O thread
            while True:
                message = self.conn.recv_bytes()
                if message != LARGE:  # (the large reply that follows is read right here)
                    loop.call_soon_threadsafe(deliver, message)
                    if message != STARTED and message[:1] != PROGRESS_TAG:
                        return

        # on the loop, after the last deliver: a failed read (EOF: the child died) fails the call
        in_thread(read).add_done_callback(functools.partial(_fail_on_error, reply))

    def _read_large(self, reply: asyncio.Future[bytes]) -> None:
        """Read the large reply that follows in an I/O thread; the loop stops watching the
        pipe meanwhile."""
        assert self._loop is not None and self._in_thread is not None
        self._loop.remove_reader(self._fd)
        reading = self._in_thread(self.conn.recv_bytes)
        reading.add_done_callback(functools.partial(self._large_read, reply))

    def _large_read(self, reply: asyncio.Future[bytes], reading: asyncio.Future[Any]) -> None:
        if self._loop is not None:  # not replaced meanwhile: watch the pipe again
            with contextlib.suppress(Exception):
                self._loop.add_reader(self._fd, self._readable)
        if not _fail_on_error(reply, reading) and not reply.done():
            reply.set_result(reading.result())

    def _drop(self) -> None:
        """Read what a child sends outside a call (only when it dies, or after its call
        timed out, before it is replaced) and throw it away; stop reading at the end of the
        pipe, or before a large message."""
        try:
            if self.conn.recv_bytes() != LARGE:
                return
        except Exception:  # the end of the pipe: it died
            if self._reply is None and self._died is not None and not self.dead:
                self._died(self)
        self.unlisten()

    def _started(self) -> None:
        """The function started in the child: its timeout counts from now."""
        if self._timer is not None and self._timeout is not None:
            self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_later(self._timeout, self._expire)

    def _expire(self) -> None:
        if self._reply is not None and not self._reply.done():
            self._reply.set_exception(asyncio.TimeoutError())

    def _watch(self, loop: asyncio.AbstractEventLoop, max_memory_mb: float) -> None:
        """Look at the child's memory in `MEMORY_CHECK_INTERVAL` seconds, and so on."""
        self._watcher = loop.call_later(
            MEMORY_CHECK_INTERVAL, self._check_memory, loop, max_memory_mb
        )

    def _check_memory(self, loop: asyncio.AbstractEventLoop, max_memory_mb: float) -> None:
        used = self.memory_mb()
        if used <= max_memory_mb:
            self._watch(loop, max_memory_mb)
            return
        with contextlib.suppress(Exception):
            self.process.kill()  # at once: it grows while we talk
        if self._reply is not None and not self._reply.done():
            self._reply.set_exception(_OverMemory(used))

    def memory_mb(self) -> float:
        """Resident memory of the child, in MiB (0 if it is gone)."""
        try:
            return float(psutil.Process(self.pid).memory_info().rss) / 2**20
        except psutil.Error:
            return 0.0

    def exit_code(self) -> int | None:
        """The exit code of a child that is exiting (waits up to a second; blocking)."""
        with self._reaping:
            self.process.join(1)
            code: int | None = self.process.exitcode
        return code

    def kill(self) -> None:
        """Kill the child and reap it (blocking)."""
        self.dead = True
        with self._reaping:
            with contextlib.suppress(Exception):
                self.process.kill()
            with contextlib.suppress(Exception):
                self.process.join(5)
            self._close_pipe()

    def _close_pipe(self) -> None:
        """Close the parent's end (under ``_reaping``: two threads closing one
        `Connection` could both close its descriptor, the second time another pipe's)."""
        with self._reaping, contextlib.suppress(Exception):
            self.conn.close()

    def stop(self) -> None:
        """Close the pipe so an idle child exits; kill it if it does not (blocking)."""
        self.dead = True
        self._close_pipe()
        with self._reaping:
            self.process.join(2)
            alive = self.process.is_alive()
        if alive:
            self.kill()


_live_executors: weakref.WeakSet[ProcessExecutor] = weakref.WeakSet()


@atexit.register
def _kill_children_at_exit() -> None:
    for executor in list(_live_executors):
        executor.kill_all()


class ProcessExecutor(Executor):
    """Each call in a child process from a pool of ``max_workers``; see the module docstring."""

    kind = "process"

    def __init__(self, max_workers: int, *, max_memory_mb: float | None = None) -> None:
        super().__init__(max_workers, max_memory_mb=max_memory_mb)
        self._ctx = multiprocessing.get_context(start_method())
        self._idle: asyncio.Queue[_Child] | None = None
        self._children: set[_Child] = set()
        self._threads: ThreadPool | None = None  # daemon threads for the blocking pipe I/O
        self._lock = threading.Lock()
        self._closed = False
        self._replacing: set[asyncio.Future[None]] = set()
        self._blobs: dict[str, tuple[Codec, bytes]] = {}

    @property
    def closed(self) -> bool:
        """True once `close` (or `kill_all`) began."""
        return self._closed

    @property
    def pids(self) -> list[int]:
        """Process ids of the current children."""
        return sorted(c.pid for c in self._children if not c.dead)

    async def start(self) -> None:
        """Start the children (in parallel, off the event loop)."""
        self._idle = asyncio.Queue()
        self._threads = ThreadPool(self.max_workers + 1, name="sitq-process-io")
        _live_executors.add(self)
        children = await asyncio.gather(*(self._io(self._spawn) for _ in range(self.max_workers)))
        for child in children:
            child.listen(asyncio.get_running_loop(), self._io, self._died_idle)
            self._idle.put_nowait(child)

    def _io(self, fn: Any, *args: Any) -> asyncio.Future[Any]:
        """Run blocking ``fn(*args)`` on one of the executor's I/O threads."""
        assert self._threads is not None
        return asyncio.wrap_future(self._threads.submit(functools.partial(fn, *args)))

    def _spawn(self) -> _Child:
        child = _Child(self._ctx)
        with self._lock:
            if self._closed:
                child.stop()
                return child
            self._children.add(child)
        return child

    async def run(self, call: Call) -> Any:
        """Run ``call`` in an idle child; kill and replace the child on timeout or cancel."""
        assert self._idle is not None and self._threads is not None
        name, data = self._encode(call)
        child = await self._idle.get()
        while child.dead:  # died while idle: a fresh one comes in its place
            child = await self._idle.get()
        try:
            blob = None if name == CODE or name in child.serializers else self._blobs[name][1]
            message = pickle.dumps(
                (name, blob, data, call.context, call.timeout is not None),
                protocol=pickle.HIGHEST_PROTOCOL,
            )
            reply = await child.call(
                message,
                call.timeout,
                functools.partial(_relay_progress, call.context),
                self.max_memory_mb,
            )
            if blob is not None:
                child.serializers.add(name)
        except asyncio.TimeoutError:
            self._replace(child, f"task {call.task_id} timed out")
            raise timeout_error(call) from None
        except asyncio.CancelledError:
            self._replace(child, f"task {call.task_id} was cancelled")
            raise
        except _OverMemory as over:
            self._replace(child, f"task {call.task_id} went over max_memory_mb")
            raise self._memory_error(call, over.used_mb) from None
        except (EOFError, OSError) as exc:
            exitcode = await self._io(child.exit_code)
            self._replace(child, f"child process {child.pid} died")
            raise ChildTaskError(
                f"the child process running task {call.task_id} died (exit code {exitcode}): "
                f"{exc!r}"
            ) from None
        except Exception:  # the child's state is unknown: never hand it another call
            self._replace(child, f"sending task {call.task_id} failed")
            raise
        if self.max_memory_mb is not None and child.memory_mb() > self.max_memory_mb:
            self._replace(child, f"child process {child.pid} is above max_memory_mb")
        else:
            self._idle.put_nowait(child)
        return _unpack(reply)

    def _memory_error(self, call: Call, used_mb: float) -> ResourceLimitExceeded:
        """The error of a task whose child went over ``max_memory_mb``."""
        limit = self.max_memory_mb or 0.0
        used = math.ceil(used_mb)  # rounded up: a use just over the limit never reads as it
        return ResourceLimitExceeded(
            f"task {call.task_id} used {used:,} MiB, over max_memory_mb={limit:g}: its "
            "child process was killed and replaced. Raise max_memory_mb, or make the task use "
            "less memory (process its data in chunks).",
            limit_mb=limit,
            used_mb=used_mb,
        )

    def _encode(self, call: Call) -> tuple[str, bytes]:
        """The serializer name and bytes to send: the stored payload when there is one."""
        entry = call.serializer
        if call.payload is not None and entry is not None:
            cached = self._blobs.get(entry.name)
            if cached is None or cached[0] is not entry:
                try:
                    self._blobs[entry.name] = (entry, cloudpickle.dumps(entry))
                except Exception as exc:
                    raise ConfigurationError(
                        f"the serializer {entry.name!r} cannot be sent to a child process: {exc}"
                    ) from exc
                for child in self._children:
                    child.serializers.discard(entry.name)
            return entry.name, call.payload
        try:
            return CODE, cloudpickle.dumps((call.function, call.args, call.kwargs))
        except Exception as exc:
            raise SerializationError(
                f"cannot send the call of task {call.task_id} to a child process: {exc}"
            ) from exc

    def _died_idle(self, child: _Child) -> None:
        """A child died between calls (killed from outside): replace it before it gets one."""
        self._replace(child, f"child process {child.pid} died while idle")

    def _replace(self, child: _Child, why: str) -> None:
        """Kill ``child`` and start another in its place, in the background."""
        if child.replaced:  # its call failed and its pipe ended: both tell, one replaces
            return
        child.replaced = True
        logger.info("replacing child process %d: %s", child.pid, why)
        child.dead = True
        child.unlisten()

        async def replace() -> None:
            assert self._threads is not None and self._idle is not None
            with self._lock:
                self._children.discard(child)
            await self._io(child.kill)
            delay = 0.1
            while not self.closed:
                try:
                    fresh = await self._io(self._spawn)
                except Exception:
                    logger.exception("starting a child process failed; retrying")
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                if not fresh.dead:
                    fresh.listen(asyncio.get_running_loop(), self._io, self._died_idle)
                    self._idle.put_nowait(fresh)
                return

        task = asyncio.ensure_future(replace())
        self._replacing.add(task)
        task.add_done_callback(self._replacing.discard)

    async def close(self) -> None:
        """Stop every child: idle ones exit, busy ones (abandoned calls) are killed."""
        with self._lock:
            self._closed = True
        if self._replacing:
            await asyncio.gather(*self._replacing, return_exceptions=True)
        idle: set[_Child] = set()
        while self._idle is not None and not self._idle.empty():
            idle.add(self._idle.get_nowait())
        children = list(self._children)
        self._children.clear()
        for child in children:
            child.unlisten()
        if self._threads is not None:
            await asyncio.gather(
                *(self._io(c.stop if c in idle else c.kill)
                  for c in children),
                return_exceptions=True,
            )  # fmt: skip
            self._threads.shutdown()
            self._threads = None
        _live_executors.discard(self)

    def kill_all(self) -> None:
        """Kill every child now (at interpreter exit)."""
        self._closed = True
        for child in list(self._children):
            child.kill()
        self._children.clear()


def _fail_on_error(reply: asyncio.Future[bytes], reading: asyncio.Future[Any]) -> bool:
    """Fail ``reply`` (if still open) when reading the child's pipe in a thread failed or was
    cancelled; True if it did fail."""
    if reading.cancelled():
        error: BaseException | None = EOFError("reading the child's pipe was cancelled")
    else:
        error = reading.exception()
    if error is None:
        return False
    if not reply.done():
        reply.set_exception(error)
    return True


def _relay_progress(context: TaskContext | None, message: bytes) -> None:
    """Hand a child's progress message to the worker's relay, through the task's context."""
    found = read_progress(message)
    if found is not None and context is not None:
        context.relay_progress(found)


def _unpack(reply: bytes) -> Any:
    try:
        outcome = pickle.loads(reply)
    except Exception as exc:
        raise SerializationError(f"cannot read what the child process sent back: {exc!r}") from exc
    if outcome[0] == "ok":
        return outcome[1]
    error: BaseException = outcome[1]
    error.__cause__ = RemoteTraceback(outcome[2])
    raise error


__all__ = ["ChildTaskError", "ProcessExecutor", "RemoteTraceback", "start_method"]
