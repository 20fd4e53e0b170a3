"""Flow control in SQLite: the stored rules, key states and paused queues, and the claim of
tasks holding limit keys (`sitq.flow_claim` decides; this module reads and writes).

How it is stored (`schema.flow_tables_ddl`): a task's keys in its ``limit_keys`` column (each
key as a JSON string, between commas: ``,"stripe","tenant:42",``, so that ``instr`` finds a
key exactly; NULL for a task holding none); the rules in ``<table>_limits``; one row per key
in ``<table>_limit_keys`` (its token bucket and when it was last served); the paused queues
in ``<table>_paused``; and ``flow_version`` in ``<table>_meta``, bumped by every change of
rules or pauses. A key's running count is never stored: it is the number of running tasks
holding it, read through the ``<table>_held`` index, so every way out of running frees the
slot.

The backend keeps a copy of the rules and pauses (`FlowCache`). Its plain claim statement
names the version it is from and claims nothing if the stored one differs (`Statements.claim`),
so the copy is checked by the claim's own write at no extra cost. While no rule is stored, that
statement is the whole claim; with rules, it takes the keyless tasks among the first due, and
`claim_limited` takes the rest in one write transaction. Its candidates are read in claim
order without the tasks of keys exhausted at its start (their backlog is passed over by
SQLite itself, not read), and read again without those of keys it exhausts itself.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from sitq.flow_claim import Candidate, KeyRecord, Rules, admit, exhausted_keys
from sitq.flow_control import LimitRule

from .database import in_connection_thread, retry_locked, settled
from .sql import Statements, placeholders

#: Due candidates read per step of a limited claim (at least; else 4 times the claim's limit).
_WINDOW = 64
#: A limited claim reads at most this many candidates, then takes what it found.
_MAX_SCAN = 20_000
#: Queries a limited claim makes at most (one more each time it exhausts a key).
_MAX_QUERIES = 8
#: Exhausted keys the candidates query leaves out itself; the tasks of others are read and
#: passed over.
_SQL_EXCLUDED = 100
_KEY_CHUNK = 500


def encode_keys(keys: Sequence[str]) -> str | None:
    """A task's limit keys as stored: each key once, as a JSON string, between commas (see
    the module); None for none."""
    if not keys:
        return None
    return "," + ",".join(json.dumps(k) for k in dict.fromkeys(keys)) + ","


def key_pattern(key: str) -> str:
    """What ``instr`` looks for in ``limit_keys`` to find ``key``: outside a JSON string a
    comma is followed by a quote only where a key starts, so the match is exact."""
    return "," + json.dumps(key) + ","


def decode_keys(text: str | None) -> tuple[str, ...]:
    """A task's limit keys from their stored text."""
    return _decoded(text) if text else ()


@functools.lru_cache(maxsize=4096)
def _decoded(text: str) -> tuple[str, ...]:
    """`decode_keys`, remembered: many tasks hold the same keys."""
    return tuple(json.loads("[" + text[1:-1] + "]"))


@dataclass
class FlowCache:
    """The backend's copy of the stored rules and paused queues, and the version it is of
    (None: never read)."""

    version: str | None = None
    rules: Rules = field(default_factory=lambda: Rules(()))
    paused: tuple[str, ...] = ()


