"""Flow control on PostgreSQL: the stored rules, key states and paused queues, and the claim
of tasks holding limit keys (`sitq.flow_claim` decides; this module reads and writes).

How it is stored (schema version 5, `schema._v5`): a task's keys in its ``limit_keys`` column
(``text[]``, NULL for a task holding none); the rules in ``<prefix>limits``; one row per key
in ``<prefix>limit_keys`` (its token bucket and when it was last served), created by the
enqueue that first names the key; the paused queues in ``<prefix>paused``; and a version in
``<prefix>flow_version``, bumped by every change of rules or pauses. A key's running count is
never stored: it is the number of running tasks holding it (``<prefix>tasks_held`` index), so
every way out of running frees the slot, and no finish ever locks a key row.

The backend keeps a copy of the rules and pauses (`FlowCache`); its plain claim statement names
the version it is from and claims nothing if the stored one differs. While no rule is stored,
that statement is the whole claim; with rules, it takes the keyless tasks among the first due,
and `claim_limited` takes the rest in one transaction:

1. due candidates are read window by window with ``FOR UPDATE SKIP LOCKED``, without the
   tasks of keys exhausted as the claim starts or found exhausted by an earlier window (the
   server passes their backlog over: no head-of-line blocking);
2. the state rows of the window's ruled keys are locked, in key order: waiting for them in the
   first window (claimers never wait for anything else while holding key rows, and lock in one
   order, so they cannot deadlock), skipping rows another claimer holds in later ones;
3. the running tasks holding those keys are counted *after* the lock, so a concurrent claim
   that held it has committed and is counted; `admit` decides, the chosen tasks become
   running and the key rows are written, all before the commit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from sitq.flow_claim import Candidate, KeyRecord, Rules, admit, exhausted_keys
from sitq.flow_control import LimitRule

from .schema import Names
from .sql import NOW, Statements

#: Due candidates read per window of a limited claim (at least; else 4 times its limit).
_WINDOW = 64
#: Windows a limited claim reads at most, then it takes what it found.
_MAX_WINDOWS = 50


@dataclass
class FlowCache:
    """The backend's copy of the stored rules and paused queues, and the version it is of
    (None: never read)."""

    version: int | None = None
    rules: Rules = field(default_factory=lambda: Rules(()))
    paused: list[str] = field(default_factory=list)


class FlowStatements:
    """The statements on the flow-control tables of one table prefix."""

    def __init__(self, names: Names) -> None:
        t = names.tasks
        self.names = names
        self.version = f"SELECT version FROM {names.flow_version}"
        # what a limited claim reads first, in one statement: the version, the time, and (to
        # find the keys exhausted as it starts) the running count of every key held and the
        # state rows of the keys whose bucket is drained, each as arrays (one aggregation
        # each, so their arrays line up). It also turns sorts and whole-table scans off for
        # the rest of the transaction: its statements are index walks (the candidates in
        # claim order from the pending index, the claimed tasks by id), but on a table
        # filled since its last ANALYZE the planner expects a few rows and reads every
        # pending task instead, on each claim (5-10x slower at 10k pending)
        self.opening = f"""
SELECT (SELECT version FROM {names.flow_version}), c.now, h.keys, h.counts,
       d.keys, d.tokens, d.refilled, d.served,
       set_config('enable_sort', 'off', true), set_config('enable_seqscan', 'off', true),
       set_config('enable_bitmapscan', 'off', true)
