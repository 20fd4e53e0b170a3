"""Promise 7, security defaults, as regression tests.

* The SQLite file and its -wal/-shm files are created readable by their owner only.
* With a secret key, a payload is checked before it is unpickled: an unsigned pickle whose
  unpickling would create a file (the canary) never creates it; a signed payload moved to
  another task, or signed with another key, is refused; so is a planted result.
* For untrusted writers, a data-only deserializer with ``allowed_functions`` never imports a
  module that is not allowed, and never runs a function defined elsewhere.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import sqlite3
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sitq import MemoryBackend, SQLiteBackend, SyncTaskQueue, TaskStatus, Worker
from sitq.backend import Outcome, TaskRecord
from sitq.errors import ConfigurationError, SignatureError
from sitq.signing import ENV_SECRET_KEY, HEADER, Signer
from sitq.task import new_task_id

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_memory]

KEY = "a-long-enough-secret-key-for-tests"
OTHER_KEY = "another-long-enough-secret-key"


class Canary:
    """Unpickling this creates the file at ``path`` (as hostile code would do worse)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[object, ...]:
        return (open, (self.path, "w"))


def canary_pickle(path: Path) -> bytes:
    return pickle.dumps((Canary(path), (), {}))


def greet(name: str) -> str:
    return f"hello {name}"


def store_raw(db: Path, record: TaskRecord) -> None:
    async def main() -> None:
        backend = SQLiteBackend(db)
        await backend.enqueue(record)
        await backend.close()

    asyncio.run(main())


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "tasks.db"


def test_the_canary_works(tmp_path: Path) -> None:
    """Unpickling the canary does create its file: the tests below would notice."""
    pickle.loads(canary_pickle(tmp_path / "sang"))
    assert (tmp_path / "sang").exists()


# -- file modes ------------------------------------------------------------------------------


def test_database_files_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        db = tmp_path / "private.db"
        queue = SyncTaskQueue(f"sqlite:///{db}")
        queue.enqueue(greet, "x")
        paths = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
        assert all(p.exists() for p in paths), "WAL mode makes -wal and -shm"
        for p in paths:
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, f"{p.name} is {oct(p.stat().st_mode)}"
        queue.close()
    finally:
        os.umask(old)


# -- signed payloads -------------------------------------------------------------------------


