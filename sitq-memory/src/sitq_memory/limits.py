"""The flow-control state of one memory store: rules, each key's stored record (bucket and
last serve, `sitq.flow_claim.KeyRecord`), the running tasks holding each key, paused queues.
The decisions are `sitq.flow_claim`'s, as in every backend."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

from sitq.flow_claim import Admission, Candidate, KeyRecord, Rules, admit, states_of
from sitq.flow_control import LimitRule, LimitState
from sitq.records import TaskRecord
from sitq.task import TaskStatus

T = TypeVar("T")


class FlowTable:
    """Limits and pauses of one store. Not thread-safe: the caller holds the store's lock.

    A key's running count is the set of task ids that took it, pruned of those no longer
    running when read: whatever ends a run (finish, cancel, recovery, deletion) frees the
    slot without telling this table.
    """

    def __init__(self) -> None:
        self.rules: dict[str, LimitRule] = {}
        self.paused: set[str] = set()
        self.records: dict[str, KeyRecord] = {}
        self.holders: dict[str, set[str]] = {}  # key -> ids of tasks that took it
        self._rules = Rules(())

    def set_rules(self, rules: Iterable[LimitRule]) -> None:
        """Store each rule, replacing the one of its pattern."""
        self.rules.update((rule.pattern, rule) for rule in rules)
        self._rules = Rules(list(self.rules.values()))

    def delete_rules(self, patterns: Iterable[str]) -> int:
        """Remove the rules of ``patterns``; how many there were."""
        count = sum(self.rules.pop(p, None) is not None for p in set(patterns))
        self._rules = Rules(list(self.rules.values()))
        return count

    def admit(
        self,
        candidates: Sequence[Candidate[T]],
        tasks: Mapping[str, TaskRecord],
        now: float,
        limit: int,
    ) -> Admission[T]:
        """`sitq.flow_claim.admit` over this store's state; the key records it changes are
        stored (the caller takes the tasks it chose)."""
        keys = {key for c in candidates for key in self._rules.ruled(c.keys)}
        running = {key: self.running(key, tasks) for key in keys}
        admission = admit(candidates, self._rules, self.records, running, now, limit)
        self.records.update(admission.records)
        return admission

    def hold(self, task_id: str, keys: Iterable[str]) -> None:
        """``task_id`` runs holding ``keys`` (a slot of each, whatever the limits)."""
        for key in keys:
            self.holders.setdefault(key, set()).add(task_id)

    def running(self, key: str, tasks: Mapping[str, TaskRecord]) -> int:
        """How many running tasks hold ``key`` now."""
        holders = self.holders.get(key)
        if not holders:
            return 0
        holders.difference_update(
            [i for i in holders if (r := tasks.get(i)) is None or r.status is not _RUNNING]
        )
        return len(holders)

    def states(self, tasks: Mapping[str, TaskRecord], now: float) -> list[LimitState]:
        """`Backend.limit_states` (`sitq.flow_claim.states_of`)."""
        waiting: dict[str, int] = {}
        for record in tasks.values():
            if record.status is TaskStatus.PENDING:
                for key in record.limits:
                    waiting[key] = waiting.get(key, 0) + 1
        running = {key: self.running(key, tasks) for key in list(self.holders)}
        running = {key: n for key, n in running.items() if n}
        return states_of(self._rules, self.records, running, waiting, now)


_RUNNING = TaskStatus.RUNNING
