"""The bad input catalogue: every bad input tried, and the clear error it gets.

One table, `CASES`; each row is a test, and docs/bad-input.md shows the same table (checked by
`test_the_docs_table_matches`). The rows marked ``every_backend`` (values a store could not
hold alike) also run on SQLite and PostgreSQL, and must leave nothing stored there; the
commands that read a store must not crash on what an older version let in.

A row's error is an exception raised at the call that caused it, or, for what only a worker
can find out, the final status its task ends in; either way the message names the problem
(the ``says`` column is part of it).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from postgres_support import PG_URL, drop_prefix, new_prefix

from sitq import (
    MemoryBackend,
    Result,
    SQLiteBackend,
    SyncTaskQueue,
    Task,
    TaskStatus,
    Worker,
    current_task,
)
from sitq.cli import cli
from sitq.errors import (
    BackendNotFound,
    ConfigurationError,
    EventLoopMisuse,
    NoCurrentTask,
    QueueClosed,
    ResultExpired,
    ResultTimeout,
    SerializationError,
    SerializerNotFound,
    TaskNotFound,
    WorkerStateError,
)

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_memory]

DOC = Path(__file__).resolve().parents[1] / "docs" / "bad-input.md"


def f(x: Any = None) -> Any:
    return x


def returns_a_lock() -> threading.Lock:
    return threading.Lock()


def returns_too_much() -> bytes:
    return b"x" * 5000


@dataclass
class Env:
    """What a row's trigger gets: a fresh in-memory queue and a private folder."""

    queue: SyncTaskQueue
    tmp: Path

    def run(self, task_id: str) -> Result:
        """Run one task now with a fresh worker; its final result."""
        return Worker(self.queue).process_task(task_id)


@dataclass(frozen=True)
class Case:
    area: str
    bad_input: str  # as shown in the docs
    error: type[BaseException] | TaskStatus  # raised, or the status the task ends in
    says: str  # part of the message
    trigger: Callable[[Env], Any]
    every_backend: bool = False  # also run on SQLite and PostgreSQL, nothing stored


def closed(env: Env) -> SyncTaskQueue:
    env.queue.close()
    return env.queue


def expired(env: Env) -> Any:
    worker = Worker(env.queue, result_ttl=0.01, recovery_interval=0.01, poll_interval=0.01)
    task_id = env.queue.enqueue(f, 1)
    worker.process_task(task_id)
    worker.start()
    try:
        for _ in range(500):
            task = env.queue.get_task(task_id)
            try:
                env.queue.get_result(task_id, timeout=0)
            except ResultExpired:
                break
            assert task is not None
            threading.Event().wait(0.01)
    finally:
        worker.stop()
    return env.queue.get_result(task_id, timeout=0)


def in_a_loop(call: Callable[[], Any]) -> Any:
    async def main() -> Any:
        return call()

    return asyncio.run(main())


def declared_options(env: Env, **options: Any) -> Any:
    """``.options(**options)`` of a task declared on the row's queue."""
    return env.queue.task(f).options(**options)


def started_twice(env: Env) -> None:
    worker = Worker(env.queue)
    worker.start()
    try:
        worker.start()
    finally:
        worker.stop()


