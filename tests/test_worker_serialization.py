"""Custom serialization: serializer= and deserializer= on a Worker.

Semantics: payloads are decoded with ``deserializer`` if given, else with the serializer named
in the task record; results are encoded with ``serializer`` if given, else with the task's own
serializer. Readers decode results with the serializer named in the record, so both must be
able to talk to it: checked against the queue's serializer when the worker is built.
"""

from __future__ import annotations

import logging
import pickle
import threading
from pathlib import Path
from typing import Any

import pytest
from test_worker_helpers import add, backend_fixture

from sitq import SQLiteBackend, SyncTaskQueue, TaskStatus, Worker
from sitq.backend import Backend
from sitq.errors import ConfigurationError, SerializationError

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_memory]

backend = backend_fixture()


class Prefixed:
    """A custom serializer: pickle behind a magic prefix (readable by nothing else)."""

    MAGIC = b"PFX1"

    def dumps(self, obj: Any) -> bytes:
        """Encode."""
        return self.MAGIC + pickle.dumps(obj)

    def loads(self, data: bytes) -> Any:
        """Decode."""
        if not data.startswith(self.MAGIC):
            raise ValueError("not a Prefixed payload")
        return pickle.loads(data[len(self.MAGIC) :])


class Unportable(Prefixed):
    """A serializer that cannot be sent to a child process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()


def make_pair(x: int) -> tuple[int, int]:
    """A task with a tuple result."""
    return (x, x * 2)


def test_the_guides_pickle_serializer_and_deserializer(backend: Backend) -> None:
    queue = SyncTaskQueue(backend)  # cloudpickle, the default
    worker = Worker(queue, serializer=pickle, deserializer=pickle)
    closure_base = 40
    ids = [queue.enqueue(make_pair, 3), queue.enqueue(lambda: closure_base + 2)]
    assert [r.value for r in worker.process_tasks(ids)] == [(3, 6), 42]
    assert [queue.get_result(i, timeout=0).value for i in ids] == [(3, 6), 42]
    queue.close()


def test_registered_names_work_too(tmp_path: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    worker = Worker(queue, serializer="pickle", deserializer="cloudpickle")
    assert worker.process_task(queue.enqueue(add, 1, 2)).value == 3
    queue.close()


def test_a_custom_serializer_object_end_to_end_from_another_process_view(tmp_path: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"), serializer=Prefixed())
    task_id = queue.enqueue(make_pair, 5)
    # a worker built from the bare backend has never heard of "Prefixed": tell it
    worker = Worker(queue.backend, serializer=Prefixed(), deserializer=Prefixed())
    assert worker.process_task(task_id).value == (5, 10)
    assert queue.get_result(task_id, timeout=0).value == (5, 10)
    queue.close()


def test_a_process_worker_with_a_custom_deserializer(tmp_path: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"), serializer=Prefixed())
    worker = Worker(queue.backend, worker_type="process", max_workers=1, deserializer=Prefixed())
    ids = [queue.enqueue(make_pair, 7), queue.enqueue(make_pair, 8)]
    assert [r.value for r in worker.process_tasks(ids)] == [(7, 14), (8, 16)]
    queue.close()


@pytest.mark.parametrize("option", ["serializer", "deserializer"])
@pytest.mark.parametrize("bad", [object(), 42, "no-such-format"])
def test_a_serializer_without_dumps_and_loads_is_rejected(
    option: str, bad: Any, tmp_path: Path
) -> None:
    with pytest.raises(Exception) as info:
        Worker(SQLiteBackend(tmp_path / "q.db"), **{option: bad})
    assert isinstance(info.value, (ConfigurationError, LookupError))
    message = str(info.value)
    assert ("dumps()/loads()" in message and option in message) or "choose one of" in message


def test_serializers_that_cannot_talk_to_the_queue_are_rejected(tmp_path: Path) -> None:
    cloud = SyncTaskQueue(SQLiteBackend(tmp_path / "a.db"))
    with pytest.raises(ConfigurationError, match=r"serializer='json' writes results"):
        Worker(cloud, serializer="json")
    as_json = SyncTaskQueue(SQLiteBackend(tmp_path / "b.db"), serializer="json")
    with pytest.raises(ConfigurationError, match=r"deserializer='pickle' cannot read"):
        Worker(as_json, deserializer=pickle)
    with pytest.raises(ConfigurationError, match="cannot read"):
        Worker(as_json, serializer=Prefixed())
    with pytest.raises(ConfigurationError, match="cannot read"):
        Worker(as_json, serializer="msgpack")
    assert Worker(as_json, serializer="json", deserializer="json")
    cloud.close()
    as_json.close()


def test_a_process_worker_rejects_a_deserializer_it_cannot_send(tmp_path: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"), serializer=Unportable())
    with pytest.raises(ConfigurationError, match="cannot be pickled"):
        Worker(queue, worker_type="process", deserializer=queue.async_queue.codec.serializer)
    Worker(queue, worker_type="thread", deserializer=queue.async_queue.codec.serializer)
    queue.close()


def test_lambdas_with_a_serializer_that_cannot_carry_them_fail_at_enqueue(tmp_path: Path) -> None:
    for name in ("pickle", "json", "msgpack"):
        queue = SyncTaskQueue(SQLiteBackend(tmp_path / f"{name}.db"), serializer=name)
        with pytest.raises(SerializationError, match="cloudpickle"):
            queue.enqueue(lambda: 1)
        queue.close()


def test_results_of_tasks_from_an_incompatible_queue_keep_their_own_format(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "q.db"
    json_queue = SyncTaskQueue(SQLiteBackend(db), serializer="json")
    task_id = json_queue.enqueue(add, 2, 2)
    worker = Worker(SyncTaskQueue(SQLiteBackend(db)), serializer=pickle)
    with caplog.at_level(logging.WARNING, logger="sitq.worker"):
        assert worker.process_task(task_id).value == 4
    assert json_queue.get_result(task_id, timeout=0).value == 4
    assert json_queue.get_task(task_id).status is TaskStatus.SUCCEEDED  # type: ignore[union-attr]
    assert "stored with 'json' instead" in caplog.text
    json_queue.close()
    worker.queue.close()


def test_a_worker_on_a_bare_backend_checks_each_tasks_serializer(tmp_path: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))  # cloudpickle
    worker = Worker(queue.backend, serializer=Prefixed())  # nothing to check against yet
    task_id = queue.enqueue(add, 20, 1)
    assert worker.process_task(task_id).value == 21
    assert queue.get_result(task_id, timeout=0).value == 21  # stored as cloudpickle reads it
    queue.close()
