"""The built-in serializers, end to end: each round trip, and records that remember theirs.

A task is decoded with the serializer its record names, whatever the worker's queue uses by
default; its result is stored with that same serializer, so whoever enqueued it can read it.
"""

from __future__ import annotations

import asyncio
import decimal
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from sitq import SQLiteBackend, SyncTaskQueue, TaskQueue, TaskStatus, Worker
from sitq.errors import SerializationError, SerializerNotFound
from sitq.plugins import get_plugin_manager

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_memory]

PythonRun = Callable[..., subprocess.CompletedProcess[str]]
BUILT_IN = ("cloudpickle", "pickle", "msgpack", "json")
WAIT = 30


def combine(numbers: list[int], label: str, *, scale: int = 1) -> dict[str, Any]:
    """A data-only task: works with every serializer."""
    return {"label": label, "total": sum(numbers) * scale, "items": list(numbers)}


class Point:
    """A user class: pickle and cloudpickle carry its instances."""

    def __init__(self, x: float, y: float) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    def __hash__(self) -> int:
        return hash((self.x, self.y))


def midpoint(a: Point, b: Point) -> Point:
    return Point((a.x + b.x) / 2, (a.y + b.y) / 2)


async def run_with_worker(
    db: Path, producer_serializer: str, worker_serializer: str, calls: list[tuple[Any, ...]]
) -> tuple[list[Any], list[str]]:
    """Enqueue ``calls`` with one serializer; run them with a worker whose queue defaults to
    another; return the results (read by the producer) and the serializers the records name."""
    async with (
        TaskQueue(SQLiteBackend(db), serializer=producer_serializer) as producer,
        TaskQueue(SQLiteBackend(db), serializer=worker_serializer) as worker_queue,
    ):
        ids = [await producer.enqueue(fn, *args, **kwargs) for fn, args, kwargs in calls]
        worker = Worker(worker_queue, poll_interval=0.05)
        serving = asyncio.create_task(worker.start())
        try:
            results = [await producer.get_result(i, timeout=WAIT) for i in ids]
        finally:
            await worker.stop()
            await serving
        records = [await producer.backend.get_task(i) for i in ids]
    assert all(r.status is TaskStatus.SUCCEEDED for r in results), [r.error for r in results]
    return [r.value for r in results], [r.serializer for r in records if r is not None]


@pytest.mark.parametrize("serializer", BUILT_IN)
def test_each_serializer_round_trips_through_a_worker_with_another_default(
    serializer: str, tmp_path: Path
) -> None:
    other = BUILT_IN[(BUILT_IN.index(serializer) + 1) % len(BUILT_IN)]
    calls = [
        (combine, ([1, 2, 3], "a"), {}),
        (combine, ([10, 20], "b"), {"scale": 3}),
        (combine, ([], "ünïcode ✓"), {}),
    ]
    values, names = asyncio.run(run_with_worker(tmp_path / "t.db", serializer, other, calls))
    assert names == [serializer] * 3
    assert values == [
        {"label": "a", "total": 6, "items": [1, 2, 3]},
        {"label": "b", "total": 90, "items": [10, 20]},
        {"label": "ünïcode ✓", "total": 0, "items": []},
    ]


@pytest.mark.parametrize("serializer", ["cloudpickle", "pickle"])
def test_pickle_serializers_carry_objects(serializer: str, tmp_path: Path) -> None:
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    calls: list[tuple[Any, ...]] = [
        (midpoint, (Point(0, 0), Point(4, 2)), {}),
        (max, ([decimal.Decimal("1.5"), decimal.Decimal("2.5")],), {}),
        (datetime.isoformat, (when,), {}),
    ]
    values, names = asyncio.run(run_with_worker(tmp_path / "t.db", serializer, "json", calls))
    assert values == [Point(2, 1), decimal.Decimal("2.5"), "2030-01-02T03:04:05+00:00"]
    assert names == [serializer] * 3


def test_each_record_stores_bytes_of_its_own_serializer(tmp_path: Path) -> None:
    async def body() -> dict[str, tuple[str, Any]]:
        stored = {}
        for name in BUILT_IN:
            async with TaskQueue(f"sqlite:///{tmp_path / 'b.db'}", serializer=name) as queue:
                task_id = await queue.enqueue(combine, [1], "x")
                record = await queue.backend.get_task(task_id)
                assert record is not None
                decoded = get_plugin_manager().serializer(name).serializer.loads(record.payload)
                stored[name] = (record.serializer, decoded)
        return stored

    stored = asyncio.run(body())
    for name in BUILT_IN:
        assert stored[name][0] == name
    # data-only serializers store the function as its import path, readable by anyone
    assert json.loads(json.dumps(stored["json"][1])) == ["test_serializers:combine", [[1], "x"], {}]
    assert stored["msgpack"][1] == ["test_serializers:combine", [[1], "x"], {}]
    # pickle-like ones store the function itself
    assert stored["cloudpickle"][1][0] is combine and stored["pickle"][1][0] is combine


