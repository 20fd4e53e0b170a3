"""What PostgresBackend adds to the contract: URLs and options, the versioned schema, the
database clock, transactional enqueue, NOTIFY wake-ups, and surviving killed connections."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pg_tasks
import pytest
from pg_support import PG_URL, drop_tables, new_prefix

import sitq
from sitq import SyncTaskQueue, TaskQueue, TaskStatus, Worker
from sitq.backend import Outcome
from sitq.conformance import make_record
from sitq.errors import ConfigurationError
from sitq.plugins import PluginManager
from sitq_postgres import PostgresBackend
from sitq_postgres.finishes import recognize_applied
from sitq_postgres.inserts import insert
from sitq_postgres.schema import SCHEMA_VERSION

pytestmark = pytest.mark.postgres

TESTS = Path(__file__).parent


def run(coro: Any) -> Any:
    """Drive one test body, bounded."""
    return asyncio.run(asyncio.wait_for(coro, 60))


async def kill_connections(application_name: str) -> int:
    """pg_terminate_backend every connection with this application_name; how many."""
    conn = await asyncpg.connect(PG_URL)
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = $1 AND pid <> pg_backend_pid()",
            application_name,
        )
        return len(rows)
    finally:
        await conn.close()


# -- URLs, plugin, options -------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+asyncpg"])
def test_a_url_is_all_it_takes(scheme: str, prefix: str) -> None:
    """Both schemes come from the installed plugin; sitq options ride in the query."""
    url = PG_URL.replace("postgresql", scheme, 1) + f"?table_prefix={prefix}&pool_max_size=3"
    queue = TaskQueue(url, plugins=PluginManager())
    backend = queue.backend
    assert isinstance(backend, PostgresBackend)
    assert backend.names.prefix == prefix and backend.options.pool_max_size == 3
    assert "table_prefix" not in backend.options.dsn
    assert sitq.PostgresBackend is PostgresBackend


def test_plugin_registers_both_schemes() -> None:
    backends = PluginManager().backends
    for scheme in ("postgresql", "postgres"):
        assert backends[scheme].distribution == "sitq-postgres"
        assert backends[scheme].backend_class() is PostgresBackend


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"table_prefix": "Bad-Prefix"}, "table_prefix"),
        ({"table_prefix": "x" * 60}, "too long"),
        ({"pool_max_size": 0}, "pool_max_size"),
        ({"retry_timeout": -1}, "retry_timeout"),
    ],
)
def test_bad_options_say_what_to_fix(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        PostgresBackend(PG_URL, **kwargs)


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("postgresql+psycopg://localhost/db", "asyncpg"),
        ("postgresql://localhost/db?pgbouncer=maybe", "pgbouncer"),
        ("postgresql://localhost/db?pool_min_size=two", "pool_min_size"),
        ("mysql://localhost/db", "postgresql://"),
    ],
)
def test_bad_urls_say_what_to_fix(url: str, needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        PostgresBackend(url)


def test_pgbouncer_mode_uses_no_named_statements_and_no_listen(prefix: str) -> None:
    backend = PostgresBackend(f"{PG_URL}?table_prefix={prefix}&pgbouncer=true")
    assert backend._db.connect_kwargs()["statement_cache_size"] == 0
    assert backend._wakeups.listener is None

    async def body() -> None:
        async with TaskQueue(backend) as queue:
            task_id = await queue.enqueue(pg_tasks.add, 2, 3)
            await asyncio.wait_for(Worker(queue).process_task_async(task_id), 30)
            assert (await queue.get_result(task_id, timeout=10)).value == 5
            await backend.wait_for_work(0.01)  # polling only: returns after the timeout

    run(body())


# -- schema ------------------------------------------------------------------------------------


def test_schema_is_created_once_by_many_workers_at_once(prefix: str) -> None:
    async def body() -> None:
        backends = [PostgresBackend(PG_URL, table_prefix=prefix) for _ in range(8)]
        await asyncio.gather(*(b.connect() for b in backends))
        for b in backends:
            await b.close()
        conn = await asyncpg.connect(PG_URL)
        try:
            rows = await conn.fetch(f"SELECT version FROM {prefix}schema_version")
            assert [r["version"] for r in rows] == list(range(1, SCHEMA_VERSION + 1))
            indexes = {
                r["indexname"]
                for r in await conn.fetch(
                    "SELECT indexname FROM pg_indexes WHERE tablename = $1", f"{prefix}tasks"
                )
            }
            assert {f"{prefix}tasks_pending", f"{prefix}tasks_dedupe"} <= indexes
        finally:
            await conn.close()

    run(body())


def test_a_newer_schema_is_refused(prefix: str) -> None:
    async def body() -> None:
        backend = PostgresBackend(PG_URL, table_prefix=prefix)
        await backend.connect()
        await backend.close()
        conn = await asyncpg.connect(PG_URL)
        await conn.execute(
            f"INSERT INTO {prefix}schema_version (version) VALUES ($1)", SCHEMA_VERSION + 1
        )
        await conn.close()
        with pytest.raises(ConfigurationError, match="upgrade sitq-postgres"):
            await PostgresBackend(PG_URL, table_prefix=prefix).connect()

    run(body())


def test_table_prefixes_keep_applications_apart() -> None:
    first, second = new_prefix("a"), new_prefix("b")

    async def body() -> None:
        async with (
            TaskQueue(PostgresBackend(PG_URL, table_prefix=first)) as a,
            TaskQueue(PostgresBackend(PG_URL, table_prefix=second)) as b,
        ):
            await a.enqueue(pg_tasks.add, 1, 1)
            assert (await a.counts())[TaskStatus.PENDING] == 1
            assert (await b.counts())[TaskStatus.PENDING] == 0

    try:
        run(body())
    finally:
        run(drop_tables([first, second]))


# -- time --------------------------------------------------------------------------------------


def test_leases_and_due_times_follow_the_database_clock(pg_url: str) -> None:
    async def body() -> None:
        async with TaskQueue(pg_url) as queue:
            backend = queue.backend
            conn = await asyncpg.connect(PG_URL)
            db_now = await conn.fetchval("SELECT extract(epoch FROM clock_timestamp())::float8")
            await conn.close()
            assert abs(backend.clock() - db_now) < 1.0
            now_id = await queue.enqueue(pg_tasks.add, 1, 2)
            later_id = await queue.enqueue(pg_tasks.add, 1, 2, eta=timedelta(seconds=1.5))
            (task,) = await backend.claim(worker_id="w", limit=5, lease_seconds=20)
            assert task.id == now_id
            assert task.started_at is not None and task.lease_expires_at is not None
            assert task.lease_expires_at - task.started_at == pytest.approx(20)
            assert abs(task.started_at - backend.clock()) < 1.0
            deadline = time.monotonic() + 20
            while not (got := await backend.claim(worker_id="w", limit=5, lease_seconds=20)):
                assert time.monotonic() < deadline, "the eta task never became due"
                await asyncio.sleep(0.1)
            assert [t.id for t in got] == [later_id]

    run(body())


# -- transactional enqueue ---------------------------------------------------------------------


def test_enqueue_in_the_callers_transaction(pg_url: str) -> None:
    """Committed: the task exists and runs. Rolled back: it never existed."""

    async def body() -> None:
        async with TaskQueue(pg_url) as queue:
            conn = await asyncpg.connect(PG_URL)
            try:
                async with conn.transaction():
                    kept = await queue.enqueue(pg_tasks.add, 20, 22, connection=conn)
                    assert await queue.get_task(kept) is None, "visible before the commit"
                with pytest.raises(RuntimeError):
                    async with conn.transaction():
                        gone = await queue.enqueue_many(
                            [(pg_tasks.add, (1, 2)), (pg_tasks.add, (3, 4))], connection=conn
                        )
                        raise RuntimeError("the application's own work failed")
            finally:
                await conn.close()
            for task_id in gone:
                assert await queue.get_task(task_id) is None
            assert (await queue.counts())[TaskStatus.PENDING] == 1
            result = await Worker(queue).process_task_async(kept)
            assert result.value == 42

    run(body())


def test_enqueue_in_a_pooled_connection_wakes_a_worker_at_commit(pg_url: str) -> None:
    async def body() -> None:
        async with TaskQueue(pg_url) as queue:
            backend = queue.backend
            waiter = asyncio.ensure_future(_wait_until_woken(backend))
            await asyncio.sleep(0.2)  # the listener is up
            pool = await asyncpg.create_pool(PG_URL, min_size=1, max_size=1)
            try:
                async with pool.acquire() as conn, conn.transaction():
                    await queue.enqueue(pg_tasks.add, 1, 1, connection=conn)
                    await asyncio.sleep(0.3)
                    assert not waiter.done(), "woken before the commit"
                await asyncio.wait_for(waiter, 10)
            finally:
                await pool.close()

    run(body())


async def _wait_until_woken(backend: Any) -> None:
    await backend.wait_for_work(10)  # starts the listener, returns once it listens
    await backend.wait_for_work(60)


def test_enqueue_in_needs_an_asyncpg_connection(pg_url: str) -> None:
    async def body() -> None:
        async with TaskQueue(pg_url) as queue:
            with pytest.raises(ConfigurationError, match="asyncpg"):
                await queue.enqueue(pg_tasks.add, 1, 2, connection=object())

    run(body())


def test_backends_without_transactions_refuse_a_connection() -> None:
    async def body() -> None:
        async with TaskQueue("memory://") as queue:
            with pytest.raises(ConfigurationError, match="connection"):
                await queue.enqueue(pg_tasks.add, 1, 2, connection=object())

    run(body())


# -- wake-ups ----------------------------------------------------------------------------------


def test_an_idle_worker_hears_an_enqueue_from_another_process(pg_url: str) -> None:
    """The worker polls once a minute: only NOTIFY can bring the task in time."""

    async def body() -> None:
        async with TaskQueue(pg_url) as queue:
            worker = Worker(queue, poll_interval=60)
            serving = asyncio.ensure_future(worker.start())
            try:
                await asyncio.sleep(0.5)  # idle, listening
                script = (
                    "import asyncio, pg_tasks\nfrom sitq import TaskQueue\n"
                    "async def main():\n"
                    f"    async with TaskQueue({pg_url!r}) as q:\n"
                    "        print(await q.enqueue(pg_tasks.add, 40, 2))\n"
                    "asyncio.run(main())\n"
                )
                env = {**os.environ, "PYTHONPATH": str(TESTS)}
                child = await asyncio.create_subprocess_exec(
                    sys.executable, "-c", script, env=env, stdout=asyncio.subprocess.PIPE
                )
                out, _ = await asyncio.wait_for(child.communicate(), 60)
                assert child.returncode == 0
                task_id = out.decode().strip()
                result = await queue.get_result(task_id, timeout=20)
                assert result.value == 42
            finally:
                await worker.stop()
                await serving

    run(body())


def test_result_waiters_hear_finishes_in_other_processes(pg_url: str) -> None:
    """wait_for_finish wakes on the NOTIFY a finish sends."""

    async def body() -> None:
        async with TaskQueue(pg_url) as queue:
            backend = queue.backend
            task_id = await queue.enqueue(pg_tasks.add, 1, 2)
            other = PostgresBackend(pg_url)  # another process, as far as wake-ups go
            try:
                await backend.wait_for_finish(10)  # starts the listener, returns once it listens
                waiter = asyncio.ensure_future(backend.wait_for_finish(60))
                (task,) = await other.claim(worker_id="w", limit=1, lease_seconds=10)
                assert task.lease_token and await other.complete(task.id, task.lease_token, None)
                await asyncio.wait_for(waiter, 10)
            finally:
                await other.close()
            record = await backend.get_task(task_id)
            assert record is not None and record.status is TaskStatus.SUCCEEDED

    run(body())


# -- connections killed ------------------------------------------------------------------------


def test_killed_connections_lose_nothing(prefix: str) -> None:
    """Every connection of the backend, the listener included, killed again and again while
    tasks are enqueued, claimed and finished: every acknowledged enqueue is stored, every task
    finishes exactly once."""
    app = f"sitq-kill-{prefix}"
    url = f"{PG_URL}?table_prefix={prefix}&application_name={app}"

    async def body() -> None:
        async with TaskQueue(url) as queue:
            backend = queue.backend
            stop = asyncio.Event()

            async def killer() -> int:
                kills = 0
                while not stop.is_set():
                    kills += await kill_connections(app)
                    await asyncio.sleep(0.05)
                return kills

            killing = asyncio.ensure_future(killer())
            acknowledged: list[str] = []
            finished = 0
            for round_ in range(30):
                acknowledged += await queue.enqueue_many(
                    [(pg_tasks.add, (round_, i)) for i in range(20)]
                )
                acknowledged.append(await queue.enqueue(pg_tasks.add, round_, -1))
                claimed = await backend.claim(worker_id="w", limit=25, lease_seconds=60)
                applied = await backend.finish(
                    [Outcome.succeeded(t.id, t.lease_token or "", b"r") for t in claimed]
                )
                assert all(applied), "an outcome of a held lease was refused"
                finished += len(claimed)
            stop.set()
            assert await killing > 0
            while claimed := await backend.claim(worker_id="w", limit=100, lease_seconds=60):
                assert all(
                    await backend.finish(
                        [Outcome.succeeded(t.id, t.lease_token or "", b"r") for t in claimed]
                    )
                )
                finished += len(claimed)
            counts = await queue.counts()
            assert len(set(acknowledged)) == len(acknowledged) == 30 * 21
            assert counts[TaskStatus.SUCCEEDED] == finished == len(acknowledged)
            assert sum(counts.values()) == len(acknowledged)

    run(body())


def test_a_lost_reply_is_recognized_on_retry(pg_url: str) -> None:
    """What the retry of an operation does when its first attempt did commit."""

    async def body() -> None:
        backend = PostgresBackend(pg_url)
        await backend.connect()
        try:
            records = [make_record(dedupe_key="k"), make_record(dedupe_key="k"), make_record()]
            args = backend._enqueue_args(records)
            conn = await asyncpg.connect(PG_URL)
            try:
                first, _ = await insert(conn, backend._sql, records, args, retried=False, now=0.0)
                again, stored_any = await insert(
                    conn, backend._sql, records, args, retried=True, now=0.0
                )
                assert again == first == [records[0].id, records[0].id, records[2].id]
                assert not stored_any
                with pytest.raises(ConfigurationError, match="task id"):
                    await insert(conn, backend._sql, records, args, retried=False, now=0.0)
                strangers = [make_record(id=records[2].id)]
                with pytest.raises(ConfigurationError, match="task id"):
                    await insert(
                        conn,
                        backend._sql,
                        strangers,
                        backend._enqueue_args(strangers),
                        retried=True,
                        now=0.0,
                    )
                (task,) = await backend.claim(worker_id="w", limit=1, lease_seconds=30)
                outcome = Outcome.succeeded(task.id, task.lease_token or "", b"ok")
                assert await backend.finish([outcome]) == [True]
                applied = [False]
                await recognize_applied(conn, backend._sql, [outcome], applied)
                assert applied == [True]
                stale = Outcome.failed(task.id, task.lease_token or "", "late")
                applied = [False]
                await recognize_applied(conn, backend._sql, [stale], applied)
                assert applied == [False]
            finally:
                await conn.close()
        finally:
            await backend.close()

    run(body())


# -- several event loops -----------------------------------------------------------------------


def test_sync_queue_and_background_worker_share_one_backend(pg_url: str) -> None:
    """The blocking facade and a background worker each run their own event loop."""
    with SyncTaskQueue(pg_url) as queue:
        worker = Worker(queue, poll_interval=0.2)
        worker.start()
        try:
            ids = [queue.enqueue(pg_tasks.add, i, i) for i in range(20)]
            assert [queue.get_result(t, timeout=20).value for t in ids] == [
                2 * i for i in range(20)
            ]
        finally:
            worker.stop()
