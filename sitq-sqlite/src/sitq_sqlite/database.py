"""The aiosqlite connection: opening it safely, waiting out calls, retrying a held lock.

aiosqlite runs every call on a thread of the connection's own; these helpers keep that thread
and the event loops that talk to it out of each other's way.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiosqlite

from sitq.errors import ConfigurationError

T = TypeVar("T")

#: How often a statement is tried while another process holds the lock past the busy timeout.
LOCKED_RETRIES = 20
#: The wait after each failed try, doubling from 10 ms to 1 s; None after the last: give up.
_RETRY_DELAYS: tuple[float | None, ...] = (
    *(min(0.01 * 2**n, 1.0) for n in range(LOCKED_RETRIES - 1)),
    None,
)


async def settled(call: Awaitable[T]) -> T:
    """Await an aiosqlite call; if cancelled, wait for the call itself before re-raising.

    aiosqlite runs the call on its thread whatever happens to the awaiting task, then posts the
    reply to the caller's loop. If that loop has closed meanwhile (a cancelled background job
    on a loop being shut down), the post raises inside aiosqlite's thread and kills it, and
    every later call on the connection hangs. Waiting out the call keeps the loop alive until
    the reply has landed.
    """
    future = asyncio.ensure_future(call)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(future)
            break
        except asyncio.CancelledError:
            if future.done():
                raise
            cancelled = True  # keep waiting for the call, then re-raise
    if cancelled:
        raise asyncio.CancelledError
    return result


async def retry_locked(fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    """Run ``fn(*args)`` (settled), retrying if another process held the lock past the busy
    timeout."""
    for delay in _RETRY_DELAYS:
        try:
            return await settled(fn(*args))
        except sqlite3.OperationalError as exc:
            if not _locked(exc) or delay is None:
                raise
        await asyncio.sleep(delay)
    raise AssertionError("unreachable")


async def in_connection_thread(
    db: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]
) -> T:
    """Run ``fn`` with the blocking `sqlite3` connection under ``db``, on aiosqlite's thread:
    a transaction of many statements in one hop instead of one hop (two thread switches and
    an event-loop turn) per statement. ``fn`` must not wait on the event loop."""
    # aiosqlite has no public call for this: `_execute` queues ``fn`` on the connection's
    # thread (its public calls do the same with `sqlite3.Connection` methods), present from
    # 0.17 to 0.22 at least.
    conn: sqlite3.Connection = db._conn
    result: T = await settled(db._execute(fn, conn))  # type: ignore[no-untyped-call]
    return result


def retry_locked_blocking(fn: Callable[..., T], *args: Any) -> T:
    """`retry_locked` for a blocking call (a `sqlite3` connection's) in the calling thread."""
    for delay in _RETRY_DELAYS:
        try:
            return fn(*args)
        except sqlite3.OperationalError as exc:
            if not _locked(exc) or delay is None:
                raise
        time.sleep(delay)
    raise AssertionError("unreachable")


def _locked(exc: sqlite3.OperationalError) -> bool:
    """True if ``exc`` says another connection held the lock."""
    return "locked" in str(exc) or "busy" in str(exc)


def daemonize(conn: aiosqlite.Connection) -> None:
    """Make aiosqlite's connection thread a daemon before it starts.

    A non-daemon thread keeps the interpreter alive at exit when a program forgets to close its
    queue. Letting the thread die with the process loses nothing committed: SQLite's WAL is
    crash-safe.
    """
    # a Thread attribute since aiosqlite 0.20, before: the connection itself
    thread = getattr(conn, "_thread", conn)
    if isinstance(thread, threading.Thread) and not thread.is_alive():
        thread.daemon = True


def create_private(path: str) -> None:
    """Create the database file readable by its owner only; SQLite gives ``-wal`` and ``-shm``
    the same mode."""
    if os.path.exists(path):
        return
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ConfigurationError(f"cannot create {path!r}: the folder {parent!r} does not exist")
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
