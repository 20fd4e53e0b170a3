"""Looking at a database file before sitq writes a byte to it: files that are not ours are
refused, untouched, and a shared file's mode is reported.

`SQLiteBackend.connect` sets WAL mode and creates its tables, which changes any SQLite file it
opens. So before that, `check_file` reads the file on its own, read-only, and raises
`ForeignDatabase` for anything sitq should not write to: a directory, a file that is not a
SQLite database or is damaged, another application's database (tables, none of them sitq's),
or a sitq table at a schema version newer than this code. A missing or empty file is a new
database; a file holding any sitq table (this one, or another ``table=``'s) is ours.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from typing import Any
from urllib.parse import quote

from sitq.errors import ConfigurationError, ForeignDatabase

from .schema import SCHEMA_VERSION, version_query

logger = logging.getLogger("sitq.sqlite")

#: The first 16 bytes of every SQLite 3 database file.
SQLITE_MAGIC = b"SQLite format 3\x00"
_HEADER_SIZE = 100
_WAL_FORMAT = 2  # header bytes 18 and 19 (write and read format): 2 means WAL mode

#: Database files already warned about in this process (a worker opens each one twice).
_warned_paths: set[str] = set()


def check_file(path: str, table: str, busy_timeout: float = 5.0) -> None:
    """Raise `ForeignDatabase` unless ``path`` is missing, empty, or a database holding sitq
    tables this version can use (an older schema is fine: it is migrated after). Reads only:
    never writes to the file, and leaves no ``-wal``/``-shm`` beside it. A file locked past
    ``busy_timeout`` is left to the backend's own connection, which waits and retries."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigurationError(f"cannot look at {path!r}: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        example = os.path.join(os.path.abspath(path), "sitq.db")
        raise _foreign(path, "is a directory", f"pass the path of a file inside it, e.g. {example}")
    if not stat.S_ISREG(info.st_mode):
        raise _foreign(path, "is not a regular file", "pass the path of a database file")
    if info.st_size == 0:
        return  # a new database (created empty by create_private, or touched)
    header = _header(path)
    if len(header) < _HEADER_SIZE or not header.startswith(SQLITE_MAGIC):
        raise _foreign(
            path,
            "is not a SQLite database (it does not start with SQLite's header)",
            "point sitq at a new file, or restore this one from a backup if it was sitq's",
        )
    found = _read(path, header, busy_timeout, _TABLES)
    if found is None:
        return
    tables = {str(name) for (name,) in found if not str(name).startswith("sqlite_")}
    meta = f"{table}_meta"
    if meta in tables:
        _check_version(path, header, busy_timeout, table)
    elif table in tables:
        raise _foreign(
            path,
            f"holds a table {table!r} that sitq did not create (no {meta!r} beside it)",
            "give sitq its own file, or another table name (table=...)",
        )
    elif tables and not _has_sitq_table(tables):
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise _foreign(
            path,
            f"is another application's SQLite database (tables: {shown}; none of them sitq's)",
            "give sitq a file of its own, e.g. sqlite:///sitq.db",
        )


def warn_if_shared(path: str) -> None:
    """Log a warning, once per file and process, if an existing database file can be read or
    written by others than its owner: sitq creates files 0600, but an existing file keeps its
    mode, and whoever can write the file can run code on the workers."""
    path = os.path.abspath(path)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:  # a new database: created 0600 next
        return
    if not mode & 0o077 or path in _warned_paths:
        return
    _warned_paths.add(path)
    who = "written" if mode & 0o022 else "read"
    logger.warning(
        "the task database %s has mode %04o: it can be %s by users other than its owner. "
        "Whoever can write it can change which tasks run, and with pickle run any code on the "
        "workers; whoever can read it sees every payload and result. Run `chmod 600 %s` "
        "(see the security page of the docs).",
        path,
        mode,
        who,
        path,
    )


