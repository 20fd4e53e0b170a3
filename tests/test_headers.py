"""Task headers (``meta``): checked at the call, stored by every backend, read back by
`get_task`/`list_tasks`, seen by the running task as ``current_task().meta`` (in a child
process of a process worker too) and shown by ``sitq inspect``."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from test_worker_helpers import backend_fixture

import sitq
from sitq import SyncTaskQueue, Task, TaskQueue, Worker
from sitq.backend import Backend
from sitq.cli import cli
from sitq.errors import ConfigurationError
from sitq.meta import MAX_META_BYTES
from sitq_sqlite import SQLiteBackend

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_memory]

backend = backend_fixture()

META: dict[str, Any] = {"tenant": "zürich 東京", "trace": {"id": "abc", "spans": [1, 2.5, None]}}


def meta_of_current_task() -> dict[str, Any]:
    """The headers the running task sees."""
    return dict(sitq.current_task().meta)


async def async_meta_of_current_task() -> dict[str, Any]:
    """The headers the running coroutine sees."""
    return dict(sitq.current_task().meta)


@pytest.mark.parametrize(
    ("meta", "problem"),
    [
        ({1: "x"}, "must be strings"),
        ({"nested": {2: "x"}}, "must be strings"),
        ({"when": object()}, "cannot be encoded as JSON"),
        ({"ratio": math.nan}, "cannot be encoded as JSON"),
        ({"big": "x" * MAX_META_BYTES}, "over the limit"),
        (["not", "a", "mapping"], "must be a mapping"),
    ],
)
def test_bad_meta_fails_at_the_call(meta: Any, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        Task(function=print, meta=meta)


def test_meta_is_checked_again_when_enqueued(tmp_path: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    task = Task(function=print)
    task.meta = {"bad": {1, 2}}  # changed after it was built
    with pytest.raises(ConfigurationError, match="cannot be encoded as JSON"):
        queue.enqueue(task)
    queue.close()


def test_meta_round_trips_on_every_backend(backend: Backend) -> None:
    asyncio.run(round_trip(backend))


async def round_trip(backend: Backend) -> None:
    """Headers come back whole through every enqueue path and every read."""
    async with TaskQueue(backend) as queue:
        with_meta = await queue.enqueue(Task(function=print, meta=META))
        many = await queue.enqueue_many([Task(function=print, meta={"n": 1}), (print, ())])
        plain = await queue.enqueue(print)
        assert (await queue.get_task(with_meta)).meta == META  # type: ignore[union-attr]
        assert [(await queue.get_task(i)).meta for i in many] == [{"n": 1}, {}]  # type: ignore[union-attr]
        assert (await queue.get_task(plain)).meta == {}  # type: ignore[union-attr]
        listed = {r.id: r.meta for r in await queue.backend.list_tasks()}
        assert listed[with_meta] == META


@pytest.mark.parametrize("worker_type", ["async", "thread", "process"])
def test_running_task_reads_its_meta(tmp_path: Path, worker_type: str) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    function = async_meta_of_current_task if worker_type == "async" else meta_of_current_task
    task_id = queue.enqueue(Task(function=function, meta=META))
    bare_id = queue.enqueue(function)
    worker = Worker(queue, worker_type=worker_type, max_workers=1)
    assert worker.process_task(task_id).value == META
    assert worker.process_task(bare_id).value == {}
    queue.close()


def test_inspect_shows_meta(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    queue = SyncTaskQueue(url)
    task_id = queue.enqueue(Task(function=print, meta=META))
    queue.close()
    runner = CliRunner()
    shown = runner.invoke(cli, ["inspect", task_id, "--backend", url])
    assert shown.exit_code == 0, shown.output
    assert "meta" in shown.output and "zürich" in shown.output
    as_json = runner.invoke(cli, ["inspect", task_id, "--backend", url, "--json"])
    assert json.loads(as_json.output)["meta"] == META
