"""The flow-control state of one memory store: rules, token buckets, running tasks per key,
when each key was last served, paused queues (`sitq.flow_control`'s rules, applied under the
store's lock)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence

from sitq.flow_control import LimitRule, LimitState, refill, rule_for
from sitq.records import TaskRecord
from sitq.task import TaskStatus


class FlowTable:
    """Limits and pauses of one store. Not thread-safe: the caller holds the store's lock.

    A key's running count is the set of task ids that took it, pruned of those no longer
    running when read: whatever ends a run (finish, cancel, recovery, deletion) frees the
    slot without telling this table.
    """

    def __init__(self) -> None:
        self.rules: dict[str, LimitRule] = {}
        self.paused: set[str] = set()
        self.buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, refilled_at)
        self.holders: dict[str, set[str]] = {}  # key -> ids of tasks that took it
        self.served: dict[str, int] = {}  # key -> when last served, in serve order
        self._serves = itertools.count()

    @property
    def active(self) -> bool:
        """True if a claim must look at limits or pauses at all."""
        return bool(self.rules or self.paused)

    def set_rules(self, rules: Iterable[LimitRule]) -> None:
        """Store each rule, replacing the one of its pattern."""
        self.rules.update((rule.pattern, rule) for rule in rules)

    def delete_rules(self, patterns: Iterable[str]) -> int:
        """Remove the rules of ``patterns``; how many there were."""
        return sum(self.rules.pop(p, None) is not None for p in set(patterns))

    def governed(self, keys: Iterable[str]) -> list[tuple[str, LimitRule]]:
        """The keys among ``keys`` that a rule governs, with their rules."""
        found = []
        for key in keys:
            rule = rule_for(self.rules.values(), key)
            if rule is not None:
                found.append((key, rule))
        return found

    def admits(self, keys: Sequence[str], tasks: Mapping[str, TaskRecord], now: float) -> bool:
        """True if every governed key has a free slot and a token at ``now``."""
        for key, rule in self.governed(keys):
            if rule.concurrency is not None and self.running(key, tasks) >= rule.concurrency:
                return False
            if rule.rate is not None and self.tokens(key, rule, now) < 1.0:
                return False
        return True

    def take(self, task_id: str, keys: Sequence[str], now: float) -> None:
        """A claim took ``task_id``: one token of each rated key, a slot of each key."""
        stamp = next(self._serves)
        for key, rule in self.governed(keys):
            if rule.rate is not None:
                self.buckets[key] = (self.tokens(key, rule, now) - 1.0, now)
            self.served[key] = stamp
        self.hold(task_id, keys)

    def hold(self, task_id: str, keys: Iterable[str]) -> None:
        """``task_id`` runs holding ``keys`` (a slot of each, whatever the limits)."""
        for key in keys:
            self.holders.setdefault(key, set()).add(task_id)

    def last_served(self, keys: Sequence[str]) -> int:
        """The fairness rank of a task holding ``keys``: when its least recently served
        governed key was last served (-1: never, or no governed key)."""
        return min((self.served.get(key, -1) for key, _ in self.governed(keys)), default=-1)

    def running(self, key: str, tasks: Mapping[str, TaskRecord]) -> int:
        """How many running tasks hold ``key`` now."""
        holders = self.holders.get(key)
        if not holders:
            return 0
        ended = {i for i in holders if (r := tasks.get(i)) is None or r.status is not _RUNNING}
        holders -= ended
        return len(holders)

    def tokens(self, key: str, rule: LimitRule, now: float) -> float:
        """The tokens in ``key``'s bucket at ``now`` (a new bucket is full)."""
        tokens, refilled_at = self.buckets.get(key, (rule.bucket_size, now))
        return refill(tokens, refilled_at, now, rule)

    def states(self, tasks: Mapping[str, TaskRecord], now: float) -> list[LimitState]:
        """`Backend.limit_states`: keys seen under a rule (and exact rules, and families with
        no key yet), by key."""
        waiting: dict[str, int] = {}
        for record in tasks.values():
            if record.status is TaskStatus.PENDING:
                for key in record.limits:
                    waiting[key] = waiting.get(key, 0) + 1
        seen = {*waiting, *self.holders, *self.buckets, *self.served}
        rows = {}
        for key, rule in self.governed(seen):
            tokens = None if rule.rate is None else self.tokens(key, rule, now)
            rows[key] = LimitState(key, rule, tokens, self.running(key, tasks), waiting.get(key, 0))
        for rule in self.rules.values():
            if not any(rule_for(self.rules.values(), key) == rule for key in rows):
                empty = None if rule.rate is None else rule.bucket_size
                rows[rule.pattern] = LimitState(rule.pattern, rule, empty, 0, 0)
        return [rows[key] for key in sorted(rows)]


_RUNNING = TaskStatus.RUNNING
