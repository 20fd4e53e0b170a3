"""Flow control on SQLite beyond the conformance kit: limits held across processes, rules and
pauses changed by another connection seen at the next claim, no head-of-line blocking past
the claim's first window, keys stored with their tasks, unique tasks from threads."""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import queue
import threading
from pathlib import Path

import pytest
from sqlite_flow_claimer import claim_held

from sitq import TaskStatus
from sitq.backend import TaskRecord
from sitq.conformance import make_record
from sitq.conformance.kit.support import woken
from sitq.flow_control import LimitRule
from sitq_sqlite import SQLiteBackend

pytestmark = [pytest.mark.needs_sqlite]

PROCESSES = 3


def limited(*keys: str, **fields: object) -> TaskRecord:
    """A record holding limit ``keys``."""
    return dataclasses.replace(make_record(), limits=keys, **fields)  # type: ignore[arg-type]


async def _fill(path: Path) -> dict[str, list[str]]:
    backend = SQLiteBackend(path)
    try:
        await backend.set_limits(
            [LimitRule("pair", concurrency=2), LimitRule("rare", rate=1 / 3600, burst=5)]
        )
        return {
            "pair": await backend.enqueue_many([limited("pair") for _ in range(40)]),
            "rare": await backend.enqueue_many([limited("rare") for _ in range(40)]),
            "free": await backend.enqueue_many([make_record() for _ in range(40)]),
        }
    finally:
        await backend.close()


def test_limits_hold_across_processes(tmp_path: Path) -> None:
    """Processes claiming one file at once, never finishing, take exactly the concurrency of
    a key and the burst of a rate, and every task without keys."""
    path = tmp_path / "shared.db"
    ids = asyncio.run(_fill(path))
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=claim_held, args=(str(path), f"proc-{i}", start, results))
        for i in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    try:
        claimed = [tid for _ in procs for tid in results.get(timeout=120)[1]]
        for p in procs:
            p.join(30)
            assert p.exitcode == 0, f"claimer {p.name} exited with {p.exitcode}"
    except queue.Empty:
        pytest.fail(f"a claimer reported nothing (exit codes {[p.exitcode for p in procs]})")
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(5)
    assert len(claimed) == len(set(claimed)), "a task was claimed twice"
    taken = set(claimed)
    assert len(taken & set(ids["pair"])) == 2, "concurrency 2 did not hold across processes"
    assert len(taken & set(ids["rare"])) == 5, "a burst of 5 did not hold across processes"
    assert set(ids["free"]) <= taken


async def _claim(b: SQLiteBackend, limit: int = 10) -> list[TaskRecord]:
    return await b.claim(worker_id="w", limit=limit, lease_seconds=60)


def test_another_connections_changes_are_seen_at_the_next_claim(tmp_path: Path) -> None:
    """A worker's cached copy of rules and pauses is checked by every claim: a rule or a
    pause stored through another connection holds at once, and so does its removal."""
    asyncio.run(_another_connections_changes_are_seen_at_the_next_claim(tmp_path))


