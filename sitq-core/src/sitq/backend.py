"""The storage contract every backend implements: `Backend` and its optional `Capability`.

`TaskRecord` and `Outcome`, the data the contract exchanges, live in `sitq.records` and are
imported from here.

A backend stores encoded tasks and their outcomes; it never decodes a payload or runs a task.
All methods are coroutines. A backend passes the conformance kit in `sitq.conformance` unchanged.

The life of a stored task:

```text
enqueue ─► pending ──claim──► running ──finish──► succeeded | failed | dead
              ▲ ▲                │  └──finish(retry/release)──┐
              │ └──────────────── recover_expired (lease lapsed)
              │                                               │
              └───────────────────────────────────────────────┘
pending | running ──cancel──► cancelled        failed | dead | cancelled ──requeue──► pending
succeeded | failed | dead | cancelled ──expire_results──► the same, as a tombstone
succeeded | failed | dead | cancelled ──prune (finished long enough ago)──► deleted
```

Every write after a claim is *fenced* by the claim's lease token: a worker that lost its lease
(because it stalled and another worker recovered the task, or the task was cancelled) can no
longer change the task.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

from .errors import ConfigurationError
from .flow_control import LimitRule, LimitState
from .progress import Progress
from .records import Outcome, TaskRecord, record_from_row
from .rules import (
    ALL_STATUSES,
    LIST_ORDERS,
    check_list_args,
    fold_queue_counts,
)
from .schedule_state import ScheduleState
from .search import TaskSearch, newest_page
from .signals import Signal, channel, notify
from .task import TaskStatus
from .throughput import THROUGHPUT_STATUSES, bucket_index, check_throughput_args, fold_throughput
from .urls import redact_url
from .workflow_state import WorkflowSummary


class Capability(enum.Enum):
    """An optional part of the contract; a backend lists those it has in
    `Backend.capabilities`, and callers ask `Backend.supports` instead of probing."""

    EXPIRE_RESULTS = "expire_results"
    """`Backend.expire_results` turns old finished tasks into tombstones (``result_ttl``)."""

    HEARTBEAT_BACKEND = "heartbeat_backend"
    """`Backend.heartbeat_backend` returns a backend a worker's heartbeat thread may use."""

    ENQUEUE_IN = "enqueue_in"
    """`Backend.enqueue_in` stores tasks inside the caller's own database transaction."""

    CROSS_PROCESS_WAKEUPS = "cross_process_wakeups"
    """`Backend.wait_for_work` and `wait_for_finish` also wake on commits made by other processes
    (otherwise only this process's enqueues and finishes wake them, and other processes' work is
    found by polling)."""

    PROGRESS = "progress"
    """`Backend.set_progress` stores what running tasks report (``set_progress``)."""

    PRUNE = "prune"
    """`Backend.prune` deletes old finished tasks in small batches (``retention``)."""

    BLOCKING_ENQUEUE = "blocking_enqueue"
    """`Backend.enqueue_many_blocking` stores tasks from plain code in the calling thread, with
    no event loop in between (`SyncTaskQueue` then enqueues without a thread hop)."""

    SCHEDULES = "schedules"
    """`Backend.enqueue_fire` and the other schedule methods store periodic schedules' fires
    exactly once (``@queue.periodic``, `sitq.schedules`)."""

    FLOW_CONTROL = "flow_control"
    """`Backend.claim` honours limits (`TaskRecord.limits`, `Backend.set_limits`) and paused
    queues (`Backend.pause_queue`), and `enqueue_many` honours ``unique_for`` and
    ``unique_states`` (`sitq.flow_control`)."""

    WORKFLOWS = "workflows"
    """`Backend.enqueue_many` stores tasks with ``parents`` waiting, and the transaction that
    ends a parent releases or cancels its children (`sitq.workflow_state`)."""


