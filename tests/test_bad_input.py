"""Bad input gets a clear error at the call that caused it, and nothing is stored.

Each error names the problem and the fix. Missing backend packages are simulated in a fresh
interpreter: ``SITQ_DISABLE_PLUGIN_AUTOLOAD=1`` (or a ``SITQ_PLUGINS`` allow-list) loads no
backend plugin, as if none were installed.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from sitq import SyncTaskQueue, Task, TaskQueue, TaskStatus
from sitq.eager import EagerTaskQueue
from sitq.errors import BackendNotFound, ConfigurationError, SerializationError

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_memory, pytest.mark.needs_postgres]

PythonRun = Callable[..., subprocess.CompletedProcess[str]]


def work(x: Any = None) -> Any:
    """An importable task function."""
    return x


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[SyncTaskQueue]:
    with SyncTaskQueue(f"sqlite:///{tmp_path / 'tasks.db'}") as q:
        yield q
        # whatever was refused left nothing behind
        assert sum(q.counts().values()) == 0


# -- backend URLs ------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["redis://localhost:6379/0", "rabbit://x", "REDIS://x"])
def test_an_unknown_scheme_names_it_and_the_choices(url: str) -> None:
    with pytest.raises(BackendNotFound) as caught:
        TaskQueue(url)
    message = str(caught.value)
    assert "'redis://'" in message or "'rabbit://'" in message
    assert "Choose one of: " in message
    assert "sqlite://" in message and "memory://" in message
    assert "pip install" not in message  # no distribution is known for these


def test_a_url_without_scheme_says_how_to_write_one() -> None:
    with pytest.raises(ConfigurationError, match=r"no scheme; write e\.g\. 'sqlite:///tasks\.db'"):
        TaskQueue("tasks.db")


def test_a_bad_sqlite_url_says_how_many_slashes() -> None:
    with pytest.raises(ConfigurationError, match="three or four slashes"):
        TaskQueue("sqlite://host/tasks.db")


def test_a_known_scheme_whose_package_is_missing_says_what_to_install(
    python_run: PythonRun,
) -> None:
    done = python_run(
        """
        from sitq import TaskQueue
        from sitq.errors import BackendNotFound
        for url in ("postgresql://localhost/test", "postgres://localhost/test", "memory://"):
            try:
                TaskQueue(url)
            except BackendNotFound as exc:
                print(exc)
        """,
        SITQ_PLUGINS="sqlite",
    )
    assert done.returncode == 0, done.stderr
    postgresql, postgres, memory = done.stdout.splitlines()
    for message in (postgresql, postgres):
        assert "Install it: pip install sitq-postgres." in message
        assert "SITQ_PLUGINS=sqlite" in message
        assert "Choose one of: sqlite://." in message
    assert "'memory://'" in memory and "pip install sitq-memory" in memory


def test_no_backend_installed_names_sitq_sqlite(python_run: PythonRun, tmp_path: Path) -> None:
    done = python_run(
        """
        from sitq import SyncTaskQueue, TaskQueue
        from sitq.errors import BackendNotFound
        for make in (TaskQueue, SyncTaskQueue):
            try:
                make()
            except BackendNotFound as exc:
                print(exc)
        """,
        SITQ_DISABLE_PLUGIN_AUTOLOAD="1",
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    for message in lines:
        assert "TaskQueue() with no backend uses 'sqlite:///sitq.db'" in message
        assert "pip install sitq-sqlite" in message
        assert "SITQ_DISABLE_PLUGIN_AUTOLOAD" in message
    assert not (tmp_path / "sitq.db").exists()


def test_importing_a_backend_whose_package_is_missing_names_the_package(
    python_run: PythonRun,
) -> None:
    # a None entry in sys.modules makes the import fail as if sitq-postgres were not installed
    done = python_run(
        """
        import sys
        sys.modules["sitq_postgres"] = None
        try:
            from sitq import PostgresBackend
        except ImportError as exc:
            print(type(exc).__name__, exc)
        from sitq import SQLiteBackend, MemoryBackend
        print(SQLiteBackend.__name__, MemoryBackend.__name__)
        """
    )
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert first == (
        "ImportError sitq.PostgresBackend comes with the sitq-postgres package: "
        "pip install sitq-postgres"
    )
    assert second == "SQLiteBackend MemoryBackend"


def test_an_unknown_attribute_of_sitq_is_an_attribute_error() -> None:
    import sitq

    with pytest.raises(AttributeError, match="has no attribute 'RedisBackend'"):
        sitq.RedisBackend  # noqa: B018


# -- eta ---------------------------------------------------------------------------------------


def test_a_naive_eta_is_refused(queue: SyncTaskQueue) -> None:
    naive = datetime.now() + timedelta(minutes=5)
    for call in (
        lambda: queue.enqueue(work, eta=naive),
        lambda: queue.enqueue(Task(work, eta=naive)),
        lambda: queue.enqueue_many([Task(work, eta=naive)]),
    ):
        with pytest.raises(ConfigurationError) as caught:
            call()
        message = str(caught.value)
        assert "naive datetime" in message and "timezone.utc" in message


def test_an_aware_eta_and_a_timedelta_are_accepted(tmp_path: Path) -> None:
    with SyncTaskQueue(f"sqlite:///{tmp_path / 'ok.db'}") as queue:
        soon = datetime.now(timezone.utc) + timedelta(hours=1)
        first = queue.enqueue(work, eta=soon)
        second = queue.enqueue(work, eta=timedelta(hours=1))
        for task_id in (first, second):
            task = queue.get_task(task_id)
            assert task is not None and isinstance(task.eta, datetime)
            assert abs((task.eta - soon).total_seconds()) < 60


def test_an_eta_of_the_wrong_type_is_refused(queue: SyncTaskQueue) -> None:
    with pytest.raises(ConfigurationError, match="eta must be an aware datetime, a timedelta"):
        queue.enqueue(work, eta="tomorrow")  # type: ignore[call-overload]


# -- what the serializer cannot encode -----------------------------------------------------------


def test_a_lambda_with_a_data_only_serializer(tmp_path: Path) -> None:
    for serializer in ("json", "msgpack"):
        with SyncTaskQueue(f"sqlite:///{tmp_path / 'data.db'}", serializer=serializer) as queue:
            with pytest.raises(SerializationError) as caught:
                queue.enqueue(lambda: 1)
            message = str(caught.value)
            assert f"the {serializer!r} serializer sends functions by import path" in message
            assert "<lambda>" in message and "serializer='cloudpickle'" in message
            assert sum(queue.counts().values()) == 0


def test_a_nested_function_with_json(tmp_path: Path) -> None:
    def nested() -> None:
        pass

    with (
        SyncTaskQueue("memory://", serializer="json") as queue,
        pytest.raises(SerializationError, match="cannot be imported back"),
    ):
        queue.enqueue(nested)


def test_an_argument_json_cannot_encode(tmp_path: Path) -> None:
    with SyncTaskQueue("memory://", serializer="json") as queue:
        with pytest.raises(SerializationError) as caught:
            queue.enqueue(work, {1, 2})
        message = str(caught.value)
        assert "test_bad_input:work" in message and "'json' serializer" in message
        assert "set is not JSON serializable" in message
        assert "cloudpickle encodes almost anything" in message


def test_an_open_file_with_cloudpickle(queue: SyncTaskQueue, tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("hello")
    for mode in ("r", "rb", "a"):
        with open(path, mode) as handle, pytest.raises(SerializationError) as caught:
            queue.enqueue(work, handle)
        message = str(caught.value)
        assert "'cloudpickle' serializer" in message
        assert "cannot send an open file" in message and "data.txt" in message
        assert "pass its path" in message


def test_a_lock_with_cloudpickle(queue: SyncTaskQueue) -> None:
    lock = threading.Lock()
    with pytest.raises(SerializationError) as caught:
        queue.enqueue(work, lock)
    assert "cannot pickle '_thread.lock' object" in str(caught.value)
    # a closure over a lock fails the same way, naming the function
    with pytest.raises(SerializationError, match=r"<lambda>.*_thread\.lock"):
        queue.enqueue(lambda: lock.locked())


def test_in_memory_buffers_still_encode() -> None:
    import io

    with SyncTaskQueue("memory://") as queue:
        assert queue.enqueue(work, io.BytesIO(b"data"))
        assert queue.enqueue(work, io.StringIO("text"))
        assert queue.counts()[TaskStatus.PENDING] == 2


# -- what is not a function ----------------------------------------------------------------------


@pytest.mark.parametrize("thing", [42, None, 3.5, b"bytes", ["work"], {"f": work}])
def test_a_non_callable_is_refused(queue: SyncTaskQueue, thing: object) -> None:
    with pytest.raises(ConfigurationError, match=r"function"):
        queue.enqueue(thing)  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError):
        queue.enqueue_many([(thing, (1,))])


@pytest.mark.parametrize("text", ["not a path", "work", "mod:", ":work", "mod:<lambda>"])
def test_a_string_that_is_not_an_import_path_is_refused(queue: SyncTaskQueue, text: str) -> None:
    with pytest.raises(ConfigurationError, match=r"is not an import path; write 'package\.module:"):
        queue.enqueue(text)
    with pytest.raises(ConfigurationError, match="is not an import path"):
        Task(text)


def test_an_import_path_is_accepted_without_importing_it(tmp_path: Path) -> None:
    # the producer need not have the worker's code: the path is checked for shape only
    with SyncTaskQueue("memory://") as queue:
        task_id = queue.enqueue("billing.invoices:send_reminder", 7)
        task = queue.get_task(task_id)
        assert task is not None and task.function == "billing.invoices:send_reminder"


# -- the errors come from the async API too -------------------------------------------------------


def test_the_async_api_raises_the_same_errors(tmp_path: Path) -> None:
    async def main() -> None:
        async with TaskQueue(f"sqlite:///{tmp_path / 'async.db'}") as queue:
            with pytest.raises(ConfigurationError, match="naive datetime"):
                await queue.enqueue(work, eta=datetime.now())
            with pytest.raises(SerializationError, match=r"_thread\.lock"):
                await queue.enqueue(work, threading.Lock())
            with pytest.raises(ConfigurationError, match="needs a function"):
                await queue.enqueue(42)  # type: ignore[call-overload]
            assert sum((await queue.counts()).values()) == 0

    asyncio.run(main())


# -- every enqueue path applies the same limits -------------------------------------------------

#: Options no backend stores alike, and a fragment of the error each gets.
OUT_OF_RANGE = [
    ({"eta": float("inf")}, "eta must be a time between"),
    ({"eta": float("nan")}, "eta must be a time between"),
    ({"eta": timedelta(days=10**8)}, "eta must be a time between"),
    ({"timeout": float("nan")}, "timeout must be a number of seconds > 0 and finite"),
    ({"priority": 2**64}, "priority must be an int between"),
    ({"max_retries": 2**40}, "max_retries must be an int between 0 and 2,147,483,646"),
    ({"queue": "q\x00"}, "queue must not contain NUL"),
    ({"dedupe_key": "\ud800"}, "dedupe_key must be valid Unicode text"),
]


async def refused_on_every_path(queue: TaskQueue, options: dict[str, Any], says: str) -> None:
    """``options`` are refused by enqueue, Task, enqueue_many and a declared task's .options()."""
    declared = queue.task(work)
    attempts: list[Callable[[], Any]] = [
        lambda: queue.enqueue(work, **options),
        lambda: queue.enqueue(Task(work, **options)),
        lambda: queue.enqueue_many([Task(work, **options)]),
        lambda: declared.options(**options).enqueue(),
    ]
    for attempt in attempts:
        with pytest.raises(ConfigurationError, match=re.escape(says)):
            await attempt()
    assert sum((await queue.counts()).values()) == 0