def _foreign(path: str, found: str, fix: str) -> ForeignDatabase:
    return ForeignDatabase(
        f"{os.path.abspath(path)} {found}; sitq left it untouched. Fix: {fix}.",
        location=os.path.abspath(path),
    )


def _header(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read(_HEADER_SIZE)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read {os.path.abspath(path)}: {exc.strerror}; sitq needs to read and write "
            "its database file"
        ) from None


#: The user tables and views of a file (SQLite's own ``sqlite_*`` ones are left out after).
_TABLES = "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')"


def _read_only_uri(path: str, header: bytes) -> tuple[str, bool]:
    """The URI of a read-only connection that creates no file, and whether it is
    ``immutable``: a WAL-mode database with no ``-wal`` beside it (no connection open) is
    opened so, as a plain read-only connection would create ``-wal`` and ``-shm`` and leave
    them behind."""
    uri = f"file:{quote(os.path.abspath(path))}?mode=ro"
    if header[18:20] == bytes([_WAL_FORMAT] * 2) and not os.path.exists(f"{path}-wal"):
        return f"{uri}&immutable=1", True
    return uri, False


def _read(path: str, header: bytes, busy_timeout: float, sql: str) -> list[Any] | None:
    """The rows of ``sql``, read-only; None if the file stayed locked (it is in use, and the
    backend's connection will wait for it); `ForeignDatabase` if SQLite cannot read it.

    An ``immutable`` read takes no lock, so a connection opened and closed meanwhile by
    another process (its last close copies the WAL into the file) can tear it: such a read is
    done again, the file's state looked at afresh, until one ran with the file unchanged.
    """
    for attempt in range(_READ_ATTEMPTS):
        uri, immutable = _read_only_uri(path, header)
        before = _state(path)
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout)
            try:
                rows: list[Any] = conn.execute(sql).fetchall()
            finally:
                conn.close()
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                return None
            raise ConfigurationError(f"cannot read {os.path.abspath(path)}: {exc}") from None
        except sqlite3.DatabaseError as exc:  # "file is not a database", "... malformed"
            if immutable and _changed(path, before) and attempt + 1 < _READ_ATTEMPTS:
                continue
            raise _foreign(
                path,
                f"is a SQLite file that cannot be read ({exc})",
                "restore it from a backup, or point sitq at a new file",
            ) from None
        if not immutable or not _changed(path, before):
            return rows
    return None  # changing under every read: in busy use, by sitq; the backend takes over


#: How often `_read` tries a file that other processes keep changing.
_READ_ATTEMPTS = 5


def _changed(path: str, before: tuple[int, int, int]) -> bool:
    """True if the file was written, or a connection opened on it, since ``before``."""
    return _state(path) != before or os.path.exists(f"{path}-wal")


def _state(path: str) -> tuple[int, int, int]:
    """What changes when a write lands in the file: its inode, size and modification time."""
    info = os.stat(path)
    return info.st_ino, info.st_size, info.st_mtime_ns


def _check_version(path: str, header: bytes, busy_timeout: float, table: str) -> None:
    rows = _read(path, header, busy_timeout, version_query(table))
    if not rows:  # locked (the backend waits), or no row yet: the connection inserts it
        return
    try:
        version = int(rows[0][0])
    except (TypeError, ValueError):
        raise _foreign(
            path,
            f"holds a sitq table {table!r} with an unreadable schema version {rows[0][0]!r}",
            "restore the file from a backup, or give sitq a new file",
        ) from None
    if version > SCHEMA_VERSION:
        raise _foreign(
            path,
            f"holds a sitq table {table!r} at schema version {version}, newer than this "
            f"sitq-sqlite knows ({SCHEMA_VERSION})",
            "upgrade sitq-sqlite (pip install -U sitq-sqlite) wherever this file is used",
        )


def _has_sitq_table(tables: set[str]) -> bool:
    """True if some table ``X`` has its ``X_meta`` beside it: the file holds sitq tables under
    another ``table=`` name, so adding ours is expected."""
    return any(f"{name}_meta" in tables for name in tables)