class Backend(ABC):
    """The async storage contract of sitq.

    Implement the abstract methods; the rest has working defaults. Register the class through
    the ``sitq_backends`` hook so ``TaskQueue("yourscheme://...")`` finds it, and run
    `sitq.conformance.BackendConformance` against it.

    Concurrency: one backend object may be used by several coroutines at once, on one event
    loop or several (the synchronous facade runs its own loop in a thread); implementations
    must be safe for that. Claims must be atomic across processes for shared stores (the
    kit's `CrossProcessClaimTests` checks it).
    """

    url_schemes: ClassVar[tuple[str, ...]] = ()
    """The URL schemes this class opens, e.g. ``("sqlite",)``; error messages name them.

    The scheme a plugin registers (``BackendType("scratch", ...)`` in its ``sitq_backends``
    hook) is what routes ``TaskQueue("scratch://...")`` here: list the same ones.
    """

    capabilities: frozenset[Capability] = frozenset()
    """The optional parts of the contract this backend has (see `Capability`).

    Declared, never guessed: a backend that implements `expire_results`, `heartbeat_backend`,
    `enqueue_in`, `enqueue_many_blocking`, `set_progress` or `prune` lists it here, and may set
    it per instance (a store that cannot open a second connection has no heartbeat backend).
    The conformance kit tests what is listed.
    """

    clock: Callable[[], float] = staticmethod(time.time)
    """The backend's time, in epoch seconds: every time of the contract is a ``clock()`` reading.

    Read ``self.clock()``, never ``time.time()``, wherever the contract speaks of the current
    time: whether a task is due (``available_at <= clock()``), ``started_at``,
    ``lease_expires_at = clock() + lease_seconds``, the expiry of leases in `recover_expired`,
    the ``available_at`` of a recovery, a requeue or an outcome that names none, and the
    ``finished_at`` of a cancel or a recovered task gone dead (an `Outcome` brings its own
    ``finished_at``, stored as given). Tests and the conformance kit replace it
    (``backend.clock = FakeClock()``) to move time without sleeping; a backend reading the
    wall clock fails the kit's time checks, told so. A heartbeat backend shares it.
    """

    url: str | None = None
    """The URL this backend was opened from: `from_url` sets it unless the backend set it
    itself; None for a backend built directly. Another process opens the same store with
    ``from_url(backend.url)`` (the conformance kit's cross-process test does). It may hold a
    password: show `repr` (worker banners, ``sitq status``) or `sitq.urls.redact_url`,
    which hide it, never the URL itself."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Make each subclass's own `from_url` record, in `url`, the URL it opened."""
        super().__init_subclass__(**kwargs)
        opener = cls.__dict__.get("from_url")
        if isinstance(opener, classmethod):
            cls.from_url = classmethod(_recording_url(opener.__func__))  # type: ignore[method-assign,assignment]

    def __repr__(self) -> str:
        """``<ClassName url>``: the class and the URL it was opened from (password hidden)."""
        where = f" {redact_url(self.url)}" if self.url else ""
        return f"<{type(self).__qualname__}{where}>"

    @classmethod
    def from_url(cls, url: str) -> Backend:
        """Build a backend from a URL such as ``sqlite:///tasks.db``.

        Every backend a plugin registers overrides it (``TaskQueue("scheme://...")`` and
        ``sitq worker --backend`` open backends only through it), raising `ConfigurationError`
        for a URL it cannot open; the default refuses every URL. The URL opened is kept in
        `url`.
        """
        raise ConfigurationError(
            f"{cls.__name__} cannot be built from a URL ({url!r}); pass an instance instead"
        )

    def supports(self, capability: Capability) -> bool:
        """True if this backend declared ``capability`` in `capabilities`."""
        return capability in self.capabilities

    # -- lifecycle ---------------------------------------------------------------------------

    async def connect(self) -> None:  # noqa: B027 (a no-op default, like taskiq's startup)
        """Open connections and create the schema. Must be idempotent."""

    async def close(self) -> None:  # noqa: B027
        """Release every resource. Must be idempotent."""

    # -- enqueue -----------------------------------------------------------------------------

    @abstractmethod
    async def enqueue_many(self, records: Sequence[TaskRecord]) -> list[str]:
        """Store ``records`` atomically as pending tasks; return their ids in order.

        A record whose ``dedupe_key`` matches a pending or running task is not stored; the id of
        the existing task is returned in its place. A record whose id is already stored (or
        appears twice in ``records``) raises `ConfigurationError`, and nothing is stored.
        Fire `notify_enqueued` after committing.
        """

    async def enqueue(self, record: TaskRecord) -> str:
        """Store one record (see `enqueue_many`)."""
        return (await self.enqueue_many([record]))[0]

    def enqueue_many_blocking(self, records: Sequence[TaskRecord]) -> list[str]:
        """`enqueue_many`, blocking, in the calling thread: the same contract (atomic batch,
        dedupe keys, refused ids, `notify_enqueued` after committing), for callers without an
        event loop. `SyncTaskQueue` calls it after `connect` (the schema exists), from any
        thread but never from inside a running event loop; several threads (and processes)
        may call it at once.

        Optional: a backend that implements it declares `Capability.BLOCKING_ENQUEUE` (and
        frees whatever it holds per thread in `close`); the default raises
        `ConfigurationError`. A subclass that changes `enqueue_many` changes this too, or
        leaves the capability out: `SyncTaskQueue` calls only this one.
        """
        raise ConfigurationError(
            f"{type(self).__name__} cannot enqueue without its event loop "
            "(Capability.BLOCKING_ENQUEUE); use await backend.enqueue_many(records)"
        )

    async def enqueue_in(self, connection: Any, records: Sequence[TaskRecord]) -> list[str]:
        """Store ``records`` through the caller's own database ``connection``, inside the
        transaction it has open: they exist once it commits and never if it rolls back.

        Optional (`TaskQueue.enqueue(..., connection=...)` calls it): backends on a database
        server implement it and declare `Capability.ENQUEUE_IN`; the default raises
        `ConfigurationError`.
        """
        raise ConfigurationError(
            f"{type(self).__name__} cannot store tasks in your own transaction "
            "(connection=...); only a database-server backend such as PostgreSQL can"
        )

    # -- claim and leases --------------------------------------------------------------------

    @abstractmethod
    async def claim(
        self,
        *,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        queues: Sequence[str] | None = None,
        exclude: Iterable[str] = (),
    ) -> list[TaskRecord]:
        """Atomically claim up to ``limit`` due pending tasks.

        Due means ``available_at <= clock()``. Order: highest ``priority`` first, then earliest
        ``available_at``, then enqueue order (a task put back by a retry, release or recovery
        keeps its place); the list comes in that order. ``queues=None`` means every queue. Ids in
        ``exclude`` are skipped. Each claimed task becomes running, its ``attempts`` grows by
        one, and it gets ``worker_id``, ``started_at``, a fresh ``lease_token`` and
        ``lease_expires_at = clock() + lease_seconds``. No task is ever returned to two
        claimers while its lease holds.
        """

    @abstractmethod
    async def claim_by_id(
        self, task_id: str, *, worker_id: str, lease_seconds: float
    ) -> TaskRecord | None:
        """Claim one pending task by id (due or not); None if it is not pending."""

    @abstractmethod
    async def extend_leases(self, leases: Mapping[str, str], lease_seconds: float) -> set[str]:
        """Heartbeat: push back the lease of each ``task_id → lease_token`` still held.

        Returns the ids whose lease was extended; a missing id means the lease was lost.
        """

    @abstractmethod
    async def finish(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Apply outcomes of claimed tasks in one transaction; fenced by lease token.

        An outcome applies only if its task is running under ``outcome.lease_token``; the
        returned list says, per outcome, whether it was applied. Applying clears the lease, so
        of two outcomes for one task in one call (applied in order) only the first applies.
        Final states store ``result``/``error``/``traceback`` and ``finished_at``. PENDING
        sets ``available_at`` (``clock()`` if None) and keeps ``error``/``traceback`` of the
        failed attempt; with ``count_attempt=False`` it also takes one off ``attempts``.
        Fire `notify_finished` after committing (and `notify_enqueued` if a task went back to
        pending).
        """

    async def complete(self, task_id: str, lease_token: str, result: bytes | None) -> bool:
        """Mark a claimed task succeeded (one-outcome `finish`)."""
        return (await self.finish([Outcome.succeeded(task_id, lease_token, result)]))[0]

    async def fail(
        self, task_id: str, lease_token: str, error: str, traceback: str | None = None
    ) -> bool:
        """Mark a claimed task failed for good (one-outcome `finish`)."""
        return (await self.finish([Outcome.failed(task_id, lease_token, error, traceback)]))[0]

    async def retry(
        self,
        task_id: str,
        lease_token: str,
        available_at: float,
        error: str | None = None,
        traceback: str | None = None,
    ) -> bool:
        """Put a claimed task back to run again at ``available_at`` (one-outcome `finish`)."""
        outcome = Outcome.retry(task_id, lease_token, available_at, error, traceback)
        return (await self.finish([outcome]))[0]

    async def release(self, task_id: str, lease_token: str) -> bool:
        """Hand a claimed task back unrun, its attempt not counted (one-outcome `finish`)."""
        return (await self.finish([Outcome.release(task_id, lease_token)]))[0]

    async def set_progress(self, updates: Mapping[str, tuple[str, Progress]]) -> set[str]:
        """Store the progress of running tasks: ``task_id → (lease_token, Progress)``, in one
        batch, fenced by lease token like `extend_leases`; returns the ids stored.

        Progress is kept until the next `set_progress` of the task: a retry, a recovery or a
        requeue leaves it, and a finish stores it with the outcome. Optional (workers call it
        when a task reports progress): a backend that implements it declares
        `Capability.PROGRESS`; the default stores nothing.
        """
        return set()

    @abstractmethod
    async def recover_expired(self, *, max_attempts: int) -> list[str]:
        """Put running tasks whose lease lapsed (``lease_expires_at < clock()``) back to pending,
        due now; return their ids.

        A recovered task that has already used ``max(max_attempts, max_retries + 1)`` attempts
        goes ``dead`` instead, with an error saying its worker was lost; it is not returned.
        """

    # -- control -----------------------------------------------------------------------------

    @abstractmethod
    async def cancel(self, task_id: str) -> bool:
        """Cancel a pending or running task (or waiting, with `Capability.WORKFLOWS`); False
        if it is unknown or already final.

        The task becomes ``cancelled`` with ``finished_at = clock()``, and its dedupe key is
        free again. A pending task never runs. A running task's lease is cleared (token and
        expiry set to None) in the same write, so its worker can store no outcome (every
        finish is fenced) and learns at its next heartbeat that the lease is gone
        (`extend_leases` leaves the task out); the worker then stops the execution.
        """

    @abstractmethod
    async def requeue(self, task_id: str) -> bool:
        """Put a failed, dead or cancelled task back to pending, due now, attempts reset.

        The task runs again as if new: ``status`` pending, ``attempts`` 0, ``available_at =
        clock()``, and ``result``, ``error``, ``traceback``, ``started_at``, ``finished_at``,
        ``worker_id`` and the lease (``lease_token``, ``lease_expires_at``) cleared to None; its
        payload, queue, priority, headers (``meta``) and progress stay.
        Its dedupe key is taken again. Fire `notify_enqueued` after committing.

        False, changing nothing, if it is in no such state, if its dedupe key is held by an
        active task, or if it is an expired tombstone (`TaskRecord.expired`: nothing left to
        run).
        """

    async def expire_results(self, finished_before: float) -> int:
        """Turn finished tasks into tombstones; return how many.

        Every task in a final state (succeeded, failed, dead, cancelled) with ``finished_at <
        finished_before`` that is not a tombstone yet gets an empty ``payload`` and None for
        ``result`` and ``traceback``; its id, status, attempts, error and times stay, so
        readers can say "expired" rather than "unknown" (`TaskRecord.expired`). Pending and
        running tasks are never touched. Tombstones go with `purge` like any finished task.

        Optional (``Worker(result_ttl=...)`` calls it from its recovery pass): a backend that
        implements it declares `Capability.EXPIRE_RESULTS`; the default raises
        `ConfigurationError`.
        """
        raise ConfigurationError(
            f"{type(self).__name__} cannot expire results (result_ttl); implement "
            "Backend.expire_results, or purge old tasks instead"
        )

    def heartbeat_backend(self) -> Backend | None:
        """A backend on the same store for the worker's heartbeat thread, or None.

        A worker extends its leases from a thread of its own, with an event loop of its own,
        so that a task blocking the worker's loop cannot starve the heartbeat. That thread
        calls only `connect`, `extend_leases` and `close` on what this returns, from its own
        loop. Return ``self`` if this object may be used so, concurrently with the worker's
        loop (no lock held across an await, no connection bound to one loop); return a new
        object with its own connection otherwise (it shares ``clock``; the worker closes it).
        The default, None, runs the heartbeat on the worker's loop: correct, but a blocked
        loop then delays it. A backend returning a backend declares
        `Capability.HEARTBEAT_BACKEND`.
        """
        return None

    # -- reading -----------------------------------------------------------------------------

    @abstractmethod
    async def get_task(self, task_id: str) -> TaskRecord | None:
        """The stored record of a task (with its result, if finished), or None."""

    async def get_result(self, task_id: str) -> TaskRecord | None:
        """The record of a finished task, None if unknown or not finished yet."""
        record = await self.get_task(task_id)
        if record is None or not record.status.is_final:
            return None
        return record

    async def get_results(self, task_ids: Sequence[str]) -> list[TaskRecord | None]:
        """`get_result` of each of ``task_ids``, in order: what a worker reads of a
        workflow child's parents before running it (`sitq.workflow_state.PASS_RESULTS_HEADER`).

        The default calls `get_result` once per id; a backend on a database server reads
        them in one query (a chord's callback has as many parents as its group members).
        """
        return [await self.get_result(task_id) for task_id in task_ids]

    @abstractmethod
    async def counts(self, queue: str | None = None) -> dict[TaskStatus, int]:
        """Number of tasks in each status (every status present, zero included)."""

    @abstractmethod
    async def list_tasks(
        self,
        *,
        statuses: Iterable[TaskStatus] | None = None,
        queue: str | None = None,
        limit: int | None = 100,
        order: str = "oldest",
    ) -> list[TaskRecord]:
        """Stored records, for monitoring (``sitq status``, ``sitq failed``, …).

        Only tasks in ``statuses`` (default: every status) and in ``queue`` (default: every
        queue); at most ``limit`` of them (None: all). ``order="oldest"`` returns the earliest
        enqueued first (``created_at``, ties in enqueue order), ``"newest"`` the reverse.
        One status alone (``statuses="failed"``) is a list of one. Records are complete
        (payload, result, error, traceback). Check the arguments with `check_list_args`.
        """

    async def queue_counts(self) -> dict[str, dict[TaskStatus, int]]:
        """Number of tasks in each status, per queue (queues holding no task are absent).

        The default reads every record through `list_tasks`; backends override it with one
        aggregate query.
        """
        records = await self.list_tasks(limit=None)
        return fold_queue_counts((record.queue, record.status, 1) for record in records)

    async def search_tasks(self, search: TaskSearch) -> list[TaskRecord]:
        """One page of the tasks ``search`` finds, latest enqueued first (`sitq.search` has
        the rule): dashboards list and filter tasks with it, a page at a time (``before``).

        The default reads every record through `list_tasks`; SQL backends override it with
        one query that walks the table in enqueue order and stops at ``limit``.
        """
        return newest_page(await self.list_tasks(limit=None, order="newest"), search)

    async def throughput(
        self, since: float, bucket_seconds: float
    ) -> dict[float, dict[TaskStatus, int]]:
        """Tasks that finished succeeded, failed or dead at or after ``since``, counted per
        status in buckets of ``bucket_seconds`` (`sitq.throughput`): bucket start → status →
        count, buckets without a task absent. For dashboards (sitq-web's chart).

        Check the arguments with `sitq.throughput.check_throughput_args`. The default reads
        every finished record through `list_tasks`; SQL backends override it with one
        aggregate query over their index of finished tasks.
        """
        check_throughput_args(since, bucket_seconds, self.clock())
        records = await self.list_tasks(statuses=THROUGHPUT_STATUSES, limit=None)
        return fold_throughput(
            (
                (bucket_index(r.finished_at, since, bucket_seconds), r.status, 1)
                for r in records
                if r.finished_at is not None and r.finished_at >= since
            ),
            since,
            bucket_seconds,
        )

    async def delete_tasks(self, task_ids: Sequence[str]) -> int:
        """Delete the tasks of ``task_ids`` that are in a final state (succeeded, failed,
        dead, cancelled); return how many. Ids unknown or of tasks not ended yet are left
        (cancel those first): a task a worker runs is never deleted under it.

        Optional (sitq-web's delete action calls it); the default raises
        `ConfigurationError`.
        """
        raise ConfigurationError(
            f"{type(self).__name__} cannot delete tasks by id; use purge() to delete finished "
            "tasks by status and age"
        )

    @abstractmethod
    async def purge(
        self, statuses: Iterable[TaskStatus] | None = None, older_than: float | None = None
    ) -> int:
        """Delete tasks in ``statuses`` (default: every final status) finished before
        ``older_than`` (epoch seconds; default: any time). Returns how many were deleted.
        Never deletes running tasks unless RUNNING is asked for explicitly. ``statuses`` is
        checked as `list_tasks` checks it (one status alone is a list of one): use
        `sitq.rules.purge_statuses`."""

    async def prune(self, finished_before: Mapping[TaskStatus, float] | float, limit: int) -> int:
        """Delete at most ``limit`` finished tasks that finished before their status's cutoff;
        return how many.

        ``finished_before`` maps final statuses to epoch seconds (a status left out is not
        pruned); one number is the cutoff of every final status. A task goes if its status is
        in the mapping and ``finished_at < finished_before[status]``; pending and running
        tasks never go, nor does a task without ``finished_at``. Tombstones of
        `expire_results` go like any finished task. Check the arguments with
        `sitq.retention.check_prune_args` (a status that is not final, a limit < 1 or a cutoff
        that is not a finite number is a `ConfigurationError`).

        Workers call it in a loop (``retention``): one short write per call, so a store shared
        with busy workers is never locked for long; several workers pruning at once must
        neither fail nor block each other for long (PostgreSQL skips rows another pruner
        holds). Which of the expired tasks go first is the backend's choice.

        Optional: a backend that implements it declares `Capability.PRUNE`; the default raises
        `ConfigurationError`.
        """
        raise ConfigurationError(
            f"{type(self).__name__} cannot prune old tasks (retention); implement "
            "Backend.prune, or set retention=0 and purge old tasks by hand"
        )

    async def reclaim_space(self, *, full: bool = False) -> None:  # noqa: B027
        """Give the space of deleted tasks back to the operating system, if the store keeps
        it otherwise. Workers call it after a pass of `prune` deleted tasks; a backend whose
        `purge` leaves space behind calls it from there itself.

        ``full=True`` (``sitq vacuum``) may rewrite the whole store and hold it for a while;
        the default is quick and may give back only part of the space. The default does
        nothing: a database server such as PostgreSQL reuses the space of deleted rows by
        itself (autovacuum).
        """

    # -- periodic schedules (optional: Capability.SCHEDULES) -----------------------------------

    async def add_schedules(self, definitions: Mapping[str, str]) -> None:
        """Create the state of each schedule in ``definitions`` (name → definition text) that
        has none: not paused, its fires decided up to ``clock()`` (a new schedule catches up
        nothing). Store each one's definition, replacing the one stored; nothing else of an
        existing state changes. Optional, like every schedule method: a backend that
        implements them declares `Capability.SCHEDULES`; the defaults raise
        `ConfigurationError`."""
        raise _no_schedules(self)

    async def enqueue_fire(self, schedule: str, fire_time: float, record: TaskRecord) -> str | None:
        """Store ``record`` as the task of one fire of ``schedule``, exactly once.

        In one transaction: refuse (return None) if the schedule is paused, if the fire is
        stale (`sitq.schedule_state.fire_is_stale` against its ``decided_until``) or if a row
        for ``(schedule, fire_time)`` exists; else write that unique row, store ``record`` as
        `enqueue_many` would (a dedupe hit stores nothing and the fire points to the task
        holding the key), set ``decided_until`` and ``last_fire`` to at least ``fire_time``
        (``last_task_id`` follows ``last_fire``), and return the task id. A schedule without
        a state gets one (decided up to ``fire_time``). Fire `notify_enqueued` after
        committing. Rows older than `sitq.schedule_state.FIRE_MEMORY` behind
        ``decided_until`` may be deleted.
        """
        raise _no_schedules(self)

    async def skip_fires(self, schedule: str, until: float) -> None:
        """Record that the fire times of ``schedule`` up to ``until`` are decided (a catch-up
        policy dropped them): ``decided_until`` becomes at least ``until``."""
        raise _no_schedules(self)

    async def schedule_states(self) -> list[ScheduleState]:
        """The stored state of every schedule, by name."""
        raise _no_schedules(self)

    async def pause_schedule(self, schedule: str, paused: bool) -> bool:
        """Pause (no fire is stored while paused) or resume ``schedule``; False if it has no
        stored state. Resuming sets ``decided_until`` to at least ``clock()``: the fire times
        of the pause are never run."""
        raise _no_schedules(self)

    # -- flow control (optional: Capability.FLOW_CONTROL) -----------------------------------

    async def set_limits(self, rules: Sequence[LimitRule]) -> None:
        """Store each rule in ``rules``, replacing the one stored for its pattern (others stay).

        With `Capability.FLOW_CONTROL` the contract of the other methods grows:

        * `claim` takes a task holding keys (`TaskRecord.limits`) only if, for each key with
          a rule (`sitq.flow_control.rule_for`), fewer running tasks hold that key than its
          ``concurrency`` and its token bucket (`sitq.flow_control.refill`) holds a token,
          which the claim takes; in the claim's own transaction, so the limits hold across
          processes. A task it cannot take is skipped, not claimed, and does not stop tasks
          behind it (no head-of-line blocking). Between keys it is fair: among claimable tasks
          of equal priority, keys that were served least recently come first.
        * `claim` takes nothing from a paused queue (`pause_queue`).
        * `enqueue_many` refuses a duplicate by ``dedupe_key`` over ``unique_states`` and
          ``unique_for`` (see `TaskRecord`), returning the stored task's id.

        Optional, like every flow-control method; the defaults raise `ConfigurationError`.
        """
        raise _no_flow_control(self)

    async def delete_limits(self, patterns: Sequence[str]) -> int:
        """Remove the rules of ``patterns`` (their keys are no longer limited); how many were
        stored."""
        raise _no_flow_control(self)

    async def limits(self) -> list[LimitRule]:
        """Every stored rule, by pattern."""
        raise _no_flow_control(self)

    async def limit_states(self) -> list[LimitState]:
        """Each key seen under a stored rule (and each family rule with no key yet), with its
        tokens now, its running and its waiting tasks (``sitq limits``), by key."""
        raise _no_flow_control(self)

    async def pause_queue(self, queue: str, paused: bool) -> None:
        """Pause (no claim takes a task from it until resumed) or resume ``queue``, for every
        worker on this store. Running tasks go on; enqueues are still stored. Fire
        `notify_enqueued` after resuming."""
        raise _no_flow_control(self)

    async def paused_queues(self) -> set[str]:
        """The queues paused now."""
        raise _no_flow_control(self)

    # -- workflows (optional: Capability.WORKFLOWS) -------------------------------------------

    async def workflow_tasks(self, workflow_id: str) -> list[TaskRecord]:
        """Every member of ``workflow_id`` in enqueue order (empty if unknown).

        With `Capability.WORKFLOWS` the contract of the other methods grows
        (`sitq.workflow_state` has the rules):

        * `enqueue_many` stores a record with ``parents`` as ``waiting`` (its parents may be
          in the same batch, before it, or stored earlier); one whose parents have all ended
          already is stored as their outcomes decide (pending, or cancelled). An unknown
          parent id raises `ConfigurationError` and nothing is stored.
        * `finish`, `cancel` and `recover_expired` release or cancel the children of each
          task they end, in the same transaction (exact joins, never polled).
        * `cancel` of a waiting task cancels it; `requeue` of a parent takes the descendants
          cancelled for it back to waiting.
        * `claim` never takes a waiting task; `counts` and `list_tasks` show them.

        Optional, like every workflow method; the defaults raise `ConfigurationError`.
        """
        raise _no_workflows(self)

    async def cancel_workflow(self, workflow_id: str) -> int:
        """Cancel every waiting, pending and running member of ``workflow_id`` as `cancel`
        does (a running one loses its lease), in one transaction, none with a parent's reason
        (a later requeue of one member resumes no other); their children outside the
        workflow follow the usual rule. How many members were cancelled."""
        raise _no_workflows(self)

    async def workflows(
        self, *, limit: int = 100, active_only: bool = False
    ) -> list[WorkflowSummary]:
        """The newest ``limit`` workflows (only those with a member not ended yet, if
        ``active_only``), newest first (by their first member's ``created_at``, then enqueue
        order), with their members' counts (`sitq.workflow_state.summarize` computes one
        from the members)."""
        raise _no_workflows(self)

    # -- wake-ups ----------------------------------------------------------------------------

    @property
    def notify_key(self) -> str:
        """Identity of the underlying store; backends on the same store share wake-ups."""
        return f"{type(self).__qualname__}:{id(self)}"

    @property
    def enqueued_signal(self) -> Signal:
        """Fired after new work becomes pending in this process."""
        return channel(self.notify_key, "enqueued")

    @property
    def finished_signal(self) -> Signal:
        """Fired after tasks finish in this process."""
        return channel(self.notify_key, "finished")

    def notify_enqueued(self) -> None:
        """Wake in-process waiters for work. Call after an enqueue commits."""
        notify(self.notify_key, "enqueued")

    def notify_finished(self) -> None:
        """Wake in-process waiters for results. Call after a finish commits."""
        notify(self.notify_key, "finished")

    async def wait_for_work(self, timeout: float) -> None:
        """Return when work may be available, or after ``timeout`` seconds.

        The default wakes on in-process enqueues; backends shared across processes override it
        (PostgreSQL listens for NOTIFY) and declare `Capability.CROSS_PROCESS_WAKEUPS`. A
        spurious return is harmless: callers then claim.
        """
        await self.enqueued_signal.wait(timeout)

    async def wait_for_finish(self, timeout: float) -> None:
        """Return when some task may have finished, or after ``timeout`` seconds."""
        await self.finished_signal.wait(timeout)


OpenFromUrl = Callable[[type[Backend], str], Backend]


def _recording_url(open_url: OpenFromUrl) -> OpenFromUrl:
    """Wrap a `Backend.from_url` so that the backend it returns knows its `url`."""
    if getattr(open_url, "records_url", False):
        return open_url

    @functools.wraps(open_url)
    def from_url(cls: type[Backend], url: str) -> Backend:
        backend = open_url(cls, url)
        if isinstance(backend, Backend) and backend.url is None:
            with contextlib.suppress(AttributeError):  # a class with __slots__ and no `url`
                backend.url = url
        return backend

    from_url.records_url = True  # type: ignore[attr-defined]
    return from_url


def _no_flow_control(backend: Backend) -> ConfigurationError:
    return ConfigurationError(
        f"{type(backend).__name__} cannot enforce limits or pause queues; use a backend that "
        "declares Capability.FLOW_CONTROL (sqlite, postgresql, memory), or implement "
        "Backend.set_limits and the other flow-control methods"
    )


def _no_workflows(backend: Backend) -> ConfigurationError:
    return ConfigurationError(
        f"{type(backend).__name__} cannot run workflows (depends_on, chain, group, chord); use "
        "a backend that declares Capability.WORKFLOWS (sqlite, postgresql, memory)"
    )


def _no_schedules(backend: Backend) -> ConfigurationError:
    return ConfigurationError(
        f"{type(backend).__name__} cannot store periodic schedules; use a backend that "
        "declares Capability.SCHEDULES (sqlite, postgresql, memory), or implement "
        "Backend.enqueue_fire and the other schedule methods"
    )


__all__ = [
    "ALL_STATUSES",
    "LIST_ORDERS",
    "Backend",
    "Capability",
    "Outcome",
    "ScheduleState",
    "TaskRecord",
    "check_list_args",
    "record_from_row",
]
