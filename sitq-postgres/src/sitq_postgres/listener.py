"""The LISTEN side of wake-ups: one dedicated connection per backend, on its own thread.

NOTIFY is only a hint. Enqueues, retries, releases and recoveries notify the ``enqueued``
channel (payload: the queue name) and finishes the ``finished`` channel, inside the same
statement, so PostgreSQL delivers them when, and only if, that transaction commits. The
listener turns each into an in-process wake-up (`sitq.signals`, which reach waiters on any
loop). Workers still poll, so a missed notification (listener reconnecting, PgBouncer without
a direct ``listen_dsn``) costs latency, never a task.

The listener runs on a private event loop in a daemon thread (a `sitq.bridge.Portal`), so it
outlives whichever caller's loop first needed it. It starts when someone first waits, reopens a
lost connection with a backoff, checks an idle connection now and then, and wakes every waiter
after each (re)connect, since notifications may have been missed meanwhile.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import asyncpg

from sitq.bridge import Portal

logger = logging.getLogger("sitq.postgres")

_PING_INTERVAL = 30.0  # seconds between liveness checks of an idle LISTEN connection
_PING_TIMEOUT = 10.0
_MAX_DELAY = 1.0
_CLOSE_TIMEOUT = 5.0


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
        self._portal: Portal | None = None
        self._task: concurrent.futures.Future[None] | None = None
        self._ready = threading.Event()
        self._closed = False

    async def ensure(self, timeout: float) -> bool:
        """Make sure the listener runs; True if this call started it.

        A new listener is waited for (up to ``timeout``) until it listens, so the caller can
        look for work once more knowing that later notifications will reach it.
        """
        with self._lock:
            if self._closed or self._portal is not None:
                return False
            self._portal = Portal("sitq-postgres-listener")
            self._task = self._portal.submit(self._listen())
        await asyncio.to_thread(self._ready.wait, timeout)
        return True

    async def _listen(self) -> None:
        delay = 0.05
        failing = False  # warn once per outage, not at every retry
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn, **self._connect_kwargs)
                lost = asyncio.Event()
                conn.add_termination_listener(_setter(lost))
                for channel, callback in self._channels.items():
                    await conn.add_listener(channel, _relay(callback))
                delay = 0.05
                if failing:
                    logger.info("LISTEN connection to PostgreSQL restored")
                failing = False
                self._on_connect()
                self._ready.set()
                while not lost.is_set():
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(lost.wait(), _PING_INTERVAL)
                    if not lost.is_set():
                        await asyncio.wait_for(conn.execute("SELECT 1"), _PING_TIMEOUT)
                logger.info("the LISTEN connection to PostgreSQL was lost; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:
                    logger.warning(
                        "LISTEN connection to PostgreSQL failed (%r); retrying, polling meanwhile",
                        exc,
                    )
                failing = True
            finally:
                self._ready.set()  # a waiter in ensure() goes back to polling meanwhile
                if conn is not None:
                    conn.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)

    async def close(self) -> None:
        """Stop listening, close the connection and the thread (idempotent)."""
        with self._lock:
            self._closed = True
            portal, task = self._portal, self._task
            self._portal = self._task = None
        if portal is None or task is None:
            return
        task.cancel()  # thread-safe: cancels the task on the portal's loop
        done = asyncio.wrap_future(portal.submit(asyncio.sleep(0)))  # runs after the cancel
        with contextlib.suppress(Exception):
            await asyncio.wait_for(done, _CLOSE_TIMEOUT)
        await asyncio.to_thread(portal.close)


def _setter(event: asyncio.Event) -> Callable[[object], None]:
    return lambda _conn: event.set()


def _relay(callback: Callable[[str], None]) -> Callable[..., None]:
    def on_notify(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        callback(payload)

    return on_notify