CASES: list[Case] = [
    # -- types ---------------------------------------------------------------------------------
    Case("types", "enqueue(42)", ConfigurationError, "needs a function to call",
         lambda e: e.queue.enqueue(42)),  # type: ignore[call-overload]
    Case("types", 'enqueue(f, priority="high")', ConfigurationError, "priority must be an int",
         lambda e: e.queue.enqueue(f, priority="high")),  # type: ignore[call-overload]
    Case("types", "enqueue(f, priority=1.5)", ConfigurationError, "priority must be an int",
         lambda e: e.queue.enqueue(f, priority=1.5)),  # type: ignore[call-overload]
    Case("types", "enqueue(f, max_retries=-1)", ConfigurationError,
         "max_retries must be an int >= 0", lambda e: e.queue.enqueue(f, max_retries=-1)),
    Case("types", "enqueue(f, timeout=0)", ConfigurationError,
         "timeout must be a number of seconds > 0", lambda e: e.queue.enqueue(f, timeout=0)),
    Case("types", "enqueue(f, timeout=True)", ConfigurationError,
         "timeout must be a number of seconds > 0", lambda e: e.queue.enqueue(f, timeout=True)),
    Case("types", "enqueue(f, dedupe_key=5)", ConfigurationError, "dedupe_key must be a string",
         lambda e: e.queue.enqueue(f, dedupe_key=5)),  # type: ignore[call-overload]
    Case("types", 'Task(f, args="ab")', ConfigurationError, "args must be a list or tuple",
         lambda e: Task(f, args="ab")),
    Case("types", "Task(f, kwargs=[1])", ConfigurationError, "kwargs must be a dict",
         lambda e: Task(f, kwargs=[1])),  # type: ignore[arg-type]
    Case("types", "enqueue_many([42])", ConfigurationError,
         "items must be Task objects, functions or (function, args[, kwargs]) tuples",
         lambda e: e.queue.enqueue_many([42])),  # type: ignore[list-item]
    Case("types", "enqueue(f, threading.Lock())", SerializationError, "cannot encode the call",
         lambda e: e.queue.enqueue(f, threading.Lock())),
    Case("types", 'json queue: enqueue(f, {1})', SerializationError,
         "Object of type set is not JSON serializable",
         lambda e: SyncTaskQueue(MemoryBackend(), serializer="json").enqueue(f, {1})),
    Case("types", "json queue: enqueue(lambda: 1)", SerializationError,
         "cannot be imported back",
         lambda e: SyncTaskQueue(MemoryBackend(), serializer="json").enqueue(lambda: 1)),
    Case("types", "a task returning a threading.Lock", TaskStatus.FAILED,
         "SerializationError: the task returned a lock",
         lambda e: e.run(e.queue.enqueue(returns_a_lock))),
    Case("types", "Worker(object())", ConfigurationError,
         "Worker needs a TaskQueue, SyncTaskQueue or Backend", lambda e: Worker(object())),  # type: ignore[arg-type]
    Case("types", "Worker(q, max_workers=0)", ConfigurationError,
         "max_workers must be an int >= 1", lambda e: Worker(e.queue, max_workers=0)),
    Case("types", "Worker(q, lease_seconds=-1)", ConfigurationError,
         "lease_seconds must be a number of seconds > 0",
         lambda e: Worker(e.queue, lease_seconds=-1)),
    Case("types", 'Worker(q, timeout="5")', ConfigurationError,
         "timeout must be a number of seconds > 0", lambda e: Worker(e.queue, timeout="5")),  # type: ignore[arg-type]
    Case("types", "Worker(q, result_ttl=0)", ConfigurationError,
         "result_ttl must be a number of seconds > 0", lambda e: Worker(e.queue, result_ttl=0)),
    Case("types", "Worker(q, on_error=3)", ConfigurationError, "on_error must be callable",
         lambda e: Worker(e.queue, on_error=3)),  # type: ignore[arg-type]
    Case("types", "Worker(q, queues=[])", ConfigurationError,
         "queues must be a list of queue names", lambda e: Worker(e.queue, queues=[])),
    Case("types", "Worker(q, lease_seconds=nan)", ConfigurationError,
         "lease_seconds must be a number of seconds > 0 and finite",
         lambda e: Worker(e.queue, lease_seconds=math.nan)),
    Case("types", "Worker(q, lease_seconds=inf)", ConfigurationError,
         "lease_seconds must be a number of seconds > 0 and finite",
         lambda e: Worker(e.queue, lease_seconds=math.inf)),
    Case("types", "Worker(q, timeout=nan)", ConfigurationError,
         "timeout must be a number of seconds > 0 and finite",
         lambda e: Worker(e.queue, timeout=math.nan)),
    Case("types", "Worker(q, retry_delay=nan)", ConfigurationError,
         "retry_delay must be a number of seconds >= 0 and finite",
         lambda e: Worker(e.queue, retry_delay=math.nan)),
    Case("types", "Worker(q, poll_interval=inf)", ConfigurationError,
         "poll_interval must be a number of seconds > 0 and finite",
         lambda e: Worker(e.queue, poll_interval=math.inf)),
    Case("types", "get_result(id, timeout=-1)", ConfigurationError,
         "timeout must be a finite number of seconds >= 0",
         lambda e: e.queue.get_result(e.queue.enqueue(f), timeout=-1)),
    Case("types", "get_result(id, timeout=nan)", ConfigurationError,
         "timeout must be a finite number of seconds >= 0",
         lambda e: e.queue.get_result(e.queue.enqueue(f), timeout=math.nan)),
    Case("types", "worker.run(duration=-1)", ConfigurationError,
         "duration must be a number of seconds >= 0", lambda e: Worker(e.queue).run(-1)),
    # -- sizes ---------------------------------------------------------------------------------
    Case("sizes", "an argument over max_payload_bytes (here 1,000)", ConfigurationError,
         "over this queue's max_payload_bytes",
         lambda e: SyncTaskQueue(MemoryBackend(), max_payload_bytes=1000).enqueue(f, b"x" * 2000)),
    Case("sizes", "a result over max_payload_bytes (here 1,000)", TaskStatus.FAILED,
         "over the queue's max_payload_bytes",
         lambda e: Env(q := SyncTaskQueue(MemoryBackend(), max_payload_bytes=1000), e.tmp).run(
             q.enqueue(returns_too_much))),
    Case("sizes", "TaskQueue(max_payload_bytes=0)", ConfigurationError,
         "max_payload_bytes must be an int >= 1 or None",
         lambda e: SyncTaskQueue(MemoryBackend(), max_payload_bytes=0)),
    Case("sizes", 'TaskQueue(secret_key="short")', ConfigurationError,
         "use at least 16 random bytes",
         lambda e: SyncTaskQueue(MemoryBackend(), secret_key="short")),
    # -- names ---------------------------------------------------------------------------------
    Case("names", 'TaskQueue("redis://x")', BackendNotFound, "No backend for 'redis://'",
         lambda e: SyncTaskQueue("redis://x")),
    Case("names", 'TaskQueue("sqlite://tasks.db")', ConfigurationError, "three or four slashes",
         lambda e: SyncTaskQueue("sqlite://tasks.db")),
    Case("names", "a SQLite file in a missing folder", ConfigurationError,
         "does not exist",
         lambda e: SyncTaskQueue(SQLiteBackend(e.tmp / "missing" / "t.db")).enqueue(f)),
    Case("names", 'SQLiteBackend(path, table="a;b")', ConfigurationError,
         "must be letters, digits and '_'", lambda e: SQLiteBackend(e.tmp / "t.db", table="a;b")),
    Case("names", 'TaskQueue(serializer="yaml")', SerializerNotFound,
         "no serializer named 'yaml'", lambda e: SyncTaskQueue(MemoryBackend(), serializer="yaml")),
    Case("names", 'enqueue(f, queue="")', ConfigurationError, "queue must be a non-empty string",
         lambda e: e.queue.enqueue(f, queue="")),
    Case("names", 'Worker(q, worker_type="fiber")', ConfigurationError,
         "unknown worker_type 'fiber'", lambda e: Worker(e.queue, worker_type="fiber")),
    Case("names", 'Worker(q, allowed_functions=["myapp.tasks"])', ConfigurationError,
         "is not a 'module:name' pattern",
         lambda e: Worker(e.queue, allowed_functions=["myapp.tasks"])),
    Case("names", 'enqueue("no_such_module:f")', TaskStatus.DEAD,
         "PayloadError: cannot find the task function 'no_such_module:f'",
         lambda e: e.run(e.queue.enqueue("no_such_module:f"))),
    Case("names", 'enqueue("os:getcwd") to a worker allowing "myapp.*:*"', TaskStatus.DEAD,
         "is not in this worker's allowed_functions",
         lambda e: Worker(e.queue, allowed_functions=["myapp.*:*"]).process_task(
             e.queue.enqueue("os:getcwd"))),
    Case("names", 'get_result("no-such-id")', TaskNotFound, "no task with id 'no-such-id'",
         lambda e: e.queue.get_result("no-such-id")),
    Case("names", 'process_task("no-such-id")', TaskNotFound, "no task with id 'no-such-id'",
         lambda e: Worker(e.queue).process_task("no-such-id")),
    # -- numbers and text a store must hold alike ------------------------------------------------
    Case("numbers", "enqueue(f, timeout=nan)", ConfigurationError,
         "timeout must be a number of seconds > 0 and finite",
         lambda e: e.queue.enqueue(f, timeout=math.nan), every_backend=True),
    Case("numbers", "enqueue(f, timeout=inf)", ConfigurationError,
         "timeout must be a number of seconds > 0 and finite",
         lambda e: e.queue.enqueue(f, timeout=math.inf), every_backend=True),
    Case("numbers", "enqueue(f, priority=2**63)", ConfigurationError,
         "priority must be an int between -9,223,372,036,854,775,807 and 9,223,372,036,854,775,807",
         lambda e: e.queue.enqueue(f, priority=2**63), every_backend=True),
    Case("numbers", "enqueue(f, priority=-2**63)", ConfigurationError,
         "priority must be an int between",
         lambda e: e.queue.enqueue(f, priority=-(2**63)), every_backend=True),
    Case("numbers", "enqueue(f, max_retries=2**31)", ConfigurationError,
         "max_retries must be an int between 0 and 2,147,483,646",
         lambda e: e.queue.enqueue(f, max_retries=2**31), every_backend=True),
    Case("numbers", "enqueue_many([Task(f, max_retries=2**63)])", ConfigurationError,
         "max_retries must be an int between 0 and 2,147,483,646",
         lambda e: e.queue.enqueue_many([Task(f, max_retries=2**63)]), every_backend=True),
    Case("numbers", "task.options(priority=10**30)", ConfigurationError,
         "priority must be an int between",
         lambda e: declared_options(e, priority=10**30), every_backend=True),
    Case("numbers", 'enqueue(f, queue="a\\ud800") (a lone surrogate)', ConfigurationError,
         "queue must be valid Unicode text (it has a lone surrogate",
         lambda e: e.queue.enqueue(f, queue="a\ud800"), every_backend=True),
    Case("numbers", 'enqueue(f, queue="a\\x00")', ConfigurationError,
         "queue must not contain NUL characters",
         lambda e: e.queue.enqueue(f, queue="a\x00"), every_backend=True),
    Case("numbers", 'enqueue(f, dedupe_key="a\\x00")', ConfigurationError,
         "dedupe_key must not contain NUL characters",
         lambda e: e.queue.enqueue(f, dedupe_key="a\x00"), every_backend=True),
    Case("numbers", 'enqueue(f, dedupe_key="\\udfff")', ConfigurationError,
         "dedupe_key must be valid Unicode text",
         lambda e: e.queue.enqueue(f, dedupe_key="\udfff"), every_backend=True),
    Case("numbers", 'enqueue(Task(f, id="a\\x00"))', ConfigurationError,
         "task id must not contain NUL characters",
         lambda e: e.queue.enqueue(Task(f, id="a\x00")), every_backend=True),
    Case("numbers", 'enqueue(Task(f, id=""))', ConfigurationError,
         "task id must be a non-empty string",
         lambda e: e.queue.enqueue(Task(f, id="")), every_backend=True),
    Case("numbers", 'enqueue("os:get\\x00cwd")', ConfigurationError, "is not an import path",
         lambda e: e.queue.enqueue("os:get\x00cwd"), every_backend=True),
    Case("numbers", '@q.task(name="a\\x00")', ConfigurationError,
         "task name= must not contain NUL characters",
         lambda e: e.queue.task(name="a\x00")(f), every_backend=True),
    # -- datetimes -----------------------------------------------------------------------------
    Case("datetimes", "enqueue(f, eta=datetime(2030, 1, 1))", ConfigurationError,
         "is a naive datetime; sitq cannot guess its time zone",
         lambda e: e.queue.enqueue(f, eta=dt.datetime(2030, 1, 1))),
    Case("datetimes", 'enqueue(f, eta="tomorrow")', ConfigurationError,
         "eta must be an aware datetime, a timedelta or epoch seconds",
         lambda e: e.queue.enqueue(f, eta="tomorrow")),  # type: ignore[call-overload]
    Case("datetimes", "enqueue(f, eta=True)", ConfigurationError,
         "eta must be an aware datetime, a timedelta or epoch seconds",
         lambda e: e.queue.enqueue(f, eta=True)),
    Case("datetimes", "enqueue(f, eta=inf)", ConfigurationError,
         "eta must be a time between 0001-01-02 and 9999-12-31 UTC",
         lambda e: e.queue.enqueue(f, eta=math.inf), every_backend=True),
    Case("datetimes", "enqueue(f, eta=-1e300)", ConfigurationError,
         "eta must be a time between 0001-01-02 and 9999-12-31 UTC",
         lambda e: e.queue.enqueue(f, eta=-1e300), every_backend=True),
    Case("datetimes", "enqueue(f, eta=nan)", ConfigurationError,
         "eta must be a time between 0001-01-02 and 9999-12-31 UTC",
         lambda e: e.queue.enqueue(f, eta=math.nan), every_backend=True),
    Case("datetimes", "enqueue(f, eta=10**400)", ConfigurationError,
         "eta must be a time between 0001-01-02 and 9999-12-31 UTC",
         lambda e: e.queue.enqueue(f, eta=10**400), every_backend=True),
    Case("datetimes", "enqueue(f, eta=timedelta.max)", ConfigurationError,
         "eta must be a time between 0001-01-02 and 9999-12-31 UTC",
         lambda e: e.queue.enqueue(f, eta=dt.timedelta.max), every_backend=True),
    Case("datetimes", "Task(f, eta=datetime.max with UTC)", ConfigurationError,
         "eta must be a time between 0001-01-02 and 9999-12-31 UTC",
         lambda e: Task(f, eta=dt.datetime.max.replace(tzinfo=dt.timezone.utc))),
    Case("datetimes", "task.options(eta=nan)", ConfigurationError,
         "eta must be a time between 0001-01-02 and 9999-12-31 UTC",
         lambda e: declared_options(e, eta=math.nan), every_backend=True),
    # -- results -------------------------------------------------------------------------------
    Case("results", "get_result(id, timeout=0) of a pending task", ResultTimeout,
         "is still pending after 0 s", lambda e: e.queue.get_result(e.queue.enqueue(f), timeout=0)),
    Case("results", "get_result(id) after result_ttl", ResultExpired, "its result expired",
         expired),
    Case("results", "current_task() outside a task", NoCurrentTask,
         "only available while a sitq worker runs a task", lambda e: current_task()),
    # -- closed queues and stopped workers -----------------------------------------------------
    Case("closed", "enqueue(f) after queue.close()", QueueClosed, "this TaskQueue was closed",
         lambda e: closed(e).enqueue(f)),
    Case("closed", "get_result(id) after queue.close()", QueueClosed,
         "this TaskQueue was closed", lambda e: closed(e).get_result("x")),
    Case("closed", "process_task(id) on a closed queue", QueueClosed, "this TaskQueue was closed",
         lambda e: Worker(closed(e)).process_task("x")),
    Case("closed", "worker.start() while it runs", WorkerStateError, "is already running",
         started_twice),
    Case("closed", "SyncTaskQueue.enqueue() inside a running event loop", EventLoopMisuse,
         "use `await TaskQueue.enqueue()` instead",
         lambda e: in_a_loop(lambda: e.queue.enqueue(f))),
    Case("closed", "worker.run() inside a running event loop", EventLoopMisuse,
         "use `await worker.start()` instead", lambda e: in_a_loop(lambda: Worker(e.queue).run(0))),
]  # fmt: skip


