"""The floor under sitq-sqlite: the stdlib ``sqlite3`` doing the same writes, with no queue.

Same schema (sitq's own DDL), WAL and ``synchronous=NORMAL`` like `SQLiteBackend`'s default.
Enqueue: one INSERT + commit per row, or all rows in one transaction. Processing: claim a row
(``UPDATE … WHERE rowid = (SELECT …) RETURNING``) then mark it done, one row per statement or
``batch`` rows per statement.
"""

from __future__ import annotations

import os
import sqlite3
import time
import uuid

from harness import Clock, Sample, from_template

from sitq_sqlite.schema import INSERT_COLUMNS, ddl

TABLE = "sitq_tasks"
PAYLOAD = b"\x80\x05" + b"x" * 60  # about the size of a pickled no-op call


def connect(folder: str, synchronous: str = "NORMAL") -> sqlite3.Connection:
    """A connection on a fresh database with sitq's schema and file settings."""
    conn = sqlite3.connect(os.path.join(folder, "raw.db"), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.executescript(ddl(TABLE))
    return conn


#: The values of a plain pending task in the columns an enqueue writes beyond the first ten
#: and its status (no limits, no uniqueness of its own, no workflow): what sitq writes too.
_PLAIN = {"attempts": 0, "meta": "{}", "allow_failure": 0, "remaining": 0}


def _rows(n: int) -> list[tuple[object, ...]]:
    now = time.time()
    rest = INSERT_COLUMNS[11:]
    return [
        (uuid.uuid4().hex, "workloads:async_noop", PAYLOAD, "cloudpickle", "default", 0, now,
         None, None, None, "pending",
         *(now if name == "created_at" else _PLAIN.get(name) for name in rest))
        for _ in range(n)
    ]  # fmt: skip


_INSERT = (
    f"INSERT INTO {TABLE} ({', '.join(INSERT_COLUMNS)}) "
    f"VALUES ({','.join('?' * len(INSERT_COLUMNS))})"
)


def fill(conn: sqlite3.Connection, n: int) -> None:
    """Insert ``n`` pending rows in one transaction."""
    conn.execute("BEGIN")
    conn.executemany(_INSERT, _rows(n))
    conn.execute("COMMIT")


def enqueue_each(folder: str, n: int) -> Sample:
    """INSERT + commit per row."""
    conn = connect(folder)
    rows = _rows(n)
    clock = Clock()
    for row in rows:
        conn.execute(_INSERT, row)
    sample = clock.sample(n)
    conn.close()
    return sample


def enqueue_batch(folder: str, n: int) -> Sample:
    """All rows in one transaction (``executemany``)."""
    conn = connect(folder)
    rows = _rows(n)
    clock = Clock()
    conn.execute("BEGIN")
    conn.executemany(_INSERT, rows)
    conn.execute("COMMIT")
    sample = clock.sample(n)
    conn.close()
    return sample


_CLAIM_ONE = (
    f"UPDATE {TABLE} SET status = 'running', attempts = attempts + 1, worker_id = ?, "
    "started_at = ?, lease_token = ?, lease_expires_at = ? "
    f"WHERE rowid = (SELECT rowid FROM {TABLE} INDEXED BY {TABLE}_pending "
    "WHERE status = 'pending' AND available_at <= ? "
    "ORDER BY priority DESC, available_at, rowid LIMIT 1) RETURNING id, payload"
)
_DONE_ONE = (
    f"UPDATE {TABLE} SET status = 'succeeded', result = ?, finished_at = ?, lease_token = NULL, "
    "lease_expires_at = NULL WHERE id = ? AND lease_token = ? AND status = 'running'"
)


def process_each(folder: str, n: int) -> Sample:
    """Claim one row, mark it done; repeat until the queue is empty."""
    conn = connect(folder)
    fill(conn, n)
    done = 0
    clock = Clock()
    while True:
        now = time.time()
        token = uuid.uuid4().hex
        row = conn.execute(_CLAIM_ONE, ("w", now, token, now + 30, now)).fetchone()
        if row is None:
            break
        conn.execute(_DONE_ONE, (b"N.", time.time(), row[0], token))
        done += 1
    sample = clock.sample(done)
    conn.close()
    return sample


def process_batched(folder: str, n: int, batch: int = 100) -> Sample:
    """Claim ``batch`` rows in one statement, mark them done in one statement; repeat until
    the queue is empty."""
    conn = connect(folder)
    fill(conn, n)
    sample = _drain_batched(conn, n, batch)
    conn.close()
    return sample


def process_backlog(folder: str, depth: int, n: int, batch: int = 100) -> Sample:
    """`process_batched` for ``n`` rows out of ``depth`` pending (the database is filled once
    per run and copied for each round)."""

    def build(where: str) -> None:
        conn = connect(where)
        for start in range(0, depth, 100_000):
            fill(conn, min(100_000, depth - start))
        conn.close()

    from_template(f"raw-backlog-{depth}", folder, build)
    conn = sqlite3.connect(os.path.join(folder, "raw.db"), isolation_level=None)
    conn.execute("PRAGMA synchronous=NORMAL")
    sample = _drain_batched(conn, n, batch)
    conn.close()
    return sample


def _drain_batched(conn: sqlite3.Connection, n: int, batch: int) -> Sample:
    claim = _CLAIM_ONE.replace("rowid = (SELECT", "rowid IN (SELECT")
    done = 0
    clock = Clock()
    while done < n:
        now = time.time()
        token = uuid.uuid4().hex
        limited = claim.replace("LIMIT 1", f"LIMIT {min(batch, n - done)}")
        rows = conn.execute(limited, ("w", now, token, now + 30, now)).fetchall()
        if not rows:
            break
        finished = time.time()
        values = ",".join(["(?,?)"] * len(rows))
        params = [v for tid, _ in rows for v in (tid, token)]
        conn.execute(
            f"WITH o(id, token) AS (VALUES {values}) UPDATE {TABLE} SET status = 'succeeded', "
            f"result = ?, finished_at = ?, lease_token = NULL, lease_expires_at = NULL FROM o "
            f"WHERE {TABLE}.id = o.id AND {TABLE}.lease_token = o.token",
            [*params, b"N.", finished],
        )
        done += len(rows)
    return clock.sample(done)
