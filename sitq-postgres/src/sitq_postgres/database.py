"""Connections: one asyncpg pool per event loop, and retries across lost connections.

asyncpg connections belong to the event loop that opened them, and one backend object is used
from several loops (the synchronous facade and a background worker each run their own), so
each loop gets its own pool, opened on first use. A pool closes when its loop shuts down
(``asyncio.run`` and friends finalize async generators; a parked one closes the pool) or when
the backend closes.

Every operation runs through `Database.run`: a connection error (the server restarted, an
administrator or a proxy killed the connection) is retried on a fresh connection with a short
backoff until ``retry_timeout`` runs out. The operation is told which attempt it is, so the
few that cannot simply run twice can first look for what an earlier attempt committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar
from urllib.parse import parse_qsl, urlsplit

import asyncpg

from sitq.errors import QueueClosed

from .errors import PostgresUnavailable
from .options import Options

logger = logging.getLogger("sitq.postgres")

T = TypeVar("T")

#: What an operation gets: a pooled connection and the attempt number (0 first).
Operation = Callable[[asyncpg.Connection, int], Awaitable[T]]

_FIRST_DELAY = 0.02
_MAX_DELAY = 0.5
_CLOSE_TIMEOUT = 5.0
_QUIET_RETRIES = 1.0  # a killed connection replaced at once is routine; warn past this

#: Errors after which the same operation may succeed on another connection.
_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable (TimeoutError is one since 3.11)
    asyncio.TimeoutError,  # connect timeout on 3.10
    asyncpg.PostgresConnectionError,  # class 08
    asyncpg.exceptions.AdminShutdownError,  # 57P01: pg_terminate_backend, fast shutdown
    asyncpg.exceptions.CrashShutdownError,  # 57P02
    asyncpg.exceptions.CannotConnectNowError,  # 57P03: starting up, in recovery
    asyncpg.exceptions.TooManyConnectionsError,  # 53300
    asyncpg.exceptions.TransactionRollbackError,  # 40001, 40P01
)


def is_transient(exc: BaseException) -> bool:
    """True for errors that a retry on a fresh connection can get past."""
    if isinstance(exc, asyncpg.InterfaceError):
        return "closed" in str(exc)  # "connection is closed"; other InterfaceErrors are bugs
    if isinstance(exc, asyncpg.exceptions.InternalClientError):
        # a connection killed while idle: its protocol saw the FATAL error but not yet the EOF
        return "another operation" in str(exc)
    return isinstance(exc, _TRANSIENT)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool ``reset`` hook: nothing to undo.

    sitq sets no session state on pooled connections (no SET, no LISTEN, only
    transaction-scoped advisory locks), so the default reset query would be a wasted round trip
    per operation.
    """


class OneConnection:
    """What a loop that runs one operation at a time gets instead of a pool (the private
    loop of a thread enqueueing from plain code, `sitq_postgres.blocking`): one connection,
    opened on first use and again after it broke. A pool's acquire and release cost as much
    CPU as the INSERT they wrap."""

    def __init__(self, dsn: str, connect_kwargs: dict[str, Any]) -> None:
        self._dsn = dsn
        self._kwargs = connect_kwargs
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()  # uncontended in practice: the loop runs one call at once

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        """The connection, (re)opened if needed, for one operation at a time."""
        async with self._lock:
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(self._dsn, **self._kwargs)
            yield self._conn

    async def close(self) -> None:
        """Close the connection (``pool.close``'s counterpart)."""
        if self._conn is not None:
            await self._conn.close()

    def terminate(self) -> None:
        """Drop the connection at once (``pool.terminate``'s counterpart)."""
        if self._conn is not None:
            self._conn.terminate()


#: What `Database.run` takes connections from on one loop.
Connections: TypeAlias = "asyncpg.Pool | OneConnection"


@dataclass
class _LoopPool:
    loop: asyncio.AbstractEventLoop
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pool: Connections | None = None
    guard: AsyncGenerator[None, None] | None = None