class FlowStatements:
    """The statements on the flow-control tables of the tasks table ``table``."""

    def __init__(self, table: str) -> None:
        self.t = table
        self.version = f"SELECT value FROM {table}_meta WHERE key = 'flow_version'"
        self.bump = (
            f"UPDATE {table}_meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'flow_version'"
        )
        self.rules = (
            f"SELECT pattern, rate, burst, concurrency FROM {table}_limits ORDER BY pattern"
        )
        self.set_rule = (
            f"INSERT INTO {table}_limits (pattern, rate, burst, concurrency) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (pattern) DO UPDATE SET rate = excluded.rate, burst = excluded.burst, "
            "concurrency = excluded.concurrency"
        )
        self.delete_rule = f"DELETE FROM {table}_limits WHERE pattern = ?"
        self.paused = f"SELECT queue FROM {table}_paused ORDER BY queue"
        self.pause = f"INSERT OR IGNORE INTO {table}_paused (queue) VALUES (?)"
        self.resume = f"DELETE FROM {table}_paused WHERE queue = ?"
        self.held = (
            f"SELECT limit_keys, count(*) FROM {table} "
            "WHERE status = 'running' AND limit_keys IS NOT NULL GROUP BY limit_keys"
        )
        self.waiting = (
            f"SELECT limit_keys, count(*) FROM {table} "
            "WHERE status = 'pending' AND limit_keys IS NOT NULL GROUP BY limit_keys"
        )
        self.all_keys = f"SELECT key, tokens, refilled_at, last_served_at FROM {table}_limit_keys"
        self.drained = f"{self.all_keys} WHERE tokens < 1"
        self.store_key = (
            f"INSERT INTO {table}_limit_keys (key, tokens, refilled_at, last_served_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET tokens = excluded.tokens, "
            "refilled_at = excluded.refilled_at, last_served_at = excluded.last_served_at"
        )

    def keys(self, count: int) -> str:
        """The stored states of ``count`` given keys."""
        return f"{self.all_keys} WHERE key IN ({placeholders(count)})"

    def candidates(
        self, queues: int | None, excluded: int, paused: int, taken: int, keys: int
    ) -> str:
        """``(rowid, priority, limit_keys)`` of every due pending task in claim order
        (parameters as `Statements.due_where`), then ``taken`` rowids and the `key_pattern`
        of ``keys`` keys whose tasks are left out."""
        where = Statements.due_where(queues, excluded, paused)
        if taken:
            where.append(f"rowid NOT IN ({placeholders(taken)})")
        if keys:
            free = " AND ".join(["instr(limit_keys, ?) = 0"] * keys)
            where.append(f"(limit_keys IS NULL OR ({free}))")
        return (
            f"SELECT rowid, priority, limit_keys FROM {self.t} INDEXED BY {self.t}_pending "
            f"WHERE {' AND '.join(where)} ORDER BY priority DESC, available_at, rowid"
        )


def rule_from_row(row: Sequence[Any]) -> LimitRule:
    """A `LimitRule` from ``(pattern, rate, burst, concurrency)``."""
    return LimitRule(row[0], row[1], row[2], row[3])


def rule_row(rule: LimitRule) -> tuple[Any, ...]:
    """The stored values of ``rule``."""
    return (rule.pattern, rule.rate, rule.burst, rule.concurrency)


def key_record(row: Sequence[Any]) -> tuple[str, KeyRecord]:
    """``(key, KeyRecord)`` from a row of ``<table>_limit_keys``."""
    return row[0], KeyRecord(row[1], row[2], row[3])


def count_keys(rows: Iterable[Sequence[Any]]) -> Counter[str]:
    """How many tasks hold each key, from ``(limit_keys, count)`` rows."""
    counts: Counter[str] = Counter()
    for text, count in rows:
        for key in decode_keys(text):
            counts[key] += count
    return counts


async def read_flow(db: aiosqlite.Connection, fs: FlowStatements) -> FlowCache:
    """The stored rules and pauses, with their version, read in one hop (`flow_of`)."""
    read = functools.partial(flow_of, fs=fs)
    result: FlowCache = await retry_locked(in_connection_thread, db, read)
    return result


def flow_of(conn: sqlite3.Connection, fs: FlowStatements) -> FlowCache:
    """The stored rules and pauses, with their version (inside the caller's transaction, or
    as three reads: the version is read first, so a change meanwhile shows at the next
    claim)."""
    version = conn.execute(fs.version).fetchall()
    rules = conn.execute(fs.rules).fetchall()
    paused = conn.execute(fs.paused).fetchall()
    return FlowCache(
        str(version[0][0]) if version else "0",
        Rules([rule_from_row(r) for r in rules]),
        tuple(r[0] for r in paused),
    )


async def write_flow(db: aiosqlite.Connection, fs: FlowStatements, queries: list[Any]) -> int:
    """Run ``queries`` (``(sql, params)``) and bump the flow version, in one transaction;
    how many rows the queries changed."""
    changed = 0
    await retry_locked(db.execute, "BEGIN IMMEDIATE")
    try:
        for sql, params in queries:
            cursor = await settled(db.execute(sql, params))
            changed += cursor.rowcount
            await settled(cursor.close())
        await settled(db.execute(fs.bump))
        await settled(db.execute("COMMIT"))
    except BaseException:
        if db.in_transaction:
            await settled(db.execute("ROLLBACK"))
        raise
    return changed


@dataclass(frozen=True)
class ClaimArgs:
    """What a claim was asked: its lease values and its filters."""

    worker_id: str
    now: float
    token: str
    expires: float
    queues: list[str] | None
    excluded: list[str]