FROM {NOW} AS c,
     (SELECT array_agg(k) AS keys, array_agg(n) AS counts
      FROM (SELECT k, count(*) AS n FROM {t}, unnest(limit_keys) AS k
            WHERE status = 'running' AND limit_keys IS NOT NULL GROUP BY k) AS x) AS h,
     (SELECT array_agg(key) AS keys, array_agg(tokens) AS tokens,
             array_agg(refilled_at) AS refilled, array_agg(last_served_at) AS served
      FROM {names.limit_keys} WHERE tokens < 1) AS d"""
        self.bump = f"UPDATE {names.flow_version} SET version = version + 1"
        self.rules = (
            f"SELECT pattern, rate, burst, concurrency FROM {names.limits} ORDER BY pattern"
        )
        self.set_rules = (
            f"INSERT INTO {names.limits} (pattern, rate, burst, concurrency) "
            "SELECT * FROM unnest($1::text[], $2::float8[], $3::float8[], $4::int[]) "
            "ON CONFLICT (pattern) DO UPDATE SET rate = excluded.rate, burst = excluded.burst, "
            "concurrency = excluded.concurrency"
        )
        self.delete_rules = f"DELETE FROM {names.limits} WHERE pattern = ANY($1::text[])"
        self.paused = f"SELECT queue FROM {names.paused} ORDER BY queue"
        self.pause = f"INSERT INTO {names.paused} (queue) VALUES ($1) ON CONFLICT DO NOTHING"
        self.resume = f"DELETE FROM {names.paused} WHERE queue = $1"
        self.all_keys = f"SELECT key, tokens, refilled_at, last_served_at FROM {names.limit_keys}"
        self.add_keys = (
            f"INSERT INTO {names.limit_keys} (key) SELECT k FROM unnest($1::text[]) AS k "
            "ORDER BY k ON CONFLICT (key) DO NOTHING"
        )
        self.lock_keys = f"{self.all_keys} WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE"
        self.store_keys = (
            f"UPDATE {names.limit_keys} AS s SET tokens = u.tokens, refilled_at = u.refilled, "
            "last_served_at = u.served "
            "FROM unnest($6::text[], $7::float8[], $8::float8[], $9::float8[]) "
            "AS u(key, tokens, refilled, served) WHERE s.key = u.key"
        )
        self.held = (
            f"SELECT k, count(*) FROM {t}, unnest(limit_keys) AS k "
            "WHERE status = 'running' AND limit_keys IS NOT NULL AND k = ANY($1::text[]) "
            "GROUP BY k"
        )
        self.counts = (
            f"SELECT status, k, count(*) FROM {t}, unnest(limit_keys) AS k "
            "WHERE status IN ('pending', 'running') AND limit_keys IS NOT NULL GROUP BY status, k"
        )
        self.candidates = f"""
SELECT seq, id, priority, limit_keys, available_at FROM {t}
WHERE status = 'pending' AND available_at <= $1::float8
  AND ($2::text[] IS NULL OR queue = ANY($2::text[]))
  AND NOT (id = ANY($3::text[]))
  AND queue <> ALL($4::text[])
  AND (limit_keys IS NULL OR NOT (limit_keys && $5::text[]))
  AND ($6::bigint IS NULL OR priority < $6::bigint
       OR (priority = $6::bigint AND (available_at, seq) > ($7::float8, $8::bigint)))
ORDER BY priority DESC, available_at, seq
LIMIT $9
FOR UPDATE SKIP LOCKED"""

    def claim_storing(self, claim_ids: str) -> str:
        """``claim_ids`` (`Statements.claim_ids`, parameters ``$1``-``$5``) that also stores
        the key states ``$6``-``$9`` (keys, tokens, refilled_at, last_served_at): a limited
        claim's writes in one statement."""
        return f"WITH stored AS ({self.store_keys}) {claim_ids}"

    def lock(self, wait: bool) -> str:
        """Lock the state rows of keys ``$1`` in key order (skipping those locked by others
        unless ``wait``)."""
        return self.lock_keys if wait else self.lock_keys + " SKIP LOCKED"


def rule_from_row(row: Sequence[Any]) -> LimitRule:
    """A `LimitRule` from ``(pattern, rate, burst, concurrency)``."""
    return LimitRule(row[0], row[1], row[2], row[3])


def key_records(rows: Sequence[Sequence[Any]]) -> dict[str, KeyRecord]:
    """The records of the key rows selected as ``(key, tokens, refilled_at,
    last_served_at)``; a row never claimed (NULL tokens: a full bucket) has none."""
    return {row[0]: KeyRecord(row[1], row[2], row[3]) for row in rows if row[1] is not None}


