"""Files that are not ours: a directory, bytes that are not SQLite, a damaged SQLite file,
another application's database, a table sitq did not create, and a schema newer than ours are
refused at connect with a `ForeignDatabase` naming the file, through the API and through every
``sitq`` command, and are left exactly as they were (no ``-wal``/``-shm`` beside them either).
Empty files, older schemas and files holding other sitq tables are used; an existing file
others can read or write is used with a warning."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_sqlite_migration import make_v1_database, stored_version

from sitq import TaskQueue
from sitq.cli import cli
from sitq.errors import ConfigurationError, ForeignDatabase
from sitq.testing import make_record
from sitq_sqlite import SQLiteBackend
from sitq_sqlite.schema import SCHEMA_VERSION

#: Where a file sitq refused could have been changed: itself and SQLite's files beside it.
SIDE_SUFFIXES = ("-wal", "-shm", "-journal")


def _corrupt(path: Path) -> None:
    path.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 16)  # a zip file, say


def _damaged(path: Path) -> None:
    _other_application(path)
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xa5" * (4096 - 100)  # SQLite's header kept, its first page garbage
    path.write_bytes(bytes(data))


def _directory(path: Path) -> None:
    path.mkdir()
    (path / "inside.txt").write_text("not sitq's")


def _other_application(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO users (name) VALUES ('ada')")
    conn.commit()
    conn.close()


def _other_application_in_wal_mode(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()  # the last connection: SQLite removes -wal and -shm


def _views_only(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE VIEW answer AS SELECT 42 AS value")
    conn.commit()
    conn.close()


def _table_named_like_ours(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE sitq_tasks (id TEXT, anything TEXT)")
    conn.commit()
    conn.close()


def _newer_schema(path: Path) -> None:
    asyncio.run(_create(path))
    conn = sqlite3.connect(path)
    conn.execute("UPDATE sitq_tasks_meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()


async def _create(path: Path, table: str = "sitq_tasks") -> None:
    backend = SQLiteBackend(path, table=table)
    try:
        await backend.enqueue(make_record())
    finally:
        await backend.close()


#: Each kind of file that is not ours, and words its error must contain.
FOREIGN: dict[str, tuple[Callable[[Path], None], str]] = {
    "corrupt": (_corrupt, "not a SQLite database"),
    "damaged": (_damaged, "cannot be read"),
    "directory": (_directory, "is a directory"),
    "other-application": (_other_application, "another application's SQLite database"),
    "other-application-wal": (_other_application_in_wal_mode, "tables: orders"),
    "views-only": (_views_only, "tables: answer"),
    "table-named-like-ours": (_table_named_like_ours, "that sitq did not create"),
    "newer-schema": (_newer_schema, "schema version 99, newer than this sitq-sqlite knows"),
}


def snapshot(path: Path) -> object:
    """Everything that refusing ``path`` must leave as it was."""
    beside = sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name))
    if path.is_dir():
        inside = sorted((p.name, p.read_bytes()) for p in path.iterdir())
        return beside, inside, path.stat().st_mtime_ns
    return beside, path.read_bytes(), path.stat().st_mtime_ns, stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=sorted(FOREIGN))
def foreign(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A file that is not ours, the words its error contains; checked untouched afterwards."""
    make, words = FOREIGN[request.param]
    path = tmp_path / "tasks.db"
    make(path)
    before = snapshot(path)
    yield path, words
    assert snapshot(path) == before
    assert not [s for s in SIDE_SUFFIXES if Path(f"{path}{s}").exists()]


def test_the_backend_refuses_it_untouched(foreign: tuple[Path, str]) -> None:
    path, words = foreign
    backend = SQLiteBackend(path)
    with pytest.raises(ForeignDatabase, match=words) as caught:
        asyncio.run(backend.connect())
    message = str(caught.value)
    assert str(path.resolve()) in message and "Fix:" in message and "\n" not in message
    assert caught.value.location == str(path.resolve())
    assert isinstance(caught.value, ConfigurationError)


def test_the_queue_refuses_it_untouched(foreign: tuple[Path, str]) -> None:
    path, words = foreign
    queue = TaskQueue(f"sqlite:///{path}")

    async def enqueue() -> None:
        try:
            await queue.enqueue(print, "never stored")
        finally:
            await queue.close()

    with pytest.raises(ForeignDatabase, match=words):
        asyncio.run(enqueue())