async def _another_connections_changes_are_seen_at_the_next_claim(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    worker, admin = SQLiteBackend(path), SQLiteBackend(path)
    try:
        await worker.enqueue_many([make_record(priority=1)])
        assert len(await _claim(worker)) == 1  # the worker has read the (empty) flow state
        await worker.enqueue_many([limited("k") for _ in range(4)])
        await admin.set_limits([LimitRule("k", concurrency=1)])
        assert len(await _claim(worker)) == 1, "a rule stored elsewhere was not seen"
        await admin.delete_limits(["k"])
        await admin.pause_queue("default", True)
        assert await _claim(worker) == [], "a pause stored elsewhere was not seen"
        await admin.pause_queue("default", False)
        assert len(await _claim(worker)) == 3
    finally:
        await worker.close()
        await admin.close()


def test_blocked_tasks_past_the_first_window_block_nothing(tmp_path: Path) -> None:
    """Hundreds of due tasks of an exhausted key, ahead of a task of a free key and one
    without keys, are read past (their key left out after the first), not waited on."""
    asyncio.run(_blocked_tasks_past_the_first_window_block_nothing(tmp_path))


async def _blocked_tasks_past_the_first_window_block_nothing(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "tasks.db")
    try:
        await backend.set_limits([LimitRule("busy", concurrency=1), LimitRule("calm", rate=5)])
        (first,) = await backend.enqueue_many([limited("busy", priority=5)])
        assert [r.id for r in await _claim(backend, 1)] == [first]
        await backend.enqueue_many([limited("busy", priority=5) for _ in range(500)])
        calm = await backend.enqueue_many([limited("calm")])
        plain = await backend.enqueue_many([make_record()])
        assert sorted(r.id for r in await _claim(backend)) == sorted(calm + plain)
    finally:
        await backend.close()


def test_a_tasks_keys_are_stored_with_it(tmp_path: Path) -> None:
    """`get_task` and `claim` give a task's keys back, each once, in their order."""
    asyncio.run(_a_tasks_keys_are_stored_with_it(tmp_path))


async def _a_tasks_keys_are_stored_with_it(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "tasks.db")
    try:
        (task_id,) = await backend.enqueue_many([limited("b", "a", "b")])
        stored = await backend.get_task(task_id)
        assert stored is not None and stored.limits == ("b", "a")
        (claimed,) = await _claim(backend)
        assert claimed.limits == ("b", "a")
    finally:
        await backend.close()


def test_unique_tasks_from_threads(tmp_path: Path) -> None:
    """Threads enqueueing the same unique task at once through `enqueue_many_blocking` store
    it once, and every one gets its id."""
    asyncio.run(_unique_tasks_from_threads(tmp_path))


async def _unique_tasks_from_threads(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "tasks.db")
    await backend.connect()
    try:
        got: list[str] = []
        lock = threading.Lock()

        def enqueue() -> None:
            record = make_record(dedupe_key="daily", created_at=backend.clock())
            record.unique_for = 3600.0
            (task_id,) = backend.enqueue_many_blocking([record])
            with lock:
                got.append(task_id)

        threads = [threading.Thread(target=enqueue) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(got) == 8 and len(set(got)) == 1
        assert (await backend.counts())[TaskStatus.PENDING] == 1
    finally:
        await backend.close()


def test_a_unique_batch_keeps_its_first_record(tmp_path: Path) -> None:
    """Two records of one batch with the same unique key: the second gets the first's id;
    a record that refuses nothing stored beside them is stored."""
    asyncio.run(_a_unique_batch_keeps_its_first_record(tmp_path))


async def _a_unique_batch_keeps_its_first_record(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "tasks.db")
    try:
        one, two = (make_record(dedupe_key="k", created_at=backend.clock()) for _ in range(2))
        for r in (one, two):
            r.unique_states = frozenset({TaskStatus.PENDING, TaskStatus.SUCCEEDED})
        assert await backend.enqueue_many([one, two]) == [one.id, one.id]
        assert await backend.get_task(two.id) is None
    finally:
        await backend.close()


def test_a_key_exhausted_by_the_claim_itself_blocks_nothing(tmp_path: Path) -> None:
    """One claim takes the one slot of a key with hundreds of tasks, then reads past them
    to the task behind."""
    asyncio.run(_a_key_exhausted_by_the_claim_itself_blocks_nothing(tmp_path))


async def _a_key_exhausted_by_the_claim_itself_blocks_nothing(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "tasks.db")
    try:
        await backend.set_limits([LimitRule("busy", concurrency=1)])
        busy = await backend.enqueue_many([limited("busy") for _ in range(300)])
        plain = await backend.enqueue_many([make_record()])
        assert sorted(r.id for r in await _claim(backend, 5)) == sorted([busy[0], *plain])
    finally:
        await backend.close()


@pytest.mark.parametrize("lookalike", ['x"a', 'b,"a"', '"a"', "a\\", "ä"])
def test_an_exhausted_key_leaves_out_only_its_own_tasks(tmp_path: Path, lookalike: str) -> None:
    """The tasks left out for an exhausted key ``a`` are found by their stored text: keys
    that contain it, quoted or between commas, are other keys."""
    asyncio.run(_an_exhausted_key_leaves_out_only_its_own_tasks(tmp_path, lookalike))


async def _an_exhausted_key_leaves_out_only_its_own_tasks(tmp_path: Path, lookalike: str) -> None:
    backend = SQLiteBackend(tmp_path / "tasks.db")
    try:
        await backend.set_limits([LimitRule("a", concurrency=1)])
        (first,) = await backend.enqueue_many([limited("a")])
        assert [r.id for r in await _claim(backend)] == [first]
        await backend.enqueue_many([limited("a") for _ in range(100)])
        other = await backend.enqueue_many([limited(lookalike, "z")])
        assert [r.id for r in await _claim(backend)] == other
        stored = await backend.get_task(other[0])
        assert stored is not None and stored.limits == (lookalike, "z")
    finally:
        await backend.close()


def test_an_ended_run_wakes_the_workers_waiting_for_work(tmp_path: Path) -> None:
    """With limits stored, a finished task may have freed a slot: workers waiting for work
    (another connection here) wake, rather than at their next poll."""
    asyncio.run(_an_ended_run_wakes_the_workers_waiting_for_work(tmp_path))


async def _an_ended_run_wakes_the_workers_waiting_for_work(tmp_path: Path) -> None:
    finisher, waiting = SQLiteBackend(tmp_path / "tasks.db"), SQLiteBackend(tmp_path / "tasks.db")
    try:
        await finisher.set_limits([LimitRule("k", concurrency=1)])
        await finisher.enqueue_many([limited("k") for _ in range(40)])
        await waiting.wait_for_work(0.01)  # listening from now on

        async def finish_one() -> None:
            (task,) = await _claim(finisher, 1)
            assert await finisher.complete(task.id, task.lease_token or "", None)

        await woken(asyncio.ensure_future(waiting.wait_for_work(60)), finish_one)
    finally:
        await finisher.close()
        await waiting.close()


@pytest.mark.parametrize("rules", [[], [LimitRule("tenant:*", concurrency=100)]])
def test_a_full_claim_of_keyless_tasks_is_one_statement(
    tmp_path: Path, rules: list[LimitRule]
) -> None:
    """The fast path: with no rule, or rules that no task of the claim holds a key of, a claim
    that fills up is the one statement it was before flow control."""
    asyncio.run(_a_full_claim_of_keyless_tasks_is_one_statement(tmp_path, rules))


async def _a_full_claim_of_keyless_tasks_is_one_statement(
    tmp_path: Path, rules: list[LimitRule]
) -> None:
    backend = SQLiteBackend(tmp_path / "tasks.db")
    try:
        await backend.set_limits(rules)
        await backend.enqueue_many([make_record() for _ in range(20)])
        assert len(await _claim(backend, 5)) == 5  # the flow state is read once, here
        statements: list[str] = []
        tracing = threading.Event()

        def trace(statement: str) -> None:
            if tracing.is_set():
                statements.append(statement)

        conn = backend._conn
        assert conn is not None
        await conn.set_trace_callback(trace)
        tracing.set()
        assert len(await _claim(backend, 5)) == 5
        tracing.clear()
        # SQLite's trace reports a statement again for each run of a subprogram inside it
        # (the correlated subquery reading a record's parents, once per returned row)
        assert len(set(statements)) == 1 and statements[0].startswith("UPDATE"), statements
    finally:
        await backend.close()


def test_a_limited_claim_looks_its_tasks_up_by_rowid(tmp_path: Path) -> None:
    """The UPDATE of a limited claim finds its tasks by rowid, never by walking every pending
    task in the status index (that cost grew with the backlog, on every claim)."""
    import sqlite3

    from sitq_sqlite.sql import Statements

    asyncio.run(_fill_one(tmp_path / "tasks.db"))
    with sqlite3.connect(tmp_path / "tasks.db") as conn:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN " + Statements("sitq_tasks").claim_rowids(2),
            ["w", 1.0, "token", 2.0, 1, 2],
        ).fetchall()
    assert "INTEGER PRIMARY KEY" in plan[0][3], plan


async def _fill_one(path: Path) -> None:
    """A tasks file with one limited task."""
    backend = SQLiteBackend(path)
    try:
        await backend.set_limits([LimitRule("k", None, None, 1)])
        await backend.enqueue(limited("k"))
    finally:
        await backend.close()
