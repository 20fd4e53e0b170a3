"""Acceptance of workflows (issue 15): random DAGs run by three real ``sitq worker`` processes
on one SQLite file, and on one PostgreSQL database, while a worker running a member is
SIGKILLed every few seconds and restarted.

Each DAG is seeded: up to 200 members, each depending on random earlier ones; some fail for
good (``max_retries=0``), some have ``allow_failure``. Every member appends a line to one
shared event file (``O_APPEND``: one total order across processes) when it starts and when it
ends. Checked from the stored records (`Backend.workflow_tasks`) and that file:

* no member started before each of its parents ended as stored (every attempt's start comes
  after the line of the parent's stored attempt, and the stored ``started_at`` is not before
  the parents' ``finished_at``);
* each member that ran has exactly one stored outcome, by its last attempt; every earlier
  attempt was on a worker that was killed (so every join ran exactly once);
* the members cancelled are exactly those the failures cancel (computed from the DAG: a
  member without ``allow_failure`` with a parent that did not succeed), with the parent-failed
  error, and none of them ever started;
* nothing stays waiting, pending or running: every member ends within a bounded wait.

The default run is one DAG of 120 members per store (15-30 s each on a loaded 2-core
machine). The soak (24 DAGs at once, up to 200 members each, about 3,000 in all; a minute or
two) runs with ``pytest -m slow tests/test_workflow_chaos.py`` or ``SITQ_SOAK=1``;
``SITQ_SOAK_DAGS`` changes how many DAGs.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from postgres_support import PG_URL, drop_prefix, new_prefix, require_postgres
from run_options import slow_requested
from subprocess_env import clean_environment

from sitq import ParentFailed, Task, TaskQueue, TaskStatus
from sitq.records import TaskRecord
from sitq.task import new_task_id
from sitq.workflow_state import PASS_RESULTS_HEADER, parent_failed_error

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_postgres]

#: The app the workers run, written into the test's folder. ``member`` logs its start and
#: its end (with what it received from its parents) to $WF_CHAOS_EVENTS, sleeps, then fails
#: or returns its node number.
APP = """
import asyncio
import json
import os

import sitq

queue = sitq.TaskQueue(os.environ["WF_CHAOS_URL"])