class Database:
    """The pools of one backend, one per event loop, and the retrying runner."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self._loops: dict[asyncio.AbstractEventLoop, _LoopPool] = {}
        self._lock = threading.Lock()
        self._closed = False
        #: Loops that run one operation at a time: each gets a `OneConnection`, not a pool.
        self._serial_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()

    def serial_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Declare that ``loop`` runs one operation at a time (a thread's private loop):
        it is given one connection instead of a pool."""
        self._serial_loops.add(loop)

    def connect_kwargs(self) -> dict[str, Any]:
        """Arguments for `asyncpg.connect` beyond the DSN."""
        kwargs: dict[str, Any] = {"timeout": self.options.connect_timeout}
        if "application_name" not in dict(parse_qsl(urlsplit(self.options.dsn).query)):
            kwargs["server_settings"] = {"application_name": "sitq"}
        if self.options.pgbouncer:
            # PgBouncer in transaction mode cannot keep named prepared statements
            kwargs["statement_cache_size"] = 0
        return kwargs

    async def run(self, operation: Operation[T]) -> T:
        """Run ``operation`` on a pooled connection, retrying it after connection errors."""
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        warn_at: float | None = None
        delay = _FIRST_DELAY
        attempt = 0
        while True:
            try:
                pool = await self._pool(loop)
                async with pool.acquire() as conn:
                    try:
                        return await operation(conn, attempt)
                    except Exception as exc:
                        if is_transient(exc):  # never hand a dying connection to the next user
                            with contextlib.suppress(asyncpg.InterfaceError):  # already gone
                                conn.terminate()
                        raise
            except Exception as exc:
                if self._closed or not is_transient(exc):
                    raise
                now = loop.time()
                if deadline is None:
                    deadline = now + self.options.retry_timeout
                    warn_at = now + _QUIET_RETRIES
                    logger.info("PostgreSQL: %s; retrying", _describe(exc))
                if warn_at is not None and now >= warn_at:
                    warn_at = None
                    logger.warning(
                        "PostgreSQL at %s unreachable: %s; retrying for up to %g s",
                        self.options.location,
                        _describe(exc),
                        deadline - now,
                    )
                if now >= deadline:
                    raise PostgresUnavailable(
                        f"PostgreSQL at {self.options.location} stayed unreachable for "
                        f"{self.options.retry_timeout:g} s ({_describe(exc)}). Check the server, "
                        "or give the backend a longer retry_timeout."
                    ) from exc
                await asyncio.sleep(min(delay, deadline - now))
                delay = min(delay * 2, _MAX_DELAY)
                attempt += 1

    async def _pool(self, loop: asyncio.AbstractEventLoop) -> Connections:
        entry = self._loops.get(loop)
        if entry is not None and entry.pool is not None:
            return entry.pool
        if self._closed:
            raise QueueClosed(f"the PostgreSQL backend for {self.options.location} was closed")
        with self._lock:
            stale = [e for lp, e in self._loops.items() if lp.is_closed()]
            for e in stale:
                del self._loops[e.loop]
            entry = self._loops.setdefault(loop, _LoopPool(loop))
        for e in stale:
            _terminate(e.pool)
        async with entry.lock:
            if entry.pool is None:
                if loop in self._serial_loops:
                    entry.pool = OneConnection(self.options.dsn, self.connect_kwargs())
                else:
                    entry.pool = await asyncpg.create_pool(
                        self.options.dsn,
                        min_size=self.options.pool_min_size,
                        max_size=self.options.pool_max_size,
                        reset=_keep_session,
                        **self.connect_kwargs(),
                    )
                entry.guard = self._close_at_loop_shutdown(entry)
                await entry.guard.asend(None)
            return entry.pool

    async def _close_at_loop_shutdown(self, entry: _LoopPool) -> AsyncGenerator[None, None]:
        """Parked for the pool's life; the loop's ``shutdown_asyncgens`` runs the cleanup."""
        try:
            yield
        finally:
            with self._lock:
                if self._loops.get(entry.loop) is entry:
                    del self._loops[entry.loop]
            await _close(entry.pool)

    async def close(self) -> None:
        """Close every pool: on this loop directly, on other live loops through them."""
        self._closed = True
        with self._lock:
            entries = list(self._loops.values())
            self._loops.clear()
        here = asyncio.get_running_loop()
        for entry in entries:
            if entry.loop is here:
                await _close(entry.pool)
            elif entry.loop.is_running() and not entry.loop.is_closed():
                future = asyncio.run_coroutine_threadsafe(_close(entry.pool), entry.loop)
                try:
                    await asyncio.wait_for(asyncio.wrap_future(future), _CLOSE_TIMEOUT + 1)
                except (asyncio.TimeoutError, RuntimeError):
                    future.cancel()
            else:
                _terminate(entry.pool)


async def _close(pool: Connections | None) -> None:
    if pool is None:
        return
    try:
        await asyncio.wait_for(pool.close(), _CLOSE_TIMEOUT)
    except Exception:  # a connection is stuck or already broken: drop them all
        _terminate(pool)


def _terminate(pool: Connections | None) -> None:
    if pool is None:
        return
    try:
        pool.terminate()
    except RuntimeError:  # its loop is closed; the sockets go with the objects
        pass


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