async def read_flow(conn: asyncpg.Connection, fs: FlowStatements) -> FlowCache:
    """The stored rules and pauses with their version, read in one transaction."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        version = await conn.fetchval(fs.version)
        rules = await conn.fetch(fs.rules)
        paused = await conn.fetch(fs.paused)
    return FlowCache(int(version), Rules([rule_from_row(r) for r in rules]), [r[0] for r in paused])


@dataclass(frozen=True)
class ClaimArgs:
    """What a claim was asked: its lease values and its filters (``now`` None: the database
    clock)."""

    now: float | None
    worker_id: str
    token: str
    lease_seconds: float
    queues: list[str] | None
    excluded: list[str]


async def claim_limited(
    conn: asyncpg.Connection,
    sql: Statements,
    fs: FlowStatements,
    cache: FlowCache,
    args: ClaimArgs,
    want: int,
) -> tuple[list[Any], FlowCache]:
    """Claim up to ``want`` due tasks under the stored limits in one transaction (see the
    module): the rows claimed and the flow copy used (read again if its version changed)."""
    async with conn.transaction():
        opening = await conn.fetchrow(fs.opening, args.now)
        version, now = opening[0], opening[1]
        if version != cache.version:
            cache = await _read_in_transaction(conn, fs)
        exhausted = _exhausted_before(cache.rules, opening, now)
        taken, changed = await _choose(conn, fs, cache, args, want, now, exhausted)
        rows: list[Any] = []
        if taken:
            keys = sorted(changed)
            rows = list(
                await conn.fetch(
                    fs.claim_storing(sql.claim_ids),
                    now,
                    args.worker_id,
                    args.token,
                    args.lease_seconds,
                    taken,
                    keys,
                    [changed[k].tokens for k in keys],
                    [changed[k].refilled_at for k in keys],
                    [changed[k].last_served_at for k in keys],
                )
            )
    return rows, cache


async def _read_in_transaction(conn: asyncpg.Connection, fs: FlowStatements) -> FlowCache:
    version = await conn.fetchval(fs.version)
    rules = await conn.fetch(fs.rules)
    paused = await conn.fetch(fs.paused)
    return FlowCache(int(version), Rules([rule_from_row(r) for r in rules]), [r[0] for r in paused])


def _exhausted_before(rules: Rules, opening: Sequence[Any], now: float) -> set[str]:
    """The keys exhausted as the claim starts, from its opening read (`FlowStatements.opening`:
    read without locks, their tasks are only left out of its candidates, so their backlogs
    are passed over by the server, not read)."""
    held_keys, counts, keys, tokens, refilled, served = (a or [] for a in opening[2:8])
    running = dict(zip(held_keys, counts, strict=True))
    drained = key_records(list(zip(keys, tokens, refilled, served, strict=True)))
    return exhausted_keys(rules, drained, running, now)


async def _choose(
    conn: asyncpg.Connection,
    fs: FlowStatements,
    cache: FlowCache,
    args: ClaimArgs,
    want: int,
    now: float,
    exhausted: set[str],
) -> tuple[list[str], dict[str, KeyRecord]]:
    """The ids a limited claim takes and the key states to store with them (in the caller's
    transaction); ``exhausted``: the keys exhausted as it starts."""
    rules = cache.rules
    locked: set[str] = set()
    records: dict[str, KeyRecord] = {}
    held: Counter[str] = Counter()
    taken: list[str] = []
    changed: dict[str, KeyRecord] = {}
    after: tuple[int, float, int] | None = None
    window = max(_WINDOW, 4 * want)
    for turn in range(_MAX_WINDOWS):
        rows = await conn.fetch(
            fs.candidates, now, args.queues, args.excluded, cache.paused, sorted(exhausted),
            *(after or (None, None, None)), window,
        )  # fmt: skip
        if not rows:
            break
        last = rows[-1]
        after = (last["priority"], last["available_at"], last["seq"])
        wanted = sorted({k for row in rows for k in rules.ruled(row["limit_keys"] or ())} - locked)
        if wanted:
            found = list(await conn.fetch(fs.lock(wait=turn == 0), wanted))
            if turn == 0 and len(found) < len(wanted):  # rows the enqueue did not make
                await conn.execute(fs.add_keys, wanted)
                found = list(await conn.fetch(fs.lock(wait=True), wanted))
            got = [row[0] for row in found]
            locked.update(got)
            exhausted.update(set(wanted) - set(got))  # held by another claimer: not now
            records.update(key_records(found))
            if got:
                held.update(dict(await conn.fetch(fs.held, got)))
        candidates = [
            Candidate(row["id"], row["priority"], tuple(row["limit_keys"] or ()))
            for row in rows
            if not exhausted.intersection(row["limit_keys"] or ())
        ]
        done = admit(candidates, rules, records, held, now, want - len(taken))
        for candidate in done.taken:
            taken.append(candidate.ref)
            held.update(rules.ruled(candidate.keys))
        records.update(done.records)
        changed.update(done.records)
        exhausted |= done.exhausted
        if len(taken) >= want or len(rows) < window:
            break
    return taken, changed