def label(case: Case) -> str:
    return case.bad_input


def error_name(case: Case) -> str:
    if isinstance(case.error, TaskStatus):
        return f"task {case.error.value}"
    return case.error.__name__


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    queue = SyncTaskQueue(MemoryBackend())
    yield Env(queue, tmp_path)
    queue.close()


@pytest.mark.parametrize("case", CASES, ids=label)
def test_bad_input_gets_a_clear_error(case: Case, env: Env) -> None:
    if isinstance(case.error, TaskStatus):
        result = case.trigger(env)
        assert isinstance(result, Result), f"{case.bad_input} returned {result!r}"
        assert result.status is case.error, result
        assert result.error and case.says in result.error, result.error
        return
    with pytest.raises(case.error) as caught:
        case.trigger(env)
    assert case.says in str(caught.value), str(caught.value)


#: Where the ``every_backend`` rows run again: a store each, with nothing in it.
BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    """An `Env` whose queue stores in a fresh SQLite file or PostgreSQL schema."""
    if request.param == "sqlite":
        queue = SyncTaskQueue(SQLiteBackend(tmp_path / "tasks.db"))
        yield Env(queue, tmp_path)
        queue.close()
        return
    pytest.importorskip("sitq_postgres")
    from sitq_postgres import PostgresBackend

    prefix = new_prefix("bad")
    queue = SyncTaskQueue(PostgresBackend(PG_URL, table_prefix=prefix))
    try:
        yield Env(queue, tmp_path)
    finally:
        queue.close()
        asyncio.run(drop_prefix(prefix))


