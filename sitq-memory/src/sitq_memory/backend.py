"""`MemoryBackend`: tasks in a dictionary, for one process.

Pending tasks sit in one ready heap per queue (ordered by priority, then due time, then enqueue
order, which a task keeps when it is put back) and one heap of not-yet-due tasks ordered by due
time; a claim first moves what has become due. Heap entries are invalidated lazily: an entry
counts only while its task is still pending with the same sequence number.
"""

from __future__ import annotations

import copy
import dataclasses
import heapq
import itertools
import operator
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import fields
from urllib.parse import urlsplit

from sitq import TaskStatus
from sitq.backend import Backend, Capability, Outcome, TaskRecord
from sitq.flow_claim import Candidate
from sitq.flow_control import LimitRule, LimitState
from sitq.meta import decode_meta, encode_meta
from sitq.progress import Progress
from sitq.retention import check_prune_args
from sitq.rules import (
    LOST_WORKER_ERROR,
    attempts_spent,
    check_list_args,
    fold_counts,
    fold_queue_counts,
    purge_statuses,
    repeated_id_error,
    taken_id_error,
)
from sitq.schedule_state import ScheduleState
from sitq.task import FINAL_STATUSES, new_task_id
from sitq.unique import is_duplicate
from sitq.workflow_state import WorkflowSummary

from .limits import FlowTable
from .schedules import ScheduleTable
from .workflows import Moved, WorkflowGraph

_FIELDS = operator.attrgetter(*(f.name for f in fields(TaskRecord)))


_head = operator.itemgetter(0)

#: What `MemoryBackend.cancel` cancels.
_CANCELLABLE = frozenset({TaskStatus.WAITING, TaskStatus.PENDING, TaskStatus.RUNNING})


def _copy(record: TaskRecord) -> TaskRecord:
    """A copy of ``record`` (every field; ``dataclasses.replace`` costs about 8 times more),
    its headers copied too: no caller shares a mutable mapping with the store."""
    found = TaskRecord(*_FIELDS(record))
    if found.meta:
        found.meta = copy.deepcopy(found.meta)
    return found