@pytest.fixture
def cli_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The commands run in ``tmp_path``, with no ``SITQ_*`` settings from around."""
    for name in list(os.environ):
        if name.startswith("SITQ_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def app_module(folder: Path, path: Path) -> str:
    """A module declaring a queue on ``path``; its locator (a new module name each time)."""
    name = f"foreign_app_{uuid.uuid4().hex[:8]}"
    (folder / f"{name}.py").write_text(
        "from sitq import TaskQueue\n\n"
        f"queue = TaskQueue({f'sqlite:///{path}'!r})\n\n\n"
        "@queue.task\n"
        "def add(a: int, b: int) -> int:\n"
        "    return a + b\n"
    )
    return f"{name}:queue"


#: Every command that opens the database, as arguments after ``--backend URL``.
COMMANDS = [
    ["status"],
    ["status", "--json"],
    ["inspect", "some-task-id"],
    ["failed"],
    ["retry", "some-task-id"],
    ["retry", "--all-failed"],
    ["cancel", "some-task-id"],
    ["purge", "--yes"],
]


def assert_refused_in_one_line(output: str, exception: BaseException | None, path: Path) -> None:
    assert isinstance(exception, SystemExit) and exception.code == 1, output
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and str(path.resolve()) in errors[0], output
    assert "left it untouched" in errors[0]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_refuses_it_in_one_line(
    foreign: tuple[Path, str], cli_folder: Path, command: list[str]
) -> None:
    path, words = foreign
    result = CliRunner().invoke(cli, [*command, "--backend", f"sqlite:///{path}"])
    assert_refused_in_one_line(result.output, result.exception, path)
    assert words in " ".join(result.output.split())


def test_a_command_on_the_apps_queue_refuses_it(
    foreign: tuple[Path, str], cli_folder: Path
) -> None:
    path, _ = foreign
    result = CliRunner().invoke(cli, ["status", "--app", app_module(cli_folder, path)])
    assert_refused_in_one_line(result.output, result.exception, path)


def test_the_worker_refuses_it_in_one_line(foreign: tuple[Path, str], cli_folder: Path) -> None:
    path, words = foreign
    app = app_module(cli_folder, path)
    result = CliRunner().invoke(cli, ["worker", app, "--duration", "5"])
    assert_refused_in_one_line(result.output, result.exception, path)
    assert words in " ".join(result.output.split())


def test_listing_tasks_does_not_open_it(foreign: tuple[Path, str], cli_folder: Path) -> None:
    """``sitq tasks`` reads the app's declarations only: it succeeds, and touches nothing."""
    path, _ = foreign
    result = CliRunner().invoke(cli, ["tasks", app_module(cli_folder, path), "--json"])
    assert result.exit_code == 0, result.output
    assert '"add"' in result.output or "add" in result.output


# -- files that are ours -------------------------------------------------------------------------


def test_an_empty_file_is_a_new_database(tmp_path: Path) -> None:
    path = tmp_path / "touched.db"
    path.touch()
    asyncio.run(_create(path))
    assert stored_version(path) == SCHEMA_VERSION


def test_a_file_with_another_sitq_table_takes_a_second_one(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    asyncio.run(_create(path, table="first_tasks"))
    asyncio.run(_create(path, table="second_tasks"))
    conn = sqlite3.connect(path)
    counts = [
        conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("first_tasks", "second_tasks")
    ]
    conn.close()
    assert counts == [1, 1]


def test_an_older_schema_is_migrated_through_the_cli(cli_folder: Path) -> None:
    path = cli_folder / "v1.db"
    make_v1_database(path)
    result = CliRunner().invoke(cli, ["status", "--json", "--backend", f"sqlite:///{path}"])
    assert result.exit_code == 0, result.output
    assert stored_version(path) == SCHEMA_VERSION == 5
    result = CliRunner().invoke(cli, ["inspect", "old", "--backend", f"sqlite:///{path}"])
    assert result.exit_code == 0, result.output


def test_an_older_schema_is_migrated_through_the_queue(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    make_v1_database(path)

    async def read() -> None:
        queue = TaskQueue(f"sqlite:///{path}")
        try:
            task = await queue.backend.get_task("old")
            assert task is not None and task.meta == {}
        finally:
            await queue.close()

    asyncio.run(read())
    assert stored_version(path) == SCHEMA_VERSION


# -- file modes ----------------------------------------------------------------------------------


def test_a_new_file_is_private_and_not_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "new.db"
    with caplog.at_level(logging.WARNING, logger="sitq.sqlite"):
        asyncio.run(_create(path))
        asyncio.run(_create(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [r for r in caplog.records if r.name == "sitq.sqlite"]


@pytest.mark.parametrize(
    ("mode", "word"), [(0o644, "read"), (0o660, "written"), (0o606, "written")]
)
def test_an_existing_file_others_can_use_is_warned_about_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: int, word: str
) -> None:
    path = tmp_path / f"shared-{mode:o}.db"
    asyncio.run(_create(path))
    path.chmod(mode)
    with caplog.at_level(logging.WARNING, logger="sitq.sqlite"):
        asyncio.run(_create(path))
        asyncio.run(_create(path))  # a worker opens the file twice: one warning is enough
    warnings = [r.getMessage() for r in caplog.records if r.name == "sitq.sqlite"]
    assert len(warnings) == 1, warnings
    assert f"mode {mode:04o}" in warnings[0] and f"can be {word}" in warnings[0]
    assert "chmod 600" in warnings[0] and str(path) in warnings[0]
    assert stat.S_IMODE(path.stat().st_mode) == mode  # reported, not changed


# -- many processes creating tables at once ---------------------------------------------------

#: One starter: ``python -c STARTER DB GO_FILE``; waits for GO_FILE, then creates (or finds)
#: tables ``t0`` to ``t19`` in turn, racing the other starters doing the same.
STARTER = """
import asyncio, os, sys, time
from sitq.testing import make_record
from sitq_sqlite import SQLiteBackend

async def main(db, go):
    while not os.path.exists(go):
        time.sleep(0.001)
    for i in range(20):
        backend = SQLiteBackend(db, table=f"t{i}")
        try:
            await backend.enqueue(make_record())
        finally:
            await backend.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_processes_creating_tables_at_once_never_see_half_of_them(tmp_path: Path) -> None:
    """Each process checks the file while others create the same tables in it: the tables of
    one name appear in one transaction, so no check sees a tasks table without its version
    table (and refuses it as not sitq's)."""
    path, go = tmp_path / "shared.db", tmp_path / "go"
    asyncio.run(_create(path, table="first"))  # non-empty: checks read the tables, not skip
    starters = [
        subprocess.Popen(
            [sys.executable, "-c", STARTER, str(path), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(6)
    ]
    go.touch()
    for starter in starters:
        _, err = starter.communicate(timeout=120)
        assert starter.returncode == 0, err.decode()
    conn = sqlite3.connect(path)
    assert [conn.execute(f"SELECT count(*) FROM t{i}").fetchone()[0] for i in range(20)] == [6] * 20
    conn.close()
