"""Tables that are not ours, on the real server: a tasks table sitq did not create, a version
table of another shape, and a schema newer than ours are refused at connect with a
`ForeignDatabase`, through the API and the CLI, and left exactly as they were; tables of an
older schema are migrated through the CLI. Each test works under a throwaway table prefix."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import asyncpg
import pytest
from click.testing import CliRunner
from pg_support import PG_URL
from test_postgres_migration import make_v1_tables, versions

from sitq import TaskQueue
from sitq.cli import cli
from sitq.errors import ConfigurationError, ForeignDatabase
from sitq.testing import make_record
from sitq_postgres import PostgresBackend
from sitq_postgres.schema import SCHEMA_VERSION

pytestmark = pytest.mark.postgres


def run(coro: Awaitable[Any]) -> Any:
    """Drive one test step, bounded."""
    return asyncio.run(asyncio.wait_for(coro, 60))


async def execute(*statements: str) -> None:
    conn = await asyncpg.connect(PG_URL)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _foreign_tasks_table(prefix: str) -> None:
    await execute(
        f"CREATE TABLE {prefix}tasks (id serial PRIMARY KEY, title text)",
        f"INSERT INTO {prefix}tasks (title) VALUES ('buy milk')",
    )


async def _foreign_version_table(prefix: str) -> None:
    await execute(
        f"CREATE TABLE {prefix}schema_version (name text PRIMARY KEY, applied text)",
        f"INSERT INTO {prefix}schema_version VALUES ('0001_initial', 'yes')",
    )


async def _foreign_version_column(prefix: str) -> None:
    await execute(
        f"CREATE TABLE {prefix}schema_version (version text PRIMARY KEY)",
        f"INSERT INTO {prefix}schema_version VALUES ('2024.1')",
    )


async def _no_version_recorded(prefix: str) -> None:
    await execute(
        f"CREATE TABLE {prefix}schema_version (version integer PRIMARY KEY)",
        f"CREATE TABLE {prefix}tasks (id text PRIMARY KEY)",
    )


async def _newer_schema(prefix: str) -> None:
    backend = PostgresBackend(PG_URL, table_prefix=prefix)
    try:
        await backend.enqueue(make_record())
    finally:
        await backend.close()
    await execute(f"INSERT INTO {prefix}schema_version (version) VALUES ({SCHEMA_VERSION + 5})")


#: Each kind of tables that are not ours, and words its error must contain.
FOREIGN: dict[str, tuple[Callable[[str], Awaitable[None]], str]] = {
    "tasks-table": (_foreign_tasks_table, "tasks' exists with no"),
    "version-table": (_foreign_version_table, "schema_version' that sitq did not create"),
    "version-column": (_foreign_version_column, "schema_version' that sitq did not create"),
    "no-version-recorded": (_no_version_recorded, "records no version"),
    "newer-schema": (_newer_schema, f"schema version {SCHEMA_VERSION + 5}, newer than"),
}


async def snapshot(prefix: str) -> list[Any]:
    """Every relation under ``prefix`` (tables, indexes), its columns, and every row."""
    conn = await asyncpg.connect(PG_URL)
    try:
        relations = await conn.fetch(
            "SELECT c.relname, c.relkind, a.attname, a.atttypid FROM pg_class c "
            "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 "
            "WHERE c.relname LIKE $1 AND pg_table_is_visible(c.oid) ORDER BY 1, 3",
            prefix.replace("_", r"\_") + "%",
        )
        rows = []
        for (name,) in {(r["relname"],) for r in relations if r["relkind"] == "r"}:
            rows.append((name, sorted(map(tuple, await conn.fetch(f"SELECT * FROM {name}")))))
        return [list(map(tuple, relations)), sorted(rows)]
    finally:
        await conn.close()


@pytest.fixture(params=sorted(FOREIGN))
def foreign(request: pytest.FixtureRequest, prefix: str, pg_url: str) -> Iterator[tuple[str, str]]:
    """The URL of tables that are not ours, the words its error contains; checked untouched
    afterwards."""
    make, words = FOREIGN[request.param]
    run(make(prefix))
    before = run(snapshot(prefix))
    yield pg_url, words
    assert run(snapshot(prefix)) == before


def test_the_backend_refuses_them_untouched(foreign: tuple[str, str], prefix: str) -> None:
    url, words = foreign
    backend = PostgresBackend.from_url(url)

    async def connect() -> None:
        try:
            await backend.connect()
        finally:
            await backend.close()

    with pytest.raises(ForeignDatabase, match=words) as caught:
        run(connect())
    assert isinstance(caught.value, ConfigurationError)
    assert caught.value.location == prefix
    assert "Fix:" in str(caught.value) and "\n" not in str(caught.value)


def test_the_queue_refuses_them_untouched(foreign: tuple[str, str]) -> None:
    url, words = foreign

    async def enqueue() -> None:
        queue = TaskQueue(url)
        try:
            await queue.enqueue(print, "never stored")
        finally:
            await queue.close()

    with pytest.raises(ForeignDatabase, match=words):
        run(enqueue())


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in list(os.environ):
        if name.startswith("SITQ_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.mark.usefixtures("clean_environment")
@pytest.mark.parametrize("command", [["status"], ["failed"], ["inspect", "x"], ["purge", "--yes"]])
def test_commands_refuse_them_in_one_line(foreign: tuple[str, str], command: list[str]) -> None:
    url, words = foreign
    result = CliRunner().invoke(cli, [*command, "--backend", url])
    assert isinstance(result.exception, SystemExit) and result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "left them untouched" in errors[0], result.output
    assert words in " ".join(result.output.split())


@pytest.mark.usefixtures("clean_environment")
def test_older_tables_are_migrated_through_the_cli(prefix: str, pg_url: str) -> None:
    run(make_v1_tables(prefix))
    result = CliRunner().invoke(cli, ["inspect", "old", "--backend", pg_url])
    assert result.exit_code == 0, result.output
    assert run(versions(prefix)) == list(range(1, SCHEMA_VERSION + 1))