class _Store:
    """The shared state of one memory store."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tasks: dict[str, TaskRecord] = {}
        self.seq: dict[str, int] = {}
        self.order: dict[str, int] = {}  # enqueue order, the last tie-breaker of claims
        self.ready: dict[str, list[_Entry]] = {}
        self.scheduled: list[tuple[float, int, str]] = []
        self.by_dedupe_key: dict[str, list[str]] = {}  # every stored task's id, by its key
        self.counter = itertools.count()
        self.schedules = ScheduleTable()
        self.flow = FlowTable()
        self.graph = WorkflowGraph()


#: A ready-heap entry: (-priority, available_at, enqueue order, sequence number, task id).
_Entry = tuple[int, float, int, int, str]
#: A due entry and the heap it was popped from (pushed back there if not claimed).
_Due = tuple[list[_Entry], _Entry]

#: How many claimable tasks a claim under limits weighs for fairness at once (see `claim`).
FAIR_WINDOW = 256

_named_stores: weakref.WeakValueDictionary[str, _Store] = weakref.WeakValueDictionary()
_named_lock = threading.Lock()


class MemoryBackend(Backend):
    """Tasks in memory, shared by everything in this process that holds the backend.

    :param name: backends created with the same name share one store (as long as one of them
        is alive); without a name the store is private to this object.
    """

    url_schemes = ("memory",)
    capabilities = frozenset(
        {
            Capability.EXPIRE_RESULTS,
            Capability.HEARTBEAT_BACKEND,
            Capability.PROGRESS,
            Capability.PRUNE,
            Capability.BLOCKING_ENQUEUE,
            Capability.SCHEDULES,
            Capability.FLOW_CONTROL,
            Capability.WORKFLOWS,
        }
    )

    def __init__(self, name: str | None = None) -> None:
        self.name = name
        if name is None:
            self._store = _Store()
        else:
            with _named_lock:
                store = _named_stores.get(name)
                if store is None:
                    store = _named_stores[name] = _Store()
                self._store = store

    @classmethod
    def from_url(cls, url: str) -> MemoryBackend:
        """``memory://`` (a private store) or ``memory://name`` (a store shared by name)."""
        parts = urlsplit(url)
        name = (parts.netloc + parts.path).strip("/") or None
        return cls(name)

    @property
    def notify_key(self) -> str:
        """Backends sharing a store share wake-ups."""
        return f"memory:{id(self._store)}"

    def __repr__(self) -> str:
        return f"MemoryBackend({self.name!r})" if self.name else "MemoryBackend()"

    def heartbeat_backend(self) -> MemoryBackend:
        """This object: its calls hold a thread lock only briefly, never across an await, so
        a heartbeat thread may use it beside the worker's loop."""
        return self

    # -- helpers (call with the lock held) ---------------------------------------------------

    def _push(self, record: TaskRecord) -> None:
        s = self._store
        seq = next(s.counter)
        s.seq[record.id] = seq
        if record.available_at <= self.clock():
            heap = s.ready.setdefault(record.queue, [])
            entry = (-record.priority, record.available_at, s.order[record.id], seq, record.id)
            heapq.heappush(heap, entry)
        else:
            heapq.heappush(s.scheduled, (record.available_at, seq, record.id))

    def _valid(self, seq: int, task_id: str) -> bool:
        record = self._store.tasks.get(task_id)
        return (
            record is not None
            and record.status is TaskStatus.PENDING
            and self._store.seq.get(task_id) == seq
        )

    def _promote_due(self, now: float) -> None:
        s = self._store
        while s.scheduled and s.scheduled[0][0] <= now:
            _, seq, task_id = heapq.heappop(s.scheduled)
            if self._valid(seq, task_id):
                r = s.tasks[task_id]
                entry = (-r.priority, r.available_at, s.order[task_id], seq, task_id)
                heapq.heappush(s.ready.setdefault(r.queue, []), entry)

    def _take(
        self, record: TaskRecord, worker_id: str, lease_seconds: float, now: float, token: str
    ) -> None:
        record.status = TaskStatus.RUNNING
        record.attempts += 1
        record.worker_id = worker_id
        record.started_at = now
        record.lease_token = token
        record.lease_expires_at = now + lease_seconds
        self._store.seq.pop(record.id, None)

    def _duplicate_of(self, record: TaskRecord, now: float) -> str | None:
        """The newest stored task that refuses ``record`` as its duplicate (`sitq.unique`)."""
        if record.dedupe_key is None:
            return None
        for task_id in reversed(self._store.by_dedupe_key.get(record.dedupe_key, ())):
            found = self._store.tasks[task_id]
            if found is not record and is_duplicate(
                found.status, found.created_at, record.unique_states, record.unique_for, now
            ):
                return task_id
        return None

    def _ended(self, records: Iterable[TaskRecord], now: float) -> bool:
        """Release or cancel the children of ``records``, which just ended (`sitq.workflow_state`);
        True if a child became pending."""
        moved = Moved()
        for record in records:
            self._store.graph.ended(record, self._store.tasks, now, moved)
        for child in moved.released:
            self._push(child)
        return bool(moved.released)

    # -- contract ----------------------------------------------------------------------------

    async def enqueue_many(self, records: Sequence[TaskRecord]) -> list[str]:
        """Store records as pending; dedupe keys map to the existing active task."""
        return self.enqueue_many_blocking(records)

    def enqueue_many_blocking(self, records: Sequence[TaskRecord]) -> list[str]:
        """`enqueue_many` in the calling thread: the store is in-process, under its lock."""
        with self._store.lock:
            ids = self._insert(records)
        self.notify_enqueued()
        return ids

    def _insert(self, records: Sequence[TaskRecord]) -> list[str]:
        """`enqueue_many` under the lock (also storing a schedule's fire)."""
        ids = []
        now = self.clock()
        seen: set[str] = set()
        for record in records:  # check everything first: a batch is stored whole or not at all
            if record.id in seen:
                raise repeated_id_error(record.id)
            if record.id in self._store.tasks:
                raise taken_id_error(record.id)
            seen.add(record.id)
        self._store.graph.check(records, self._store.tasks)
        now = self.clock()
        stored_as: dict[str, str] = {}  # a record refused by its dedupe key -> the task holding it
        for record in records:
            duplicate = self._duplicate_of(record, now)
            if duplicate is not None:
                ids.append(duplicate)
                stored_as[record.id] = duplicate
                continue
            stored = _copy(record)
            stored.status, stored.attempts = TaskStatus.PENDING, 0
            stored.started_at = stored.finished_at = stored.lease_expires_at = None
            stored.worker_id = stored.lease_token = stored.error = stored.traceback = None
            stored.result = stored.progress = None
            stored.meta = decode_meta(encode_meta(record.meta))  # as a database stores it
            self._store.tasks[stored.id] = stored
            self._store.order[stored.id] = next(self._store.counter)
            if stored.dedupe_key is not None:
                self._store.by_dedupe_key.setdefault(stored.dedupe_key, []).append(stored.id)
            if stored.parents:
                stored.parents = tuple(stored_as.get(p, p) for p in stored.parents)
            self._store.graph.add(stored, self._store.tasks, now)
            if stored.status is TaskStatus.PENDING:
                self._push(stored)
            ids.append(stored.id)
        return ids

    # -- periodic schedules --------------------------------------------------------------------

    async def add_schedules(self, definitions: Mapping[str, str]) -> None:
        """Create the missing schedule states, decided up to now; store the definitions."""
        with self._store.lock:
            self._store.schedules.add(definitions, self.clock())

    async def enqueue_fire(self, schedule: str, fire_time: float, record: TaskRecord) -> str | None:
        """Store ``record`` for this fire unless paused, stale or stored (one lock hold)."""
        with self._store.lock:
            table = self._store.schedules
            if not table.claim_fire(schedule, fire_time):
                return None
            (task_id,) = self._insert([record])
            table.record_fire(schedule, fire_time, task_id)
        self.notify_enqueued()
        return task_id

    async def skip_fires(self, schedule: str, until: float) -> None:
        """Fires of ``schedule`` up to ``until`` are decided."""
        with self._store.lock:
            self._store.schedules.skip(schedule, until)

    async def schedule_states(self) -> list[ScheduleState]:
        """Every stored schedule state, by name."""
        with self._store.lock:
            return sorted(self._store.schedules.states.values(), key=lambda s: s.name)

    async def pause_schedule(self, schedule: str, paused: bool) -> bool:
        """Pause or resume ``schedule``; False if it has no state."""
        with self._store.lock:
            return self._store.schedules.pause(schedule, paused, self.clock())

    # -- flow control ------------------------------------------------------------------------

    async def set_limits(self, rules: Sequence[LimitRule]) -> None:
        """Store each rule, replacing the one of its pattern."""
        with self._store.lock:
            self._store.flow.set_rules(rules)

    async def delete_limits(self, patterns: Sequence[str]) -> int:
        """Remove the rules of ``patterns``; how many there were."""
        with self._store.lock:
            return self._store.flow.delete_rules(patterns)

    async def limits(self) -> list[LimitRule]:
        """Every stored rule, by pattern."""
        with self._store.lock:
            return sorted(self._store.flow.rules.values(), key=lambda r: r.pattern)

    async def limit_states(self) -> list[LimitState]:
        """Each key seen under a rule with its tokens, running and waiting tasks, by key."""
        with self._store.lock:
            return self._store.flow.states(self._store.tasks, self.clock())

    async def pause_queue(self, queue: str, paused: bool) -> None:
        """Pause or resume ``queue`` for every claim on this store."""
        with self._store.lock:
            if paused:
                self._store.flow.paused.add(queue)
            else:
                self._store.flow.paused.discard(queue)
        if not paused:
            self.notify_enqueued()

    async def paused_queues(self) -> set[str]:
        """The queues paused now."""
        with self._store.lock:
            return set(self._store.flow.paused)

    async def claim(
        self,
        *,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        queues: Sequence[str] | None = None,
        exclude: Iterable[str] = (),
    ) -> list[TaskRecord]:
        """Claim up to ``limit`` due tasks, best first (under limits: see `_claim_limited`)."""
        excluded = set(exclude)
        claimed: list[TaskRecord] = []
        with self._store.lock:
            now = self.clock()
            self._promote_due(now)
            flow = self._store.flow
            heaps = [
                h
                for name, h in self._store.ready.items()
                if h and (queues is None or name in queues) and name not in flow.paused
            ]
            skipped: list[_Due] = []
            token = new_task_id()  # one lease token per claim, as the SQLite backend does
            due = self._due_entries(heaps, now)
            if flow.rules:
                self._claim_limited(
                    due, limit, now, excluded, skipped, claimed, worker_id, lease_seconds, token
                )
            else:
                while len(claimed) < limit and (item := next(due, None)) is not None:
                    if item[1][-1] in excluded:
                        skipped.append(item)
                        continue
                    record = self._store.tasks[item[1][-1]]
                    self._take(record, worker_id, lease_seconds, now, token)
                    if record.limits:  # counted, should a rule come later
                        flow.hold(record.id, record.limits)
                    claimed.append(_copy(record))
            for heap, entry in skipped:
                heapq.heappush(heap, entry)
        return claimed

    def _due_entries(self, heaps: list[list[_Entry]], now: float) -> Iterator[_Due]:
        """Pop the valid due entries of ``heaps``, best first (the lock held); whoever stops
        early leaves the rest in place."""
        while True:
            if len(heaps) != 1:
                heaps = [h for h in heaps if h]
                if not heaps:
                    return
                heap = min(heaps, key=_head)
            else:
                heap = heaps[0]
                if not heap:
                    return
            entry = heapq.heappop(heap)
            _, available_at, _, seq, task_id = entry
            if not self._valid(seq, task_id):
                continue
            if available_at > now:  # the clock went back since it became due
                heapq.heappush(self._store.scheduled, (available_at, seq, task_id))
                continue
            yield heap, entry

    def _claim_limited(
        self,
        due: Iterator[_Due],
        limit: int,
        now: float,
        excluded: set[str],
        skipped: list[_Due],
        claimed: list[TaskRecord],
        worker_id: str,
        lease_seconds: float,
        token: str,
    ) -> None:
        """The claim while rules are stored: `sitq.flow_claim.admit` picks from windows of
        `FAIR_WINDOW` due tasks; the tasks of keys it found exhausted are set aside unread
        (no head-of-line blocking), and the next window is read while the claim wants more."""
        flow, tasks = self._store.flow, self._store.tasks
        exhausted: set[str] = set()
        while len(claimed) < limit:
            window: list[Candidate[_Due]] = []
            while len(window) < FAIR_WINDOW and (item := next(due, None)) is not None:
                record = tasks[item[1][-1]]
                if record.id in excluded or exhausted.intersection(record.limits):
                    skipped.append(item)
                else:
                    window.append(Candidate(item, record.priority, record.limits))
            if not window:
                break
            admission = flow.admit(window, tasks, now, limit - len(claimed))
            exhausted |= admission.exhausted
            taken = {id(c) for c in admission.taken}
            for candidate in admission.taken:
                record = tasks[candidate.ref[1][-1]]
                self._take(record, worker_id, lease_seconds, now, token)
                flow.hold(record.id, record.limits)
                claimed.append(_copy(record))
            skipped.extend(c.ref for c in window if id(c) not in taken)

    async def claim_by_id(
        self, task_id: str, *, worker_id: str, lease_seconds: float
    ) -> TaskRecord | None:
        """Claim one pending task by id, due or not."""
        with self._store.lock:
            record = self._store.tasks.get(task_id)
            if record is None or record.status is not TaskStatus.PENDING:
                return None
            self._take(record, worker_id, lease_seconds, self.clock(), new_task_id())
            self._store.flow.hold(record.id, record.limits)
            return _copy(record)

    async def extend_leases(self, leases: Mapping[str, str], lease_seconds: float) -> set[str]:
        """Extend the leases still held."""
        held = set()
        with self._store.lock:
            expires = self.clock() + lease_seconds
            for task_id, token in leases.items():
                record = self._store.tasks.get(task_id)
                if (
                    record is not None
                    and record.status is TaskStatus.RUNNING
                    and record.lease_token == token
                ):
                    record.lease_expires_at = expires
                    held.add(task_id)
        return held

    async def set_progress(self, updates: Mapping[str, tuple[str, Progress]]) -> set[str]:
        """Store the progress of tasks still running under the given leases."""
        stored = set()
        with self._store.lock:
            for task_id, (token, progress) in updates.items():
                record = self._store.tasks.get(task_id)
                if (
                    record is not None
                    and record.status is TaskStatus.RUNNING
                    and record.lease_token == token
                ):
                    record.progress = progress
                    stored.add(task_id)
        return stored

    async def finish(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Apply fenced outcomes."""
        applied = []
        requeued = freed_slot = False
        with self._store.lock:
            now = self.clock()
            for o in outcomes:
                record = self._store.tasks.get(o.task_id)
                if (
                    record is None
                    or record.status is not TaskStatus.RUNNING
                    or record.lease_token != o.lease_token
                ):
                    applied.append(False)
                    continue
                record.lease_token = None
                record.lease_expires_at = None
                record.status = o.status
                freed_slot = freed_slot or bool(record.limits)
                if o.status is TaskStatus.PENDING:
                    record.available_at = now if o.available_at is None else o.available_at
                    if not o.count_attempt:
                        record.attempts = max(0, record.attempts - 1)
                    else:
                        record.error, record.traceback = o.error, o.traceback
                    self._push(record)
                    requeued = True
                else:
                    record.result, record.error, record.traceback = o.result, o.error, o.traceback
                    record.finished_at = o.finished_at
                    requeued = self._ended([record], now) or requeued
                applied.append(True)
            freed_slot = freed_slot and bool(self._store.flow.rules)
        self.notify_finished()
        if requeued or freed_slot:  # a freed slot may admit a waiting task: work again
            self.notify_enqueued()
        return applied

    async def recover_expired(self, *, max_attempts: int) -> list[str]:
        """Requeue (or kill) running tasks whose lease lapsed."""
        recovered = []
        died = released = False
        with self._store.lock:
            now = self.clock()
            for record in self._store.tasks.values():
                if (
                    record.status is not TaskStatus.RUNNING
                    or record.lease_expires_at is None
                    or record.lease_expires_at >= now
                ):
                    continue
                record.lease_token = record.lease_expires_at = None
                if attempts_spent(record.attempts, max_attempts, record.max_retries):
                    record.status = TaskStatus.DEAD
                    record.error = LOST_WORKER_ERROR
                    record.finished_at = now
                    died = True
                    released = self._ended([record], now) or released
                else:
                    record.status = TaskStatus.PENDING
                    record.available_at = now
                    self._push(record)
                    recovered.append(record.id)
        if recovered or released:
            self.notify_enqueued()
        if died:
            self.notify_finished()
        return recovered

    async def cancel(self, task_id: str) -> bool:
        """Cancel a waiting, pending or running task (a running one loses its lease)."""
        with self._store.lock:
            record = self._store.tasks.get(task_id)
            if record is None or record.status not in _CANCELLABLE:
                return False
            freed_slot = record.status is TaskStatus.RUNNING and bool(record.limits)
            released = self._cancel(record, self.clock())
        self.notify_finished()
        if released or freed_slot:
            self.notify_enqueued()
        return True

    def _cancel(self, record: TaskRecord, now: float) -> bool:
        """Cancel ``record`` and settle its children (lock held); True if one was released."""
        record.status = TaskStatus.CANCELLED
        record.finished_at = now
        record.lease_token = record.lease_expires_at = None
        return self._ended([record], now)

    # -- workflows -----------------------------------------------------------------------------

    async def workflow_tasks(self, workflow_id: str) -> list[TaskRecord]:
        """Copies of the members of ``workflow_id``, in enqueue order."""
        with self._store.lock:
            tasks = self._store.tasks
            return [_copy(tasks[i]) for i in self._store.graph.member_ids(workflow_id)]

    async def cancel_workflow(self, workflow_id: str) -> int:
        """Cancel every waiting, pending and running member of ``workflow_id``."""
        released = False
        with self._store.lock:
            now = self.clock()
            members = [self._store.tasks[i] for i in self._store.graph.member_ids(workflow_id)]
            active = [r for r in members if r.status in _CANCELLABLE]
            for record in active:  # all as by hand: none is cancelled "for" another member
                record.status = TaskStatus.CANCELLED
                record.finished_at = now
                record.lease_token = record.lease_expires_at = None
            released = self._ended(active, now)  # children outside the workflow
            count = len(active)
        if count:
            self.notify_finished()
        if released:  # a child outside the workflow, with allow_failure
            self.notify_enqueued()
        return count

    async def workflows(
        self, *, limit: int = 100, active_only: bool = False
    ) -> list[WorkflowSummary]:
        """The newest ``limit`` workflows, newest first."""
        with self._store.lock:
            return self._store.graph.summaries(self._store.tasks, limit, active_only)

    async def requeue(self, task_id: str) -> bool:
        """Put a failed, dead or cancelled task back to pending."""
        with self._store.lock:
            record = self._store.tasks.get(task_id)
            if (
                record is None
                or record.status not in (TaskStatus.FAILED, TaskStatus.DEAD, TaskStatus.CANCELLED)
                or record.expired
            ):
                return False
            active = dataclasses.replace(record, unique_states=None, unique_for=None)
            if self._duplicate_of(active, self.clock()) is not None:
                return False
            record.status = TaskStatus.PENDING
            record.attempts = 0
            record.available_at = self.clock()
            record.result = record.error = record.traceback = None
            record.started_at = record.finished_at = record.worker_id = None
            self._push(record)
            self._store.graph.requeued(record, self._store.tasks)
        self.notify_enqueued()
        return True

    async def expire_results(self, finished_before: float) -> int:
        """Make tombstones of tasks finished before ``finished_before``."""
        count = 0
        with self._store.lock:
            for r in self._store.tasks.values():
                if (
                    r.status in FINAL_STATUSES
                    and r.payload
                    and r.finished_at is not None
                    and r.finished_at < finished_before
                ):
                    r.payload, r.result, r.traceback = b"", None, None
                    count += 1
        return count

    async def get_task(self, task_id: str) -> TaskRecord | None:
        """A copy of the stored record."""
        with self._store.lock:
            record = self._store.tasks.get(task_id)
            return None if record is None else _copy(record)

    async def get_results(self, task_ids: Sequence[str]) -> list[TaskRecord | None]:
        """Copies of the finished records of ``task_ids`` (None for the others), one lock
        hold."""
        with self._store.lock:
            found = (self._store.tasks.get(i) for i in task_ids)
            return [None if r is None or not r.status.is_final else _copy(r) for r in found]

    async def counts(self, queue: str | None = None) -> dict[TaskStatus, int]:
        """Tasks per status."""
        with self._store.lock:
            return fold_counts(
                (r.status, 1)
                for r in self._store.tasks.values()
                if queue is None or r.queue == queue
            )

    async def list_tasks(
        self,
        *,
        statuses: Iterable[TaskStatus] | None = None,
        queue: str | None = None,
        limit: int | None = 100,
        order: str = "oldest",
    ) -> list[TaskRecord]:
        """Copies of records by enqueue time (see `Backend.list_tasks`)."""
        wanted = check_list_args(statuses, limit, order)
        with self._store.lock:
            found = [
                (r.created_at, i, r)
                for i, r in enumerate(self._store.tasks.values())
                if (wanted is None or r.status in wanted) and (queue is None or r.queue == queue)
            ]
            found.sort(key=lambda item: item[:2], reverse=order == "newest")
            return [_copy(r) for _, _, r in found[:limit]]

    async def queue_counts(self) -> dict[str, dict[TaskStatus, int]]:
        """Tasks per status, per queue."""
        with self._store.lock:
            return fold_queue_counts((r.queue, r.status, 1) for r in self._store.tasks.values())

    async def purge(
        self, statuses: Iterable[TaskStatus] | None = None, older_than: float | None = None
    ) -> int:
        """Delete tasks in ``statuses`` (default: final ones) finished before ``older_than``."""
        wanted = purge_statuses(statuses)
        with self._store.lock:
            doomed = [
                r
                for r in self._store.tasks.values()
                if r.status in wanted
                and (
                    older_than is None
                    or (r.finished_at if r.finished_at is not None else r.created_at) < older_than
                )
            ]
            self._delete(doomed)
        return len(doomed)

    async def delete_tasks(self, task_ids: Sequence[str]) -> int:
        """Delete the finished tasks among ``task_ids`` (see `Backend.delete_tasks`)."""
        with self._store.lock:
            found = (self._store.tasks.get(task_id) for task_id in dict.fromkeys(task_ids))
            doomed = [r for r in found if r is not None and r.status.is_final]
            self._delete(doomed)
        return len(doomed)

    async def prune(self, finished_before: Mapping[TaskStatus, float] | float, limit: int) -> int:
        """Delete up to ``limit`` tasks finished before their status's cutoff."""
        cutoffs = check_prune_args(finished_before, limit)
        with self._store.lock:
            expired = (
                r
                for r in self._store.tasks.values()
                if r.status in cutoffs
                and r.finished_at is not None
                and r.finished_at < cutoffs[r.status]
            )
            doomed = list(itertools.islice(expired, limit))
            self._delete(doomed)
        return len(doomed)

    def _delete(self, records: Iterable[TaskRecord]) -> None:
        """Forget ``records`` (the store's lock held)."""
        for r in records:
            if r.dedupe_key is not None:
                same_key = self._store.by_dedupe_key[r.dedupe_key]
                same_key.remove(r.id)
                if not same_key:
                    del self._store.by_dedupe_key[r.dedupe_key]
            self._store.graph.forget(r)
            del self._store.tasks[r.id]
            self._store.seq.pop(r.id, None)
            self._store.order.pop(r.id, None)