def test_msgpack_and_json_turn_tuples_into_lists(tmp_path: Path) -> None:
    for serializer in ("msgpack", "json"):
        calls: list[tuple[Any, ...]] = [(combine, ((1, 2), "t"), {})]
        values, _ = asyncio.run(
            run_with_worker(tmp_path / f"{serializer}.db", serializer, serializer, calls)
        )
        assert values == [{"label": "t", "total": 3, "items": [1, 2]}]


def test_cloudpickle_carries_a_closure_to_another_process(
    python_run: PythonRun, tmp_path: Path
) -> None:
    db = tmp_path / "closure.db"
    factor = 7

    def scaled(x: int) -> int:  # defined here: no worker could import it
        return x * factor

    with SyncTaskQueue(SQLiteBackend(db)) as queue:
        ids = [queue.enqueue(scaled, n) for n in range(3)] + [queue.enqueue(lambda: factor + 1)]
    done = python_run(
        f"""
        from sitq import SyncTaskQueue, Worker
        from sitq_sqlite import SQLiteBackend
        with SyncTaskQueue(SQLiteBackend({str(db)!r}), serializer="json") as queue:
            Worker(queue, max_tasks={len(ids)}, poll_interval=0.05).run(duration=60)
        """
    )
    assert done.returncode == 0, done.stderr
    with SyncTaskQueue(SQLiteBackend(db)) as queue:
        assert [queue.get_result(i, timeout=0).value for i in ids] == [0, 7, 14, 8]


def test_json_sends_functions_by_path_to_a_worker_that_imports_them(
    python_run: PythonRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "reports.py").write_text(
        "def word_count(text):\n    return {'words': len(text.split())}\n"
    )
    db = tmp_path / "paths.db"
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        import reports  # type: ignore[import-not-found]

        with SyncTaskQueue(SQLiteBackend(db), serializer="json") as queue:
            by_function = queue.enqueue(reports.word_count, "one two three")
            by_path = queue.enqueue("reports:word_count", "four five")
    finally:
        sys.modules.pop("reports", None)
    done = python_run(
        f"""
        from sitq import SyncTaskQueue, Worker
        from sitq_sqlite import SQLiteBackend
        with SyncTaskQueue(SQLiteBackend({str(db)!r})) as queue:
            Worker(queue, max_tasks=2, poll_interval=0.05).run(duration=60)
        """,
        path=[tmp_path],
    )
    assert done.returncode == 0, done.stderr
    with SyncTaskQueue(SQLiteBackend(db), serializer="json") as queue:
        assert queue.get_result(by_function, timeout=0).value == {"words": 3}
        assert queue.get_result(by_path, timeout=0).value == {"words": 2}


def test_a_result_the_serializer_cannot_encode_fails_the_task_clearly(tmp_path: Path) -> None:
    async def body() -> None:
        async with TaskQueue(f"sqlite:///{tmp_path / 'r.db'}", serializer="json") as queue:
            task_id = await queue.enqueue(set, [1, 2])  # returns a set: not JSON
            worker = Worker(queue, poll_interval=0.05, log_errors=False)
            serving = asyncio.create_task(worker.start())
            result = await queue.get_result(task_id, timeout=WAIT)
            ok = await queue.enqueue(combine, [4], "after")  # the worker carries on
            assert (await queue.get_result(ok, timeout=WAIT)).is_success
            await worker.stop()
            await serving
        assert result.is_error
        assert "'json' serializer cannot encode" in (result.error or "")

    asyncio.run(body())


def test_a_serializer_object_and_unknown_names() -> None:
    class Upper:
        """Not registered: passed as an object."""

        name = "upper-json"
        carries_code = False

        def dumps(self, obj: Any) -> bytes:
            return json.dumps(obj).encode()

        def loads(self, data: bytes) -> Any:
            return json.loads(data)

    with SyncTaskQueue("memory://", serializer=Upper()) as queue:
        task_id = queue.enqueue(combine, [1], "o")
        assert queue.backend is not None
        record = asyncio.run(_record(queue, task_id))
        assert record == "upper-json"

    with pytest.raises(SerializerNotFound) as caught:
        TaskQueue("memory://", serializer="yaml")
    assert "no serializer named 'yaml'; choose one of: cloudpickle, json, msgpack, pickle" in str(
        caught.value
    )
    with pytest.raises(Exception, match="dumps"):
        TaskQueue("memory://", serializer=42)  # type: ignore[arg-type]


async def _record(queue: SyncTaskQueue, task_id: str) -> str:
    record = await queue.backend.get_task(task_id)
    assert record is not None
    return record.serializer


def test_serialization_error_is_a_type_error() -> None:
    assert issubclass(SerializationError, TypeError)