async def claim_limited(
    db: aiosqlite.Connection,
    sql: Statements,
    fs: FlowStatements,
    cache: FlowCache,
    args: ClaimArgs,
    want: int,
) -> tuple[list[Any], FlowCache]:
    """Claim up to ``want`` due tasks under the stored limits, in one write transaction run
    in one hop on the connection's thread: the rows claimed (as `Statements.claim_rowids`
    returns them) and the flow copy used (read again if its version changed)."""
    run = functools.partial(_claim_limited, sql=sql, fs=fs, cache=cache, args=args, want=want)
    result: tuple[list[Any], FlowCache] = await retry_locked(in_connection_thread, db, run)
    return result


def _claim_limited(
    conn: sqlite3.Connection,
    sql: Statements,
    fs: FlowStatements,
    cache: FlowCache,
    args: ClaimArgs,
    want: int,
) -> tuple[list[Any], FlowCache]:
    """`claim_limited` with the blocking connection (rolled back on any error)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute(fs.version).fetchall()
        if not version or str(version[0][0]) != cache.version:
            cache = flow_of(conn, fs)
        taken = _choose(conn, fs, cache, args, want)
        rows: list[Any] = []
        if taken:
            rows = conn.execute(
                sql.claim_rowids(len(taken)),
                [args.worker_id, args.now, args.token, args.expires, *taken],
            ).fetchall()
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return rows, cache


def _choose(
    conn: sqlite3.Connection, fs: FlowStatements, cache: FlowCache, args: ClaimArgs, want: int
) -> list[int]:
    """The rowids a limited claim takes, its key states written (in the caller's
    transaction): due candidates are read window by window without the tasks of exhausted
    keys, `admit` decides; a key it exhausts makes the next read leave its tasks out too."""
    rules = cache.rules
    held = count_keys(conn.execute(fs.held).fetchall())
    records = dict(key_record(row) for row in conn.execute(fs.drained).fetchall())
    exhausted = exhausted_keys(rules, records, held, args.now)
    taken: list[int] = []
    changed: dict[str, KeyRecord] = {}
    scanned = 0
    window = max(_WINDOW, 4 * want)
    for _ in range(_MAX_QUERIES):
        left_out = sorted(exhausted)[:_SQL_EXCLUDED]
        statement = fs.candidates(
            None if args.queues is None else len(args.queues),
            len(args.excluded), len(cache.paused), len(taken), len(left_out),
        )  # fmt: skip
        params = [args.now, *(args.queues or ()), *args.excluded, *cache.paused, *taken]
        params += [key_pattern(k) for k in left_out]
        cursor = conn.execute(statement, params)
        try:
            more = False
            while len(taken) < want and scanned < _MAX_SCAN:
                rows = cursor.fetchmany(window)
                scanned += len(rows)
                candidates = [
                    Candidate(row[0], row[1], keys)
                    for row in rows
                    if not exhausted.intersection(keys := decode_keys(row[2]))
                ]
                _load_records(conn, fs, rules, candidates, records)
                done = admit(candidates, rules, records, held, args.now, want - len(taken))
                for candidate in done.taken:
                    taken.append(candidate.ref)
                    held.update(rules.ruled(candidate.keys))
                records.update(done.records)
                changed.update(done.records)
                fresh = done.exhausted - exhausted
                exhausted |= done.exhausted
                more = len(rows) == window
                if not more or fresh:  # the end, or read again without the keys just exhausted
                    break
        finally:
            cursor.close()
        if not more or len(taken) >= want or scanned >= _MAX_SCAN:
            break
    if changed:
        conn.executemany(
            fs.store_key,
            [(k, r.tokens, r.refilled_at, r.last_served_at) for k, r in changed.items()],
        )
    return taken


def _load_records(
    conn: sqlite3.Connection,
    fs: FlowStatements,
    rules: Rules,
    candidates: Sequence[Candidate[int]],
    records: dict[str, KeyRecord],
) -> None:
    """Read into ``records`` the stored states of the ruled keys of ``candidates`` not read
    yet."""
    kinds = {c.keys for c in candidates}
    wanted = sorted({k for keys in kinds for k in rules.ruled(keys)} - records.keys())
    for i in range(0, len(wanted), _KEY_CHUNK):
        chunk = wanted[i : i + _KEY_CHUNK]
        rows = conn.execute(fs.keys(len(chunk)), chunk).fetchall()
        records.update(key_record(row) for row in rows)
