"""Counting the statements sitq sends to its store, in the bench process only.

`counting` wraps the drivers' connection factories while it is active: every SQLite
connection opened then is of a `sqlite3.Connection` subclass counting each statement handed
to SQLite (an ``executemany`` is one, as is a ``BEGIN`` or a ``COMMIT``; what triggers run
is not counted), every asyncpg connection gets a query logger (one count per statement sent:
an ``executemany`` batch, a ``BEGIN`` and a ``COMMIT`` are one each). Neither slows the
statements (SQLite's trace callback would: it expands every statement's text, again at each
trigger a statement fires). Open
the queue inside the block, and read `StatementCount.n` at the points you measure between.
Work done in other processes (a worker process) is not counted.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class StatementCount:
    """Statements counted so far (connections of any thread)."""

    def __init__(self) -> None:
        self.n = 0
        self._lock = threading.Lock()

    def add(self, *_: object) -> None:
        """Count one statement (called by the counting cursors and query loggers)."""
        with self._lock:
            self.n += 1


@contextmanager
def counting() -> Iterator[StatementCount]:
    """Count the statements of the SQLite and asyncpg connections opened in the block."""
    count = StatementCount()
    undo = [_wrap_sqlite(count)]
    try:
        undo.append(_wrap_asyncpg(count))
    except ImportError:  # no asyncpg: SQLite only
        pass
    try:
        yield count
    finally:
        for restore in undo:
            restore()


def _wrap_sqlite(count: StatementCount) -> Callable[[], None]:
    connect = sqlite3.connect

    class Cursor(sqlite3.Cursor):
        def execute(self, *args: Any, **kwargs: Any) -> Any:
            count.add()
            return super().execute(*args, **kwargs)

        def executemany(self, *args: Any, **kwargs: Any) -> Any:
            count.add()
            return super().executemany(*args, **kwargs)

        def executescript(self, *args: Any, **kwargs: Any) -> Any:
            count.add()
            return super().executescript(*args, **kwargs)

    class Connection(sqlite3.Connection):
        def cursor(self, factory: Any = Cursor) -> Any:
            return super().cursor(factory)

        def execute(self, *args: Any, **kwargs: Any) -> Any:
            return self.cursor().execute(*args, **kwargs)

        def executemany(self, *args: Any, **kwargs: Any) -> Any:
            return self.cursor().executemany(*args, **kwargs)

        def executescript(self, *args: Any, **kwargs: Any) -> Any:
            return self.cursor().executescript(*args, **kwargs)

    def counted(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        kwargs.setdefault("factory", Connection)
        conn: sqlite3.Connection = connect(*args, **kwargs)
        return conn

    sqlite3.connect = counted  # type: ignore[assignment]

    def restore() -> None:
        sqlite3.connect = connect

    return restore


def _wrap_asyncpg(count: StatementCount) -> Callable[[], None]:
    import asyncpg

    create_pool, connect = asyncpg.create_pool, asyncpg.connect

    def pool(*args: Any, init: Any = None, **kwargs: Any) -> Any:
        async def logged(conn: Any) -> None:
            conn.add_query_logger(count.add)
            if init is not None:
                await init(conn)

        return create_pool(*args, init=logged, **kwargs)

    async def logged_connect(*args: Any, **kwargs: Any) -> Any:
        conn = await connect(*args, **kwargs)
        conn.add_query_logger(count.add)
        return conn

    asyncpg.create_pool = pool
    asyncpg.connect = logged_connect

    def restore() -> None:
        asyncpg.create_pool, asyncpg.connect = create_pool, connect

    return restore