@pytest.mark.parametrize(("options", "says"), OUT_OF_RANGE, ids=lambda v: repr(v)[:40])
def test_every_enqueue_path_refuses_out_of_range_options(
    tmp_path: Path, options: dict[str, Any], says: str
) -> None:
    async def main() -> None:
        async with TaskQueue(f"sqlite:///{tmp_path / 'paths.db'}") as queue:
            await refused_on_every_path(queue, options, says)
        async with EagerTaskQueue(f"sqlite:///{tmp_path / 'eager.db'}") as eager:
            await refused_on_every_path(eager, options, says)

    asyncio.run(main())


def test_the_bounds_themselves_are_stored(tmp_path: Path) -> None:
    first, last = (
        datetime(1, 1, 2, tzinfo=timezone.utc),
        datetime(9999, 12, 31, tzinfo=timezone.utc),
    )
    with SyncTaskQueue(f"sqlite:///{tmp_path / 'edge.db'}") as queue:
        low = queue.enqueue(work, priority=-(2**63 - 1), max_retries=2**31 - 2, eta=first)
        high = queue.enqueue(work, priority=2**63 - 1, timeout=1e-3, eta=last)
        low_task, high_task = queue.get_task(low), queue.get_task(high)
        assert low_task is not None and low_task.priority == -(2**63 - 1)
        assert low_task.max_retries == 2**31 - 2 and low_task.eta == first
        assert high_task is not None and high_task.eta == last and high_task.priority == 2**63 - 1