@pytest.mark.needs_postgres
@pytest.mark.parametrize("case", [c for c in CASES if c.every_backend], ids=label)
def test_every_backend_refuses_it_and_stores_nothing(case: Case, store_env: Env) -> None:
    store_env.queue.enqueue(f, 0)  # the store exists, so a refusal is not a missing table
    with pytest.raises(case.error) as caught:  # type: ignore[arg-type]
        case.trigger(store_env)
    assert case.says in str(caught.value), str(caught.value)
    assert sum(store_env.queue.counts().values()) == 1


@pytest.mark.parametrize(
    ("args", "env", "option"),
    [
        (["--lease-seconds", "nan"], {}, "lease_seconds"),
        (["--lease-seconds", "inf"], {}, "lease_seconds"),
        (["--timeout", "nan"], {}, "timeout"),
        (["--retry-delay", "nan"], {}, "retry_delay"),
        (["--poll-interval", "inf"], {}, "poll_interval"),
        ([], {"SITQ_LEASE_SECONDS": "nan"}, "lease_seconds"),
        ([], {"SITQ_TIMEOUT": "nan"}, "timeout"),
        ([], {"SITQ_RETRY_DELAY": "nan"}, "retry_delay"),
        ([], {"SITQ_POLL_INTERVAL": "inf"}, "poll_interval"),
    ],
)
def test_the_worker_command_refuses_what_worker_refuses(
    args: list[str], env: dict[str, str], option: str
) -> None:
    result = CliRunner().invoke(cli, ["worker", "no_such_app:queue", *args], env=env)
    assert result.exit_code == 2, result.output
    assert f"{option} must be a number of seconds" in " ".join(result.output.split())


