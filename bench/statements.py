"""Counting the statements sitq sends to its store, in the bench process only.

`counting` wraps the drivers' connection factories while it is active: every SQLite
connection opened then gets a trace callback (one count per statement SQLite executes; each
row of an ``executemany`` is one, a trigger's program is not), every asyncpg connection a
query logger (one count per statement sent: an ``executemany`` batch, a ``BEGIN`` and a
``COMMIT`` are one each). Open
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
        """Count one statement (a trace callback and a query logger alike)."""
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

    def traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn: sqlite3.Connection = connect(*args, **kwargs)
        conn.set_trace_callback(_new_statements(count))
        return conn

    sqlite3.connect = traced  # type: ignore[assignment]

    def restore() -> None:
        sqlite3.connect = connect

    return restore


def _new_statements(count: StatementCount) -> Callable[[str], None]:
    """A trace callback for one connection. SQLite also calls it when a trigger's program
    starts, with the text of the statement that fired it again: a text equal to the one just
    before is not counted (an ``executemany`` row differs, its parameters being expanded)."""
    last: list[str] = [""]

    def trace(text: str) -> None:
        if text != last[0]:
            last[0] = text
            count.add()

    return trace


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
