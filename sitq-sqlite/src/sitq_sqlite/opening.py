"""Opening the aiosqlite connection to the tasks file: pragmas, schema and migrations; and the
pragmas every other connection to it gets (`sitq_sqlite.blocking`)."""

from __future__ import annotations

import aiosqlite

from sitq.errors import ForeignDatabase

from .database import daemonize, retry_locked, settled
from .joins import ddl as workflow_statements
from .schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    ddl,
    indexes_ddl,
    pragmas,
    prune_ddl,
    set_version,
    space_pragmas,
    version_query,
)


def connection_pragmas(*, in_memory: bool, synchronous: str, busy_timeout: float) -> list[str]:
    """The pragmas every connection of a backend runs first, in order."""
    return [
        *space_pragmas(),
        *pragmas(in_memory=in_memory, synchronous=synchronous, busy_timeout=busy_timeout),
    ]


async def open_connection(
    path: str, table: str, *, in_memory: bool, synchronous: str, busy_timeout: float
) -> aiosqlite.Connection:
    """A connection in autocommit mode with the pragmas set and ``table`` created or migrated
    to `SCHEMA_VERSION` (idempotent); closed again if any of that fails."""
    pending = aiosqlite.connect(path, isolation_level=None, timeout=busy_timeout)
    daemonize(pending)
    conn = await pending
    try:
        for pragma in connection_pragmas(
            in_memory=in_memory, synchronous=synchronous, busy_timeout=busy_timeout
        ):
            # a pragma (the switch of a new file to WAL) can answer "locked" while another
            # process is creating the same file
            await retry_locked(conn.execute, pragma)
        # one transaction: a process checking the file meanwhile (`check_file`) never
        # sees the tasks table without its version table beside it
        await retry_locked(conn.executescript, f"BEGIN IMMEDIATE;{ddl(table)}COMMIT;")
        await retry_locked(conn.execute, prune_ddl(table))
        await _migrate(conn, table)
        for statement in indexes_ddl(table):
            await retry_locked(conn.execute, statement)
        await retry_locked(conn.executescript, f"BEGIN IMMEDIATE;{workflow_ddl(table)}COMMIT;")
    except BaseException:
        await conn.close()
        raise
    return conn


def workflow_ddl(table: str) -> str:
    """The workflow tables, indexes and triggers of ``table`` as one script (idempotent)."""
    return "".join(f"{statement};\n" for statement in workflow_statements(table))


async def _stored_version(conn: aiosqlite.Connection, table: str) -> int:
    rows = list(await retry_locked(conn.execute_fetchall, version_query(table)))
    return int(rows[0][0]) if rows else SCHEMA_VERSION


async def _migrate(conn: aiosqlite.Connection, table: str) -> None:
    """Bring a table made by an older sitq-sqlite up to `SCHEMA_VERSION`, once: under the
    write lock, the version read again (another process may have migrated meanwhile)."""
    found = await _stored_version(conn, table)
    if found > SCHEMA_VERSION:  # written between `check_file` and this connection
        raise ForeignDatabase(
            f"table {table!r} is at schema version {found}, newer than this sitq-sqlite knows "
            f"({SCHEMA_VERSION}); upgrade sitq-sqlite"
        )
    if found == SCHEMA_VERSION:
        return
    await retry_locked(conn.execute, "BEGIN IMMEDIATE")
    try:
        for version in range(await _stored_version(conn, table), SCHEMA_VERSION):
            for statement in MIGRATIONS[version](table):
                await settled(conn.execute(statement))
            await settled(conn.execute(set_version(table, version + 1)))
        await settled(conn.execute("COMMIT"))
    except BaseException:
        if conn.in_transaction:
            await settled(conn.execute("ROLLBACK"))
        raise
