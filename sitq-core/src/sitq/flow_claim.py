"""The decision a flow-controlled claim makes, written once for every backend that stores its
state in tables (SQLite, PostgreSQL): which of the due candidates a claim takes under the
stored limits, and what it leaves in each key's bucket (`admit`); and the figures of
``sitq limits`` (`states_of`).

A backend reads, in its claim transaction, a window of due candidates in claim order, the
stored state of their keys (`KeyRecord`) and how many running tasks hold each key, calls
`admit`, then marks the chosen tasks running and writes back the records it returns. Keys
found exhausted are returned too, so a backend reading a further window can leave their tasks
out (no head-of-line blocking).

Fairness: among admissible candidates of equal priority, the one whose keys were served least
recently goes first (a task ranks by its least recently served ruled key; a task without one
counts as never served), then the window's order; a key served in this claim goes behind
every other, so busy keys alternate. It holds among the candidates a backend reads: the first
window of due tasks, and further windows (without the exhausted keys' tasks) while the claim
is not full.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .flow_control import LimitRule, LimitState, refill, rule_for
from .records import TaskRecord
from .task import TaskStatus
from .unique import DEFAULT_UNIQUE_STATES, is_duplicate

T = TypeVar("T")

#: Keys whose rule `Rules` remembers at most.
_REMEMBERED_KEYS = 100_000


@dataclass(frozen=True)
class KeyRecord:
    """The stored state of one key: its bucket (``tokens`` at ``refilled_at``) and when a
    claim last took a task holding it (None: never)."""

    tokens: float
    refilled_at: float
    last_served_at: float | None = None


@dataclass(frozen=True)
class Candidate(Generic[T]):
    """A due pending task a claim may take: ``ref`` is whatever the backend finds it by."""

    ref: T
    priority: int
    keys: tuple[str, ...] = ()


@dataclass
class Admission(Generic[T]):
    """What `admit` decided: the candidates taken (in the order taken), the key records to
    store, and the keys that could take no further task in this claim."""

    taken: list[Candidate[T]] = field(default_factory=list)
    records: dict[str, KeyRecord] = field(default_factory=dict)
    exhausted: set[str] = field(default_factory=set)


class Rules:
    """The stored rules with `rule_for` remembered per key."""

    def __init__(self, rules: Sequence[LimitRule]) -> None:
        self.rules = tuple(rules)
        self._by_key: dict[str, LimitRule | None] = {}
        self._ruled: dict[tuple[str, ...], tuple[str, ...]] = {}

    def __bool__(self) -> bool:
        return bool(self.rules)

    def of(self, key: str) -> LimitRule | None:
        """The rule governing ``key``, or None."""
        if key not in self._by_key:
            if len(self._by_key) >= _REMEMBERED_KEYS:  # a worker may see keys without end
                self._by_key.clear()
            self._by_key[key] = rule_for(self.rules, key)
        return self._by_key[key]

    def ruled(self, keys: Sequence[str]) -> tuple[str, ...]:
        """The keys among ``keys`` that a rule governs (remembered per ``keys``: many tasks
        hold the same keys)."""
        held = keys if isinstance(keys, tuple) else tuple(keys)
        found = self._ruled.get(held)
        if found is None:
            if len(self._ruled) >= _REMEMBERED_KEYS:
                self._ruled.clear()
            found = self._ruled[held] = tuple(k for k in held if self.of(k) is not None)
        return found


def fresh_record(rule: LimitRule, now: float) -> KeyRecord:
    """The state of a key never seen: a full bucket, never served."""
    return KeyRecord(rule.bucket_size, now, None)


def admit(
    candidates: Sequence[Candidate[T]],
    rules: Rules,
    records: Mapping[str, KeyRecord],
    running: Mapping[str, int],
    now: float,
    limit: int,
) -> Admission[T]:
    """Take up to ``limit`` of ``candidates`` (in claim order) that every ruled key admits: a
    free concurrency slot (``running`` counts the tasks holding each key now) and a token in
    its bucket (`refill` of its record), which is taken. Fair between keys (see the module)."""
    done: Admission[T] = Admission()
    held = dict(running)
    known = dict(records)
    stamps: dict[str, tuple[float, int]] = {}
    served = 0

    def stamp(ruled: tuple[str, ...]) -> tuple[float, int]:
        found = []
        for key in ruled:
            if key not in stamps:
                rec = known.get(key)
                at = None if rec is None else rec.last_served_at
                stamps[key] = (float("-inf") if at is None else at, 0)
            found.append(stamps[key])
        return min(found, default=(float("-inf"), 0))

    # Candidates of equal priority and ruled keys share their order but for the window's
    # order: one heap entry per such group (its first candidate left) keeps the claim
    # O(n + taken x log groups). A key's stamp only grows, so an entry whose order grew since
    # it was pushed goes back in.
    groups = _groups(candidates, rules)
    # a key that admits ``limit`` more tasks whatever this claim takes needs neither a check
    # nor a record per task taken: its takes are counted, its record written once at the end
    unbound = _unbound_keys(groups, rules, known, held, now, limit)
    unbound_takes: dict[str, int] = {}
    bound_of = {g.ruled: [k for k in g.ruled if k not in unbound] for g in groups}
    line = [(_order(g, stamp), n) for n, g in enumerate(groups)]
    heapq.heapify(line)
    while line and len(done.taken) < limit:
        order, n = heapq.heappop(line)
        group = groups[n]
        if done.exhausted.intersection(group.ruled):
            continue
        now_order = _order(group, stamp)
        if now_order != order:
            heapq.heappush(line, (now_order, n))
            continue
        bound = bound_of[group.ruled]
        refused = _refusing_keys(bound, rules, known, held, now)
        if refused:
            done.exhausted.update(refused)
            continue
        served += 1
        for key in group.ruled:
            # behind every other key (and never ahead of where it was: a clock read before
            # the lock may be behind the stored last_served_at)
            stamps[key] = max((now, served), stamps.get(key, (float("-inf"), 0)))
            if key in unbound:
                unbound_takes[key] = unbound_takes.get(key, 0) + 1
        for key in bound:
            rule = rules.of(key)
            assert rule is not None
            rec = known.get(key) or fresh_record(rule, now)
            tokens = refill(rec.tokens, rec.refilled_at, now, rule)
            if rule.rate is not None:
                tokens -= 1.0
            # a claim's clock read before it waited for the store's lock may be behind the
            # stored refill: moving refilled_at back would hand out that time's tokens twice
            refilled_at = max(now, rec.refilled_at)
            known[key] = done.records[key] = KeyRecord(tokens, refilled_at, now)
            held[key] = held.get(key, 0) + 1
        done.taken.append(candidates[group.indexes.popleft()])
        if group.indexes:
            heapq.heappush(line, (_order(group, stamp), n))
    for key, takes in unbound_takes.items():
        done.records[key] = _taken_from(key, rules, known, now, takes)
    return done


def _unbound_keys(
    groups: Sequence[_Group],
    rules: Rules,
    records: Mapping[str, KeyRecord],
    held: Mapping[str, int],
    now: float,
    limit: int,
) -> set[str]:
    """The ruled keys of ``groups`` with ``limit`` free slots and ``limit`` tokens or more."""
    found = set()
    for key in {k for g in groups for k in g.ruled}:
        rule = rules.of(key)
        assert rule is not None
        if rule.concurrency is not None and held.get(key, 0) + limit > rule.concurrency:
            continue
        if rule.rate is not None:
            rec = records.get(key) or fresh_record(rule, now)
            if refill(rec.tokens, rec.refilled_at, now, rule) < limit:
                continue
        found.add(key)
    return found


def _taken_from(
    key: str, rules: Rules, records: Mapping[str, KeyRecord], now: float, takes: int
) -> KeyRecord:
    """The record of ``key`` once ``takes`` tasks holding it were taken at ``now``: as many
    takes one by one (the bucket is refilled to ``now`` at the first, a token taken at each;
    exact in floats while a bucket holds one token or more)."""
    rule = rules.of(key)
    assert rule is not None
    rec = records.get(key) or fresh_record(rule, now)
    tokens = refill(rec.tokens, rec.refilled_at, now, rule)
    if rule.rate is not None:
        tokens -= takes
    # a claim's clock read before it waited for the store's lock may be behind the stored
    # refill: moving refilled_at back would hand out that time's tokens twice
    return KeyRecord(tokens, max(now, rec.refilled_at), now)


@dataclass
class _Group:
    """The candidates (by index, in the window's order) of one priority and ruled keys."""

    priority: int
    ruled: tuple[str, ...]
    indexes: deque[int]


def _groups(candidates: Sequence[Candidate[T]], rules: Rules) -> list[_Group]:
    """``candidates`` grouped by priority and ruled keys, each group in the window's order."""
    ruled_of: dict[tuple[str, ...], tuple[str, ...]] = {}
    by_kind: dict[tuple[int, tuple[str, ...]], _Group] = {}
    for index, candidate in enumerate(candidates):
        ruled = ruled_of.get(candidate.keys)
        if ruled is None:
            ruled = ruled_of[candidate.keys] = rules.ruled(candidate.keys)
        group = by_kind.get((candidate.priority, ruled))
        if group is None:
            group = by_kind[candidate.priority, ruled] = _Group(candidate.priority, ruled, deque())
        group.indexes.append(index)
    return list(by_kind.values())


def _order(
    group: _Group, stamp: Callable[[tuple[str, ...]], tuple[float, int]]
) -> tuple[int, tuple[float, int], int]:
    """Claim order under fairness of ``group``'s first candidate: priority, then the keys'
    stamp, then the window's order."""
    return (-group.priority, stamp(group.ruled), group.indexes[0])


def exhausted_keys(
    rules: Rules, records: Mapping[str, KeyRecord], running: Mapping[str, int], now: float
) -> set[str]:
    """The keys among those of ``records`` and ``running`` that admit no task at ``now`` (no
    free slot, or no token): a backend leaves their tasks out of the candidates it reads."""
    found = set()
    for key in {*records, *running}:
        if rules.of(key) is not None and _refusing_keys((key,), rules, records, running, now):
            found.add(key)
    return found


def _refusing_keys(
    ruled: Sequence[str],
    rules: Rules,
    records: Mapping[str, KeyRecord],
    held: Mapping[str, int],
    now: float,
) -> list[str]:
    """The keys among ``ruled`` (keys a rule governs) with no free slot or no token now."""
    refused = []
    for key in ruled:
        rule = rules.of(key)
        assert rule is not None
        if rule.concurrency is not None and held.get(key, 0) >= rule.concurrency:
            refused.append(key)
            continue
        if rule.rate is not None:
            rec = records.get(key) or fresh_record(rule, now)
            if refill(rec.tokens, rec.refilled_at, now, rule) < 1.0:
                refused.append(key)
    return refused


def states_of(
    rules: Rules,
    records: Mapping[str, KeyRecord],
    running: Mapping[str, int],
    waiting: Mapping[str, int],
    now: float,
) -> list[LimitState]:
    """`Backend.limit_states` from what a backend stored: every key seen (a record, a running
    or a waiting task) that a rule governs, each exact rule, and each family rule with no key
    seen, by key; tokens read at ``now``."""
    shown: dict[str, LimitRule] = {}
    for key in (*records, *running, *waiting):
        rule = rules.of(key)
        if rule is not None:
            shown[key] = rule
    for rule in rules.rules:
        if rule not in shown.values():  # an exact key not seen yet, or an idle family
            shown[rule.pattern] = rule
    states = []
    for key, rule in sorted(shown.items()):
        tokens = None
        if rule.rate is not None:
            rec = records.get(key) or fresh_record(rule, now)
            tokens = refill(rec.tokens, rec.refilled_at, now, rule)
        states.append(LimitState(key, rule, tokens, running.get(key, 0), waiting.get(key, 0)))
    return states


def chooses_uniqueness(record: TaskRecord) -> bool:
    """True if ``record`` has a dedupe key and its own ``unique_for`` or ``unique_states``
    (checked by a query in the enqueue's transaction; the others by the dedupe index)."""
    return record.dedupe_key is not None and (
        record.unique_for is not None or record.unique_states is not None
    )


def unique_scope(record: TaskRecord, now: float) -> tuple[list[str], float | None]:
    """The stored statuses (as text, sorted) and the earliest ``created_at`` of the tasks
    that make ``record`` a duplicate (None: created at any time): `sitq.unique.is_duplicate`
    as a query's parameters."""
    states = DEFAULT_UNIQUE_STATES if record.unique_states is None else record.unique_states
    since = None if record.unique_for is None else now - record.unique_for
    return sorted(s.value for s in states), since


def batch_duplicate(record: TaskRecord, earlier: Sequence[TaskRecord], now: float) -> str | None:
    """The id of the latest of ``earlier`` (records stored before ``record`` in the same
    batch, with its dedupe key) that ``record`` duplicates: they are stored pending, created
    at their ``created_at``; None if none counts."""
    found = [
        e.id
        for e in earlier
        if is_duplicate(
            TaskStatus.PENDING, e.created_at, record.unique_states, record.unique_for, now
        )
    ]
    return found[-1] if found else None


__all__ = [
    "Admission",
    "Candidate",
    "KeyRecord",
    "Rules",
    "admit",
    "batch_duplicate",
    "chooses_uniqueness",
    "exhausted_keys",
    "fresh_record",
    "states_of",
    "unique_scope",
]
