"""`BackendStateMachine`: random sequences of backend operations checked against `QueueModel`.

Hypothesis drives enqueues (random priority, queue, due time, dedupe key, one by one or in
batches; with `Capability.WORKFLOWS`, children waiting for stored tasks, and theirs, and
cancelling their workflow), claims
(limits, queue filters, exclusions), claims by id, heartbeats, every kind of
outcome (with live and stale lease tokens, one call or a batch), cancels, requeues, result
expiry, purges, clock advances and crash recovery. Each operation's answer must be the model's,
and after every step the whole store must match it: counts, per-queue counts, and every record
(status, attempts, due time, lease, error) read back with `list_tasks`. Claims must return
exactly the tasks the model says, in order, so no task is ever held by two claimers.

Run it against any backend with `run_backend_state_machine`; `BackendConformance` does.
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ..backend import Backend, Capability, Outcome, TaskRecord
from ..task import TaskStatus
from .clock import FakeClock
from .model import LOST_WORKER, PARENT_FAILED, QueueModel
from .records import make_record
from .runner import LoopRunner

#: Builds a fresh, empty backend; gets a private temporary folder it may put files in.
BackendFactory = Callable[[Path], Awaitable[Backend]]

#: Default run: enough to find ordering, fencing and dedupe bugs in a few seconds. Shrinking is
#: off: a sequence of backend calls takes minutes to shrink, longer than a test may run, so a
#: failure is reported at once with the whole sequence (the database replays it first next
#: time). Pass `SHRINKING_SETTINGS` to get a minimal sequence instead.
DEFAULT_SETTINGS = settings(
    max_examples=60,
    stateful_step_count=50,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

#: `DEFAULT_SETTINGS` with shrinking on, to debug a failure found with the defaults.
SHRINKING_SETTINGS = settings(DEFAULT_SETTINGS, phases=tuple(Phase))

QUEUES = ("a", "b")
OUTCOME_KINDS = ("succeeded", "failed", "dead", "retry", "release", "release_at")

task_specs = st.tuples(
    st.sampled_from([0, 0, 1, -1]),  # priority
    st.sampled_from(QUEUES),
    st.sampled_from([0.0, 0.0, 1.0, 4.0]),  # seconds until due
    st.sampled_from([None, None, None, "k1", "k2"]),  # dedupe key
    st.sampled_from([None, 0, 2]),  # max_retries
)


class BackendStateMachine(RuleBasedStateMachine):
    """Operations on a backend, each checked against `QueueModel`.

    Subclass with ``factory`` set (see `machine_for`); every example gets a fresh backend from
    it, a `FakeClock` and its own event loop.
    """

    factory: ClassVar[BackendFactory]

    def __init__(self) -> None:
        super().__init__()
        self.runner = LoopRunner()
        self.tmp = tempfile.TemporaryDirectory(prefix="sitq-statemachine-")
        self.clock = FakeClock()
        self.model = QueueModel()
        self.ids: list[str] = []  # every id ever stored, purged ones included
        self.leases: list[tuple[str, str]] = []  # every (task id, lease token) ever handed out
        self.backend: Backend | None = None
        try:
            self.backend = self.runner.run(self._open())
        except BaseException:
            self.teardown()
            raise

    async def _open(self) -> Backend:
        backend = await type(self).factory(Path(self.tmp.name))
        backend.clock = self.clock
        await backend.connect()
        return backend

    def teardown(self) -> None:
        """Close the backend, its loop and its folder."""
        try:
            if self.backend is not None and not self.runner.loop.is_closed():
                self.runner.run(self.backend.close())
        finally:
            self.runner.close()
            self.tmp.cleanup()

    def run(self, awaitable: Awaitable[Any]) -> Any:
        """Drive one backend call to completion."""
        return self.runner.run(awaitable)

    @property
    def b(self) -> Backend:
        """The backend under test."""
        assert self.backend is not None
        return self.backend

    def check_record(self, task_id: str) -> None:
        """`get_task` of ``task_id`` agrees with the model."""
        record = self.run(self.b.get_task(task_id))
        if task_id not in self.model.tasks:
            assert record is None, f"{task_id} was purged but get_task returned {record}"
            return
        assert record is not None, f"get_task({task_id!r}) returned None for a stored task"
        self.compare(record)

    def compare(self, record: TaskRecord) -> None:
        """A record read from the backend agrees with the model."""
        task_id = record.id
        task = self.model.tasks[task_id]
        where = f"task {task_id} (model: {task})"
        assert record.id == task_id, where
        assert record.status is task.status, f"status {record.status}; {where}"
        assert record.attempts == task.attempts, f"attempts {record.attempts}; {where}"
        assert record.queue == task.queue and record.priority == task.priority, where
        assert record.dedupe_key == task.dedupe_key, where
        assert record.parents == task.parents, f"parents {record.parents}; {where}"
        assert record.allow_failure == task.allow_failure, where
        assert record.workflow_id == task.workflow_id, where
        assert record.lease_token == task.lease_token, f"lease {record.lease_token}; {where}"
        if task.status is TaskStatus.RUNNING:
            assert record.lease_expires_at == task.lease_expires_at, where
        else:
            assert record.lease_expires_at is None, where
        if task.status is TaskStatus.PENDING:
            assert record.available_at == task.available_at, f"due {record.available_at}; {where}"
        if task.error is LOST_WORKER:
            assert record.error, f"a task killed by recover_expired needs an error; {where}"
        elif task.error is PARENT_FAILED:
            assert self.model.failed_parent_named(task, record.error), (
                f"error {record.error!r} must name a parent that did not succeed; {where}"
            )
        else:
            assert record.error == task.error, f"error {record.error!r}; {where}"
        assert record.expired == task.expired, f"expired {record.expired}; {where}"
        if task.status.is_final:
            assert record.finished_at is not None, f"final without finished_at; {where}"

    # -- rules -------------------------------------------------------------------------------

    @initialize(specs=st.lists(task_specs, min_size=1, max_size=6))
    def start_with_tasks(self, specs: list[tuple[int, str, float, str | None, int | None]]) -> None:
        self.enqueue(specs, one_by_one=False)

    @rule(specs=st.lists(task_specs, min_size=1, max_size=3), one_by_one=st.booleans())
    def enqueue(
        self, specs: list[tuple[int, str, float, str | None, int | None]], one_by_one: bool
    ) -> None:
        now = self.clock()
        records = [
            make_record(
                priority=priority, queue=queue, available_at=now + eta, dedupe_key=key,
                max_retries=max_retries, created_at=now,
            )
            for priority, queue, eta, key, max_retries in specs
        ]  # fmt: skip
        expected = self.model.enqueue(records)
        if one_by_one:
            got = [self.run(self.b.enqueue(r)) for r in records]
        else:
            got = self.run(self.b.enqueue_many(records))
        assert got == expected, f"enqueue returned {got}, expected {expected}"
        self.ids.extend(r.id for r in records if r.id in self.model.tasks)

    @precondition(lambda self: self.model.tasks and self.b.supports(Capability.WORKFLOWS))
    @rule(data=st.data(), allow_failure=st.booleans(), eta=st.sampled_from([0.0, 0.0, 2.0]))
    def enqueue_children(self, data: st.DataObject, allow_failure: bool, eta: float) -> None:
        """Workflows: a task waiting for one to three stored tasks (in any status), and
        perhaps a grandchild waiting for it, in one batch."""
        now = self.clock()
        stored = [i for i in self.ids if i in self.model.tasks]  # in a replayable order
        parents = data.draw(st.lists(st.sampled_from(stored), min_size=1, max_size=3, unique=True))
        child = make_record(
            parents=parents, allow_failure=allow_failure, workflow_id="wf", created_at=now,
            available_at=now + eta,
        )  # fmt: skip
        records = [child]
        if data.draw(st.booleans(), label="grandchild"):
            records.append(make_record(parents=[child.id], workflow_id="wf", created_at=now))
        expected = self.model.enqueue(records)
        got = self.run(self.b.enqueue_many(records))
        assert got == expected, f"enqueue of children returned {got}, expected {expected}"
        self.ids.extend(r.id for r in records)

    @rule(
        limit=st.integers(min_value=1, max_value=3),
        queues=st.sampled_from([None, ("a",), ("b",), QUEUES, ()]),
        lease_seconds=st.sampled_from([2.0, 10.0]),
        worker=st.sampled_from(["w1", "w2"]),
        data=st.data(),
    )
    def claim(
        self,
        limit: int,
        queues: tuple[str, ...] | None,
        lease_seconds: float,
        worker: str,
        data: st.DataObject,
    ) -> None:
        now = self.clock()
        pending = self.model.with_status(TaskStatus.PENDING)
        exclude = data.draw(st.lists(st.sampled_from(pending), max_size=2)) if pending else []
        expected = self.model.claimable(now, limit, queues, exclude)
        got = self.run(
            self.b.claim(
                worker_id=worker,
                limit=limit,
                lease_seconds=lease_seconds,
                queues=None if queues is None else list(queues),
                exclude=exclude,
            )
        )
        assert [r.id for r in got] == expected, (
            f"claim(limit={limit}, queues={queues}, exclude={exclude}) returned "
            f"{[r.id for r in got]}, expected {expected}"
        )
        for record in got:
            self._took(record.id, record.lease_token, record.attempts, worker, record.worker_id)
            assert record.status is TaskStatus.RUNNING
            assert record.started_at == now and record.lease_expires_at == now + lease_seconds
            self.model.take(record.id, record.lease_token or "", now, lease_seconds)
            self.compare(record)

    def _took(
        self, task_id: str, token: str | None, attempts: int, worker: str, worker_id: str | None
    ) -> None:
        assert token, f"claimed {task_id} without a lease token"
        assert (task_id, token) not in self.leases, f"lease token of {task_id} reused"
        assert attempts == self.model.tasks[task_id].attempts + 1, f"attempts of {task_id}"
        assert worker_id == worker
        self.leases.append((task_id, token))

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), lease_seconds=st.sampled_from([2.0, 10.0]))
    def claim_by_id(self, data: st.DataObject, lease_seconds: float) -> None:
        task_id = data.draw(st.sampled_from(self.ids))
        now = self.clock()
        task = self.model.tasks.get(task_id)
        record = self.run(self.b.claim_by_id(task_id, worker_id="w3", lease_seconds=lease_seconds))
        if task is None or task.status is not TaskStatus.PENDING:
            assert record is None, f"claim_by_id took {task_id} while {task and task.status}"
            return
        assert record is not None and record.id == task_id, f"claim_by_id({task_id}) failed"
        self._took(task_id, record.lease_token, record.attempts, "w3", record.worker_id)
        assert record.lease_expires_at == now + lease_seconds
        self.model.take(task_id, record.lease_token or "", now, lease_seconds)
        self.compare(record)

    @precondition(lambda self: self.leases)
    @rule(data=st.data(), lease_seconds=st.sampled_from([2.0, 10.0]))
    def heartbeat(self, data: st.DataObject, lease_seconds: float) -> None:
        picked = data.draw(st.lists(st.sampled_from(self.leases), min_size=1, max_size=4))
        leases = dict(picked)
        expected = self.model.extend(leases, self.clock(), lease_seconds)
        got = self.run(self.b.extend_leases(leases, lease_seconds))
        assert got == expected, f"extend_leases({leases}) returned {got}, expected {expected}"

    @precondition(lambda self: self.leases)
    @rule(data=st.data(), helper=st.booleans())
    def finish(self, data: st.DataObject, helper: bool) -> None:
        now = self.clock()
        live = [(t.id, t.lease_token) for t in self.model.tasks.values() if t.lease_token]
        # Mostly live leases, so tasks move on; stale ones check the fencing.
        use_live = bool(live) and data.draw(st.integers(0, 3), label="live") > 0
        pool: list[tuple[str, str]] = live if use_live else self.leases
        picks = data.draw(
            st.lists(
                st.tuples(st.sampled_from(pool), st.sampled_from(OUTCOME_KINDS)),
                min_size=1,
                max_size=3,
            )
        )
        outcomes = [self._outcome(tid, token, kind, now) for (tid, token), kind in picks]
        expected = [self.model.finish(o, now) for o in outcomes]
        if helper and len(outcomes) == 1:
            got = [self.run(self._finish_with_helper(outcomes[0], picks[0][1]))]
        else:
            got = self.run(self.b.finish(outcomes))
        assert got == expected, (
            f"finish({[(o.task_id, o.lease_token, o.status.value) for o in outcomes]}) "
            f"returned {got}, expected {expected}"
        )
        for task_id in {o.task_id for o in outcomes}:
            self.check_record(task_id)

    @staticmethod
    def _outcome(task_id: str, token: str, kind: str, now: float) -> Outcome:
        if kind == "succeeded":
            return Outcome.succeeded(task_id, token, b"result")
        if kind == "failed":
            return Outcome.failed(task_id, token, "ValueError: boom", "Traceback: ...")
        if kind == "dead":
            return Outcome.dead(task_id, token, "PayloadError: cannot decode")
        if kind == "retry":
            return Outcome.retry(task_id, token, now + 1.0, "OSError: flaky", "Traceback: ...")
        if kind == "release":
            return Outcome.release(task_id, token)
        return Outcome.release(task_id, token, available_at=now + 1.0)

    async def _finish_with_helper(self, o: Outcome, kind: str) -> bool:
        b = self.b
        if kind == "succeeded":
            return await b.complete(o.task_id, o.lease_token, o.result)
        if kind == "failed":
            return await b.fail(o.task_id, o.lease_token, o.error or "", o.traceback)
        if kind == "retry":
            assert o.available_at is not None
            return await b.retry(o.task_id, o.lease_token, o.available_at, o.error, o.traceback)
        if kind == "release":
            return await b.release(o.task_id, o.lease_token)
        return (await b.finish([o]))[0]  # "dead" and "release_at" have no helper

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        task_id = data.draw(st.sampled_from(self.ids))
        expected = self.model.cancel(task_id, self.clock())
        assert self.run(self.b.cancel(task_id)) == expected, f"cancel({task_id})"
        self.check_record(task_id)

    @precondition(lambda self: self.b.supports(Capability.WORKFLOWS))
    @rule()
    def cancel_workflow(self) -> None:
        """Cancel every member of the children's workflow not ended yet."""
        expected = self.model.cancel_workflow("wf", self.clock())
        assert self.run(self.b.cancel_workflow("wf")) == expected, "cancel_workflow('wf')"

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def requeue(self, data: st.DataObject) -> None:
        task_id = data.draw(st.sampled_from(self.ids))
        expected = self.model.requeue(task_id, self.clock())
        assert self.run(self.b.requeue(task_id)) == expected, f"requeue({task_id})"
        self.check_record(task_id)

    @rule(seconds=st.sampled_from([0.5, 1.0, 2.0, 10.0]))
    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(
        max_attempts=st.integers(min_value=1, max_value=3),
        later=st.sampled_from([0.0, 2.0, 10.0, 11.0]),
    )
    def recover(self, max_attempts: int, later: float) -> None:
        """A worker crashed: some time later, recover every lapsed lease."""
        self.clock.advance(later)
        back, _dead = self.model.recover(self.clock(), max_attempts)
        got = self.run(self.b.recover_expired(max_attempts=max_attempts))
        assert len(got) == len(set(got)), f"recover_expired returned duplicates: {got}"
        assert set(got) == back, f"recover_expired returned {got}, expected {back}"

    @rule()
    def expire_results(self) -> None:
        """Expire every finished task's result (if the backend declares it can: optional)."""
        if not self.b.supports(Capability.EXPIRE_RESULTS):
            return
        got = self.run(self.b.expire_results(finished_before=1e15))
        expected = self.model.expire()
        assert got == expected, f"expire_results() returned {got}, expected {expected}"

    @rule()
    def purge(self) -> None:
        before = set(self.model.tasks)
        expected = self.model.purge()
        assert self.run(self.b.purge()) == expected, "purge() deleted a different number"
        for task_id in before - set(self.model.tasks):
            self.check_record(task_id)

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def store_matches_model(self) -> None:
        """Counts, and every record read in one `list_tasks` (oldest first), match the model."""
        self.run(self._check_store())

    async def _check_store(self) -> None:
        b, model = self.b, self.model
        assert await b.counts() == model.counts(), "counts()"
        for queue in QUEUES:
            assert await b.counts(queue) == model.counts(queue), f"counts({queue!r})"
        per_queue = {q: model.counts(q) for q in {t.queue for t in model.tasks.values()}}
        assert await b.queue_counts() == per_queue, "queue_counts()"
        records = await b.list_tasks(limit=None)
        expected = [t.id for t in sorted(model.tasks.values(), key=lambda t: t.order)]
        assert [r.id for r in records] == expected, "list_tasks(limit=None): ids or order"
        for record in records:
            self.compare(record)


def machine_for(
    factory: BackendFactory, name: str = "BackendStateMachine"
) -> type[BackendStateMachine]:
    """A `BackendStateMachine` subclass whose examples open backends with ``factory``."""
    return type(name, (BackendStateMachine,), {"factory": staticmethod(factory)})


def run_backend_state_machine(
    factory: BackendFactory, machine_settings: settings | None = None
) -> None:
    """Run the state machine against backends from ``factory``; raise on the first mismatch."""
    run_state_machine_as_test(machine_for(factory), settings=machine_settings or DEFAULT_SETTINGS)
