"""The bad input catalogue: every bad input tried, and the clear error it gets.

One table, `CASES`; each row is a test, and docs/bad-input.md shows the same table (checked by
`test_the_docs_table_matches`). A row's error is an exception raised at the call that caused
it, or, for what only a worker can find out, the final status its task ends in; either way
the message names the problem (the ``says`` column is part of it).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

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
         lambda e: e.queue.enqueue(42)),  # type: ignore[arg-type]
    Case("types", 'enqueue(f, priority="high")', ConfigurationError, "priority must be an int",
         lambda e: e.queue.enqueue(f, priority="high")),  # type: ignore[arg-type]
    Case("types", "enqueue(f, priority=1.5)", ConfigurationError, "priority must be an int",
         lambda e: e.queue.enqueue(f, priority=1.5)),  # type: ignore[arg-type]
    Case("types", "enqueue(f, max_retries=-1)", ConfigurationError,
         "max_retries must be an int >= 0", lambda e: e.queue.enqueue(f, max_retries=-1)),
    Case("types", "enqueue(f, timeout=0)", ConfigurationError,
         "timeout must be a number of seconds > 0", lambda e: e.queue.enqueue(f, timeout=0)),
    Case("types", "enqueue(f, timeout=True)", ConfigurationError,
         "timeout must be a number of seconds > 0", lambda e: e.queue.enqueue(f, timeout=True)),
    Case("types", "enqueue(f, dedupe_key=5)", ConfigurationError, "dedupe_key must be a string",
         lambda e: e.queue.enqueue(f, dedupe_key=5)),  # type: ignore[arg-type]
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
    Case("types", "get_result(id, timeout=-1)", ConfigurationError,
         "timeout must be a number of seconds >= 0",
         lambda e: e.queue.get_result(e.queue.enqueue(f), timeout=-1)),
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
    # -- datetimes -----------------------------------------------------------------------------
    Case("datetimes", "enqueue(f, eta=datetime(2030, 1, 1))", ConfigurationError,
         "is a naive datetime; sitq cannot guess its time zone",
         lambda e: e.queue.enqueue(f, eta=dt.datetime(2030, 1, 1))),
    Case("datetimes", 'enqueue(f, eta="tomorrow")', ConfigurationError,
         "eta must be an aware datetime, a timedelta or epoch seconds",
         lambda e: e.queue.enqueue(f, eta="tomorrow")),  # type: ignore[arg-type]
    Case("datetimes", "enqueue(f, eta=True)", ConfigurationError,
         "eta must be an aware datetime, a timedelta or epoch seconds",
         lambda e: e.queue.enqueue(f, eta=True)),
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