def test_unsigned_pickle_is_never_unpickled_with_a_key(db: Path, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    record = TaskRecord(new_task_id(), "x:y", canary_pickle(canary), "cloudpickle")
    store_raw(db, record)
    queue = SyncTaskQueue(SQLiteBackend(db), secret_key=KEY)
    (result,) = Worker(queue).process_tasks([record.id])
    assert result.status is TaskStatus.DEAD
    assert (
        result.error and result.error.startswith("SignatureError") and "not signed" in result.error
    )
    task = queue.get_task(record.id)  # reading it does not unpickle it either
    assert task is not None and task.function == "x:y"
    assert not canary.exists(), "the payload was unpickled"
    queue.close()


def test_without_a_key_pickle_runs_code(db: Path, tmp_path: Path) -> None:
    """What docs/security.md warns about: whoever writes a pickle runs code on the worker."""
    canary = tmp_path / "canary"
    record = TaskRecord(new_task_id(), "x:y", canary_pickle(canary), "cloudpickle")
    store_raw(db, record)
    queue = SyncTaskQueue(SQLiteBackend(db))
    (result,) = Worker(queue).process_tasks([record.id])
    assert result.status is TaskStatus.DEAD  # the object is no function...
    assert canary.exists()  # ...but unpickling it already ran its code
    queue.close()


def test_a_planted_result_is_never_unpickled_with_a_key(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    backend = MemoryBackend()
    queue = SyncTaskQueue(backend, secret_key=KEY)
    task_id = queue.enqueue(greet, "x")

    async def plant() -> None:
        (claimed,) = await backend.claim(worker_id="evil", limit=1, lease_seconds=30)
        assert claimed.lease_token
        await backend.finish(
            [Outcome.succeeded(task_id, claimed.lease_token, canary_pickle(canary))]
        )

    asyncio.run(plant())
    result = queue.get_result(task_id, timeout=0)
    assert result.value is None and result.error and "not signed" in result.error
    assert not canary.exists()


def test_a_signed_payload_swapped_between_tasks_is_refused(db: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(db), secret_key=KEY)
    a = queue.enqueue(greet, "a")
    b = queue.enqueue(greet, "b")
    conn = sqlite3.connect(db)
    with conn:
        (pa,), (pb,) = (
            conn.execute("SELECT payload FROM sitq_tasks WHERE id = ?", (t,)).fetchone()
            for t in (a, b)
        )
        assert pa.startswith(HEADER)
        conn.execute("UPDATE sitq_tasks SET payload = ? WHERE id = ?", (pb, a))
        conn.execute("UPDATE sitq_tasks SET payload = ? WHERE id = ?", (pa, b))
    conn.close()
    for result in Worker(queue).process_tasks([a, b]):
        assert result.status is TaskStatus.DEAD
        assert result.error and "bad signature" in result.error
    queue.close()


def test_a_payload_altered_in_the_database_is_refused(db: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(db), secret_key=KEY)
    task_id = queue.enqueue(greet, "alice")
    conn = sqlite3.connect(db)
    with conn:
        (payload,) = conn.execute("SELECT payload FROM sitq_tasks").fetchone()
        altered = payload.replace(b"alice", b"mally")
        assert altered != payload
        conn.execute("UPDATE sitq_tasks SET payload = ?", (altered,))
    conn.close()
    (result,) = Worker(queue).process_tasks([task_id])
    assert result.status is TaskStatus.DEAD and "bad signature" in (result.error or "")
    queue.close()


def test_wrong_key_and_missing_key_are_refused(db: Path) -> None:
    signed = SyncTaskQueue(SQLiteBackend(db), secret_key=KEY)
    ids = [signed.enqueue(greet, str(i)) for i in range(2)]
    (wrong,) = Worker(SyncTaskQueue(SQLiteBackend(db), secret_key=OTHER_KEY)).process_tasks(ids[:1])
    assert wrong.status is TaskStatus.DEAD and "bad signature" in (wrong.error or "")
    (missing,) = Worker(SyncTaskQueue(SQLiteBackend(db))).process_tasks(ids[1:])
    assert missing.status is TaskStatus.DEAD and "no secret key" in (missing.error or "")
    signed.close()


def test_signed_tasks_run_and_their_results_are_signed(db: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(db), secret_key=KEY)
    task_id = queue.enqueue(greet, "you")
    (result,) = Worker(queue).process_tasks([task_id])
    assert result.value == "hello you"
    assert queue.get_result(task_id, timeout=0).value == "hello you"
    conn = sqlite3.connect(db)
    (stored,) = conn.execute("SELECT result FROM sitq_tasks").fetchone()
    conn.close()
    assert stored.startswith(HEADER)
    unkeyed = SyncTaskQueue(SQLiteBackend(db)).get_result(task_id, timeout=0)
    assert unkeyed.value is None and "no secret key" in (unkeyed.error or "")
    queue.close()


def test_key_rotation_and_the_environment_variable(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_SECRET_KEY, KEY)
    old = SyncTaskQueue(SQLiteBackend(db))  # signs with $SITQ_SECRET_KEY
    task_id = old.enqueue(greet, "env")
    monkeypatch.delenv(ENV_SECRET_KEY)
    rotated = SyncTaskQueue(SQLiteBackend(db), secret_key=[OTHER_KEY, KEY])
    (result,) = Worker(rotated).process_tasks([task_id])
    assert result.value == "hello env"
    newer = rotated.enqueue(greet, "new")
    (result,) = Worker(SyncTaskQueue(SQLiteBackend(db), secret_key=OTHER_KEY)).process_tasks(
        [newer]
    )
    assert result.value == "hello new", "the first key signs"
    old.close()
    rotated.close()


@pytest.mark.parametrize("key", ["short", b"0123456789", 12345, [], ["ok-long-enough-key!", "x"]])
def test_bad_keys_are_refused_at_construction(key: object) -> None:
    with pytest.raises(ConfigurationError, match="secret_key"):
        SyncTaskQueue(MemoryBackend(), secret_key=key)  # type: ignore[arg-type]


def test_signature_error_is_a_payload_error() -> None:
    with pytest.raises(SignatureError):
        Signer.from_option(KEY).open_call("t", "m:f", "pickle", b"\x80\x05N.")


# -- data-only payloads for untrusted writers ------------------------------------------------


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``allowedmod`` (tasks) and ``canarymod`` (creates a file when imported)."""
    (tmp_path / "allowedmod.py").write_text(
        "from os import getcwd\n\n"
        "def greet(name):\n    return 'hello ' + name\n\n"
        "def _private():\n    return 'private'\n"
    )
    (tmp_path / "canarymod.py").write_text(
        f"open({str(tmp_path / 'imported')!r}, 'w').close()\n\ndef f():\n    return 'ran'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("allowedmod", "canarymod"):
        sys.modules.pop(name, None)


def test_allowed_functions_with_a_data_only_deserializer(db: Path, modules: Path) -> None:
    writer = SyncTaskQueue(SQLiteBackend(db), serializer="json")
    ok = writer.enqueue("allowedmod:greet", "json")
    not_allowed = writer.enqueue("canarymod:f")
    elsewhere = writer.enqueue("allowedmod:getcwd")
    private = writer.enqueue("allowedmod:_private")
    pickled = TaskRecord(new_task_id(), "x:y", canary_pickle(modules / "canary"), "pickle")
    store_raw(db, pickled)
    failures: list[str] = []
    worker = Worker(
        writer,
        deserializer="json",
        allowed_functions=["allowedmod:*"],
        # a failure hook sees each refused task, and must see it without its payload decoded
        on_error=lambda task_id, error, attempt: failures.append(task_id),
    )
    results = worker.process_tasks([ok, not_allowed, elsewhere, private, pickled.id])
    assert sorted(failures) == sorted([not_allowed, elsewhere, private, pickled.id])
    assert results[0].value == "hello json"
    for result in results[1:]:
        assert result.status is TaskStatus.DEAD, result
        assert result.error and result.error.startswith("PayloadError"), result.error
    assert "not in this worker's allowed_functions" in (results[1].error or "")
    assert "defined elsewhere" in (results[2].error or "")
    assert not (modules / "imported").exists() and "canarymod" not in sys.modules
    assert not (modules / "canary").exists(), "a record naming pickle was unpickled"
    writer.close()


def test_stored_errors_are_text(db: Path, modules: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(db))
    task_id = queue.enqueue(greet, "x")

    async def fail_it() -> None:
        backend = SQLiteBackend(db)
        (claimed,) = await backend.claim(worker_id="w", limit=1, lease_seconds=30)
        assert claimed.lease_token
        await backend.fail(task_id, claimed.lease_token, "canarymod:f", "cos\nsystem\n.")
        await backend.close()

    asyncio.run(fail_it())
    result = queue.get_result(task_id, timeout=0)
    assert (result.error, result.traceback) == ("canarymod:f", "cos\nsystem\n.")
    assert "canarymod" not in sys.modules and not (modules / "imported").exists()
    queue.close()


def test_allowed_functions_must_be_patterns() -> None:
    queue = SyncTaskQueue(MemoryBackend())
    for bad in (["myapp.tasks"], [":f"], [], [3]):
        with pytest.raises(ConfigurationError, match="allowed_functions"):
            Worker(queue, allowed_functions=bad)  # type: ignore[arg-type]