# -- what an older version stored ---------------------------------------------------------------

#: Times no check stopped before: far past and future, and infinities (SQLite keeps them).
STORED_TIMES = [1e300, -1e300, math.inf, -math.inf]


#: What an older sitq (or a hand) wrote: times out of range on one task, a failed one.
SET_PENDING = "UPDATE {table} SET available_at = {p1}, created_at = {p1} WHERE id = {p2}"
SET_FAILED = (
    "UPDATE {table} SET status = 'failed', error = 'boom', attempts = 1, "
    "started_at = {p1}, finished_at = {p1} WHERE id = {p2}"
)


def write_sqlite(db: Path, stored: float, pending: str, failed: str) -> None:
    """Write the out-of-range times into a SQLite file with plain sqlite3."""
    conn = sqlite3.connect(db)
    with conn:
        for statement, task_id in ((SET_PENDING, pending), (SET_FAILED, failed)):
            sql = statement.format(table="sitq_tasks", p1=":stored", p2=":id")
            conn.execute(sql, {"stored": stored, "id": task_id})
    conn.close()


def write_postgres(prefix: str, stored: float, pending: str, failed: str) -> None:
    """Write the out-of-range times into PostgreSQL tables with plain asyncpg."""
    import asyncpg

    async def write() -> None:
        conn = await asyncpg.connect(PG_URL)
        try:
            for statement, task_id in ((SET_PENDING, pending), (SET_FAILED, failed)):
                sql = statement.format(table=f"{prefix}tasks", p1="$1", p2="$2")
                await conn.execute(sql, stored, task_id)
        finally:
            await conn.close()

    asyncio.run(write())


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh SQLite file or PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tasks.db'}"
        return
    pytest.importorskip("sitq_postgres")
    prefix = new_prefix("read")
    try:
        yield f"{PG_URL}?table_prefix={prefix}"
    finally:
        asyncio.run(drop_prefix(prefix))


