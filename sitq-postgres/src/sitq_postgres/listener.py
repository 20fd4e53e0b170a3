"""The LISTEN side of wake-ups: one dedicated connection per backend.

NOTIFY is only a hint. Enqueues, retries, releases and recoveries notify the ``enqueued``
channel (payload: the queue name) and finishes the ``finished`` channel, inside the same
transaction, so PostgreSQL delivers them when, and only if, that transaction commits. The
listener turns each into an in-process wake-up. Workers still poll, so a missed notification
(listener reconnecting, PgBouncer without a direct ``listen_dsn``) costs latency, never a task.

The listener runs as a task on the event loop of whoever first waits; if that loop ends, the
next waiter starts a new one on its own loop. A lost connection is reopened with a backoff,
and waiters are woken after every (re)connect, since notifications may have been missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import asyncpg

logger = logging.getLogger("sitq.postgres")

_PING_INTERVAL = 30.0  # seconds between liveness checks of an idle LISTEN connection
_PING_TIMEOUT = 10.0
_MAX_DELAY = 1.0


class Listener:
    """LISTENs on ``channels`` (name → callback taking the payload) over its own connection.

    ``on_connect`` is called after each successful (re)connect.
    """

    def __init__(
        self,
        dsn: str,
        connect_kwargs: dict[str, Any],
        channels: dict[str, Callable[[str], None]],
        on_connect: Callable[[], None],
    ) -> None:
        self._dsn = dsn
        self._connect_kwargs = connect_kwargs
        self._channels = channels
        self._on_connect = on_connect
        self._lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.connected = False

    async def ensure(self, timeout: float) -> bool:
        """Make sure the listener runs; True if this call started it.

        A new listener is waited for (up to ``timeout``) until it listens, so the caller can
        look for work once more knowing that later notifications will reach it.
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            task = self._task
            if self._closed or (task is not None and _alive(task)):
                return False
            ready = asyncio.Event()
            self._task = loop.create_task(self._listen(ready), name="sitq-postgres-listener")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(ready.wait(), timeout)
        return True

    async def _listen(self, ready: asyncio.Event) -> None:
        delay = 0.05
        while not self._closed:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn, **self._connect_kwargs)
                lost = asyncio.Event()
                conn.add_termination_listener(_setter(lost))
                for channel, callback in self._channels.items():
                    await conn.add_listener(channel, _relay(callback))
                self.connected = True
                delay = 0.05
                ready.set()
                self._on_connect()
                while not lost.is_set():
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(lost.wait(), _PING_INTERVAL)
                    if not lost.is_set():
                        await asyncio.wait_for(conn.execute("SELECT 1"), _PING_TIMEOUT)
                logger.warning("the LISTEN connection to PostgreSQL was lost; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("LISTEN connection to PostgreSQL failed (%r); retrying", exc)
            finally:
                self.connected = False
                ready.set()  # a waiter in ensure() goes back to polling meanwhile
                if conn is not None:
                    conn.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)

    async def close(self) -> None:
        """Stop listening and close the connection (idempotent)."""
        with self._lock:
            self._closed = True
            task, self._task = self._task, None
        if task is None or task.done():
            return
        loop = task.get_loop()
        if loop is asyncio.get_running_loop():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        elif not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(task.cancel)


def _alive(task: asyncio.Task[None]) -> bool:
    return not task.done() and not task.get_loop().is_closed()


def _setter(event: asyncio.Event) -> Callable[[object], None]:
    return lambda _conn: event.set()


def _relay(callback: Callable[[str], None]) -> Callable[..., None]:
    def on_notify(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        callback(payload)

    return on_notify