def _log(kind, node, received=()):
    task = sitq.current_task()
    line = f"{kind} {task.task_id} {task.attempt} {os.getpid()} {node} "
    line += json.dumps(list(received), default=repr) + "\\n"
    fd = os.open(os.environ["WF_CHAOS_EVENTS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


async def member(*received, node, fail, seconds):
    _log("start", node)
    await asyncio.sleep(seconds)
    if fail:
        _log("fail", node)
        raise RuntimeError(f"member {node} fails as planned")
    _log("end", node, received)
    return node
"""

WORKERS = 3
CONCURRENCY = 4
LEASE = 3.0
KILL_EVERY = 2.5
#: How much earlier than a parent's ``finished_at`` a child's stored ``started_at`` may read.
#: The two stamps come from different processes' reads of the clock: the SQLite backend reads
#: it before waiting for the write lock, so a claim stamped while the parent's finish held the
#: lock can read up to that wait earlier, though it only saw the child pending after the
#: finish committed. The event file's order is the exact check; this one only catches a child
#: run seconds too early.
CLOCK_TOLERANCE = 1.0


@dataclass(frozen=True)
class Node:
    """One planned member: its parents (earlier node numbers), whether it fails for good,
    whether it has ``allow_failure``, and how long it sleeps."""

    number: int
    parents: tuple[int, ...]
    fails: bool
    allow_failure: bool
    seconds: float


def random_dag(seed: int, size: int) -> list[Node]:
    """A DAG of ``size`` members: each has 0-3 random earlier parents (0 makes a root), fails
    with probability 0.05, has ``allow_failure`` with probability 0.3 when it has parents,
    and sleeps 20-200 ms (one in 20 sleeps a second, so a kill often lands on it)."""
    rng = random.Random(seed)
    nodes = []
    for number in range(size):
        k = min(number, rng.choice((0, 1, 1, 2, 2, 3)))
        parents = tuple(sorted(rng.sample(range(number), k)))
        seconds = 1.0 if rng.random() < 0.05 else rng.uniform(0.02, 0.2)
        fails = rng.random() < 0.05
        allow_failure = bool(parents) and rng.random() < 0.3
        nodes.append(Node(number, parents, fails, allow_failure, seconds))
    return nodes


def expected_statuses(dag: Sequence[Node]) -> list[TaskStatus]:
    """How each member must end: it runs once every parent ended if each succeeded or it has
    ``allow_failure`` (then it fails or succeeds as planned); otherwise a parent's failure
    cancels it (the rule of `sitq.workflow_state`, applied down the graph)."""
    statuses: list[TaskStatus] = []
    for node in dag:
        runs = node.allow_failure or all(statuses[p] is TaskStatus.SUCCEEDED for p in node.parents)
        if not runs:
            statuses.append(TaskStatus.CANCELLED)
        else:
            statuses.append(TaskStatus.FAILED if node.fails else TaskStatus.SUCCEEDED)
    return statuses


@dataclass(frozen=True)
class Event:
    """One line of the event file: ``kind`` is start, end or fail; ``position`` its place in
    the file (the order the lines were written in, across processes)."""

    kind: str
    task_id: str
    attempt: int
    pid: int
    node: int
    received: list[Any]
    position: int


def read_events(path: Path) -> list[Event]:
    """Every line written to the event file so far (a line being written is left out)."""
    if not path.exists():
        return []
    events = []
    for position, line in enumerate(path.read_text().splitlines(keepends=True)):
        if not line.endswith("\n"):
            break
        kind, task_id, attempt, pid, node, received = line.split(" ", 5)
        events.append(
            Event(kind, task_id, int(attempt), int(pid), int(node), json.loads(received), position)
        )
    return events


def running(events: Sequence[Event]) -> dict[int, set[str]]:
    """The tasks whose attempt logged its start and not its end, by process."""
    ended = {(e.task_id, e.attempt) for e in events if e.kind != "start"}
    found: dict[int, set[str]] = {}
    for e in events:
        if e.kind == "start" and (e.task_id, e.attempt) not in ended:
            found.setdefault(e.pid, set()).add(e.task_id)
    return found


@dataclass
class Fleet:
    """The worker processes of one run, with their stderr in ``folder/worker-N.err``."""

    folder: Path
    env: dict[str, str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    everyone: list[subprocess.Popen[bytes]] = field(default_factory=list)
    killed: set[int] = field(default_factory=set)
    hit: set[str] = field(default_factory=set)

    def start(self) -> subprocess.Popen[bytes]:
        """One more ``sitq worker`` process: short leases and quick recovery, so a killed
        worker's members run again within seconds; many attempts, so no member goes dead
        because kills hit it."""
        command = [
            sys.executable, "-m", "sitq", "worker", "wfchaos_app:queue",
            "-c", str(CONCURRENCY), "--poll-interval", "0.1", "--no-scheduler",
            "--lease-seconds", str(LEASE), "--recovery-interval", "0.5",
            "--max-attempts", "100", "--graceful-shutdown", "1", "--no-log-errors",
        ]  # fmt: skip
        err = open(self.folder / f"worker-{len(self.everyone)}.err", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            command, cwd=self.folder, env=self.env, stdout=subprocess.DEVNULL, stderr=err
        )
        err.close()
        self.everyone.append(proc)
        return proc

    def start_all(self) -> None:
        """Start the `WORKERS` processes."""
        self.procs = [self.start() for _ in range(WORKERS)]

    def kill_one_running(self, events: Sequence[Event]) -> bool:
        """SIGKILL a live worker that runs a member no kill hit before, and start another in
        its place; False if there is none. (Hitting one member again and again would keep
        it, and its descendants, from ever running.)"""
        for pid, task_ids in running(events).items():
            proc = next((p for p in self.procs if p.pid == pid and p.poll() is None), None)
            if proc is None or task_ids <= self.hit:
                continue
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            self.killed.add(pid)
            self.hit |= task_ids
            self.procs[self.procs.index(proc)] = self.start()
            return True
        return False

    def check_alive(self) -> None:
        """Fail at once, with its log, if a worker exited by itself."""
        for proc in self.procs:
            assert proc.poll() is None, f"a worker exited ({proc.returncode}):\n{self.logs()}"

    def stop(self) -> None:
        """SIGTERM every worker still running and wait for it (SIGKILL after 20 s)."""
        for proc in self.everyone:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.everyone:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def logs(self) -> str:
        """The workers' stderr, the last 5,000 characters of each."""
        return "\n".join(
            f"--- {p.name}\n{p.read_text()[-5000:]}" for p in sorted(self.folder.glob("*.err"))
        )


@dataclass
class RunResult:
    """What one run left: each DAG's stored members (by node number), the event file's lines
    and the pids killed."""

    members: list[list[TaskRecord]]
    events: list[Event]
    killed: set[int]
    seconds: float


def dag_tasks(dag: Sequence[Node], workflow_id: str) -> list[Task]:
    """The members of ``dag`` as tasks of workflow ``workflow_id``, parents by id; a member
    with parents gets their results as a list (`PASS_RESULTS_HEADER`)."""
    ids = [new_task_id() for _ in dag]
    return [
        Task(
            "wfchaos_app:member",
            kwargs={"node": node.number, "fail": node.fails, "seconds": node.seconds},
            id=ids[node.number],
            parents=[ids[p] for p in node.parents],
            allow_failure=node.allow_failure,
            workflow_id=workflow_id,
            max_retries=0,
            meta={PASS_RESULTS_HEADER: "list"} if node.parents else {},
        )
        for node in dag
    ]


async def enqueue_dag(queue: TaskQueue, dag: Sequence[Node]) -> tuple[str, list[str]]:
    """Enqueue ``dag`` in three batches while the workers run (a member's parents are in its
    batch or stored earlier, some of them ended already); its workflow id and the members'
    task ids, by node number."""
    workflow_id = f"wfchaos-{new_task_id()}"
    tasks = dag_tasks(dag, workflow_id)
    third = len(tasks) // 3 + 1
    for start in range(0, len(tasks), third):
        await queue.enqueue_many(tasks[start : start + third])
        await asyncio.sleep(0.3)
    return workflow_id, [t.id for t in tasks]


async def stored(queue: TaskQueue, workflow_id: str, ids: Sequence[str]) -> list[TaskRecord]:
    """The stored members of one DAG, by node number."""
    by_id = {r.id: r for r in await queue.backend.workflow_tasks(workflow_id)}
    assert set(by_id) == set(ids), "workflow_tasks did not return exactly the DAG's members"
    return [by_id[i] for i in ids]


async def run_dags(
    folder: Path, url: str, dags: Sequence[Sequence[Node]], max_seconds: float, max_kills: int
) -> RunResult:
    """Run ``dags`` through a fleet of `WORKERS`, killing a worker that runs a member every
    `KILL_EVERY` seconds (``max_kills`` times at most: each kill of a member on the DAG's
    longest path adds a lease to the run), until every member ended (at most
    ``max_seconds``)."""
    (folder / "wfchaos_app.py").write_text(APP)
    events_path = folder / "events.log"
    fleet = Fleet(folder, clean_environment(WF_CHAOS_URL=url, WF_CHAOS_EVENTS=str(events_path)))
    async with TaskQueue(url) as queue:
        fleet.start_all()
        try:
            began = time.monotonic()
            enqueued = await asyncio.gather(*(enqueue_dag(queue, dag) for dag in dags))
            next_kill = began + KILL_EVERY
            while True:
                members = [await stored(queue, w, ids) for w, ids in enqueued]
                if all(r.status.is_final for records in members for r in records):
                    break
                fleet.check_alive()
                now = time.monotonic()
                if now - began > max_seconds:
                    raise AssertionError(
                        f"members still not ended after {max_seconds} s: "
                        f"{unfinished(members)}\n{fleet.logs()}"
                    )
                if (
                    now >= next_kill
                    and len(fleet.killed) < max_kills
                    and fleet.kill_one_running(read_events(events_path))
                ):
                    next_kill = now + KILL_EVERY
                await asyncio.sleep(0.2)
            seconds = time.monotonic() - began
        finally:
            fleet.stop()
        members = [await stored(queue, w, ids) for w, ids in enqueued]
    return RunResult(members, read_events(events_path), fleet.killed, seconds)


def unfinished(members: Sequence[Sequence[TaskRecord]]) -> dict[str, int]:
    """How many members are in each status that is not final."""
    counts: dict[str, int] = {}
    for records in members:
        for r in records:
            if not r.status.is_final:
                counts[r.status.value] = counts.get(r.status.value, 0) + 1
    return counts


def check_dag(dag: Sequence[Node], records: Sequence[TaskRecord], run: RunResult) -> None:
    """Every guarantee of the module docstring, for one DAG."""
    expected = expected_statuses(dag)
    wrong = {
        n: f"{r.status.value} (expected {expected[n].value}): {r.error}"
        for n, r in enumerate(records)
        if r.status is not expected[n]
    }
    assert not wrong, f"members ended otherwise than the DAG says: {wrong}"
    mine = {r.id for r in records}
    attempts: dict[tuple[str, int], list[Event]] = {}
    for event in run.events:
        if event.task_id in mine:
            attempts.setdefault((event.task_id, event.attempt), []).append(event)
    starts = [e for lines in attempts.values() for e in lines if e.kind == "start"]
    assert len(starts) == len(attempts), "an attempt of a member started twice"
    for node, record in zip(dag, records, strict=True):
        if record.status is TaskStatus.CANCELLED:
            check_cancelled(node, records, attempts)
        else:
            check_ran(node, records, attempts, run.killed)


def check_cancelled(
    node: Node, records: Sequence[TaskRecord], attempts: dict[tuple[str, int], list[Event]]
) -> None:
    """A cancelled member never started, and its error names one of its own parents that
    did not succeed."""
    record = records[node.number]
    blamed = {
        parent_failed_error(records[p].id, records[p].status)
        for p in node.parents
        if records[p].status is not TaskStatus.SUCCEEDED
    }
    assert record.error in blamed, (
        f"member {node.number} cancelled with {record.error!r}, not for a parent of its own "
        "that did not succeed"
    )
    assert not [key for key in attempts if key[0] == record.id], (
        f"cancelled member {node.number} started"
    )


def check_ran(
    node: Node,
    records: Sequence[TaskRecord],
    attempts: dict[tuple[str, int], list[Event]],
    killed: set[int],
) -> None:
    """A member that ran: its stored outcome is its last attempt's, every earlier attempt
    was on a killed worker, each attempt started after its parents ended, and the last one
    received its parents' results (`sitq.ParentFailed` for a parent that did not succeed)."""
    record = records[node.number]
    last = attempts.get((record.id, record.attempts), [])
    assert [e.kind for e in last] == ["start", "fail" if node.fails else "end"], (
        f"member {node.number}: attempt {record.attempts} logged {last}"
    )
    mine = [lines[0] for key, lines in attempts.items() if key[0] == record.id]
    for start in mine:
        assert start.attempt == record.attempts or (
            start.attempt < record.attempts and start.pid in killed
        ), (
            f"member {node.number} ran attempt {start.attempt} besides its stored attempt "
            f"{record.attempts}, on a worker that was not killed"
        )
    for p in node.parents:
        check_after(node.number, record, mine, records[p], attempts)
    if not node.fails:
        expected = [passed_result(records[p], p) for p in node.parents]
        assert last[-1].received == ([expected] if node.parents else []), (
            f"member {node.number} received {last[-1].received}, not its parents' results"
        )


def passed_result(parent: TaskRecord, number: int) -> object:
    """What a child is passed for ``parent`` (member ``number``), as the event file shows it:
    its result (its number), or the repr of a `sitq.ParentFailed` naming it."""
    if parent.status is TaskStatus.SUCCEEDED:
        return number
    return repr(ParentFailed(parent.id, parent.status, parent.error))


def check_after(
    number: int,
    child: TaskRecord,
    starts: Sequence[Event],
    parent: TaskRecord,
    attempts: dict[tuple[str, int], list[Event]],
) -> None:
    """Every attempt of member ``number`` (``starts``, ``child`` as stored) began after
    ``parent`` ended: in the event file's order, and by the stored clocks."""
    assert child.started_at is not None and parent.finished_at is not None, (
        f"member {number} ran with a parent {parent.status.value} and no finished_at"
    )
    if parent.status is not TaskStatus.CANCELLED:  # a cancelled parent never ran: no line
        ended = attempts[(parent.id, parent.attempts)][-1]
        for start in starts:
            assert start.position > ended.position, (
                f"member {number} (attempt {start.attempt}) started before its parent "
                f"{parent.id} ended"
            )
    assert child.started_at >= parent.finished_at - CLOCK_TOLERANCE, (
        f"member {number} is stored as started {parent.finished_at - child.started_at:.3f} s "
        f"before its parent {parent.id} finished"
    )


def check_run(dags: Sequence[Sequence[Node]], run: RunResult) -> str:
    """Check every DAG of a run; a line of figures."""
    for dag, records in zip(dags, run.members, strict=True):
        check_dag(dag, records, run)
    retried = sum(r.attempts > 1 for records in run.members for r in records)
    assert run.killed, "no worker was killed while running a member: nothing was tested"
    statuses = [r.status for records in run.members for r in records]
    joins = sum(
        len(n.parents) > 1 and r.status is not TaskStatus.CANCELLED
        for dag, records in zip(dags, run.members, strict=True)
        for n, r in zip(dag, records, strict=True)
    )
    return (
        f"{len(dags)} DAGs, {len(statuses)} members in {run.seconds:.1f} s: "
        f"{statuses.count(TaskStatus.SUCCEEDED)} succeeded, "
        f"{statuses.count(TaskStatus.FAILED)} failed, "
        f"{statuses.count(TaskStatus.CANCELLED)} cancelled, {joins} joins ran; "
        f"{len(run.killed)} SIGKILLs, {retried} members run again"
    )


def check_plan(dags: Sequence[Sequence[Node]]) -> None:
    """The seeds must plan what the test is about: failures, cancellations, joins, and
    members with ``allow_failure`` running after a parent that did not succeed."""
    statuses = [expected_statuses(dag) for dag in dags]
    flat = [s for run in statuses for s in run]
    assert TaskStatus.FAILED in flat and TaskStatus.CANCELLED in flat
    assert any(len(n.parents) > 1 for dag in dags for n in dag)
    assert any(
        n.allow_failure
        and s[n.number] is not TaskStatus.CANCELLED
        and any(s[p] is not TaskStatus.SUCCEEDED for p in n.parents)
        for dag, s in zip(dags, statuses, strict=True)
        for n in dag
    ), "no member with allow_failure runs after a failed parent"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty store the worker processes share (PostgreSQL tables dropped
    afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'chaos.db'}"
        return
    asyncio.run(require_postgres())
    prefix = new_prefix("wfchaos")
    try:
        yield f"{PG_URL}?table_prefix={prefix}"
    finally:
        asyncio.run(drop_prefix(prefix))


def test_a_random_dag_survives_sigkills(store_url: str, tmp_path: Path) -> None:
    dags = [random_dag(seed=15, size=120)]
    check_plan(dags)
    run = asyncio.run(run_dags(tmp_path, store_url, dags, 120, max_kills=2))
    print("\n" + check_run(dags, run))


@pytest.mark.slow
@pytest.mark.timeout(900)  # the soak's own bound is 600 s, past the suite's 300-s default
def test_random_dags_soak(store_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if not slow_requested(request.config):
        pytest.skip("the soak runs with `pytest -m slow` or SITQ_SOAK=1")
    rng = random.Random(1500)
    count = int(os.environ.get("SITQ_SOAK_DAGS", "24"))
    dags = [random_dag(seed, rng.randint(50, 200)) for seed in range(100, 100 + count)]
    check_plan(dags)
    run = asyncio.run(run_dags(tmp_path, store_url, dags, 600, max_kills=1000))
    print("\n" + check_run(dags, run))