@pytest.mark.needs_postgres
@pytest.mark.parametrize("stored", STORED_TIMES, ids=repr)
def test_reading_never_crashes_on_a_stored_time_out_of_range(store_url: str, stored: float) -> None:
    with SyncTaskQueue(store_url) as queue:
        pending = queue.enqueue(f, 1)
        failed = queue.enqueue(f, 2)
    if store_url.startswith("sqlite"):
        write_sqlite(Path(store_url.removeprefix("sqlite:///")), stored, pending, failed)
    else:
        write_postgres(store_url.split("table_prefix=")[1], stored, pending, failed)
    with SyncTaskQueue(store_url) as queue:
        task = queue.get_task(pending)
        assert task is not None and isinstance(task.eta, dt.datetime)
        assert task.eta.year in (1, 9999) and task.created_at == task.eta
        done = queue.get_task(failed)
        assert done is not None and done.finished_at is not None
        assert queue.get_result(failed, timeout=0).finished_at == done.finished_at
    runner = CliRunner()
    for command in (
        ["status"],
        ["status", "--json"],
        ["inspect", pending],
        ["inspect", failed, "--json"],
        ["failed"],
        ["failed", "--json"],
    ):
        result = runner.invoke(cli, [*command, "--backend", store_url])
        assert result.exit_code == 0, (command, result.output, result.exception)


def doc_rows() -> list[tuple[str, str, str, str]]:
    """The rows of the catalogue table in docs/bad-input.md."""
    found = []
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not line.startswith("|") or set(cells[0]) <= {"-", " ", ":"}:
            continue
        if cells[0] == "Area":
            continue
        found.append(tuple(re.sub(r"^`(.*)`$", r"\1", c).replace("\\|", "|") for c in cells))
    return found  # type: ignore[return-value]


def test_the_docs_table_matches() -> None:
    expected = [(c.area, c.bad_input, error_name(c), c.says) for c in CASES]
    assert doc_rows() == expected, "docs/bad-input.md and CASES differ; regenerate the table"


def markdown_table() -> str:
    """The docs table for `CASES` (paste into docs/bad-input.md after a change)."""
    lines = ["| Area | Bad input | Error | Message says |", "|---|---|---|---|"]
    for c in CASES:
        lines.append(f"| {c.area} | `{c.bad_input}` | {error_name(c)} | {c.says} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
