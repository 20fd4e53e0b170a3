"""Periodic schedules in SQLite: the statements on the schedule tables (`schema.schedule_ddl`)
and the one transaction that stores a fire with its task (`sitq.schedule_state`'s rules)."""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from sitq.backend import TaskRecord
from sitq.schedule_state import FIRE_MEMORY, ScheduleState, fire_is_stale

from .database import retry_locked, settled
from .inserts import insert
from .sql import Statements


@dataclass(frozen=True)
class ScheduleStatements:
    """The statements on the schedule tables of the tasks table ``table``."""

    table: str

    @property
    def states(self) -> str:
        """The ``_schedules`` table."""
        return f"{self.table}_schedules"

    @property
    def fires(self) -> str:
        """The ``_schedule_fires`` table."""
        return f"{self.table}_schedule_fires"

    @property
    def add(self) -> str:
        """Create the state of schedule ``?`` decided up to ``?`` unless it has one."""
        return (
            f"INSERT INTO {self.states} (name, decided_until) VALUES (?, ?) "
            "ON CONFLICT (name) DO NOTHING"
        )

    @property
    def define(self) -> str:
        """Create the state of schedule ``?1`` decided up to ``?2`` unless it has one, and
        set its definition to ``?3``."""
        return (
            f"INSERT INTO {self.states} (name, decided_until, definition) VALUES (?1, ?2, ?3) "
            "ON CONFLICT (name) DO UPDATE SET definition = excluded.definition"
        )

    @property
    def read(self) -> str:
        """Every state, by name."""
        return (
            "SELECT name, paused, decided_until, last_fire, last_task_id, definition "
            f"FROM {self.states} ORDER BY name"
        )

    @property
    def read_one(self) -> str:
        """``paused, decided_until`` of schedule ``?``."""
        return f"SELECT paused, decided_until FROM {self.states} WHERE name = ?"

    @property
    def fire_exists(self) -> str:
        """A row if fire ``(?, ?)`` is stored."""
        return f"SELECT 1 FROM {self.fires} WHERE schedule = ? AND fire_time = ?"

    @property
    def add_fire(self) -> str:
        """Store fire ``(schedule, fire_time, task_id)``."""
        return f"INSERT INTO {self.fires} (schedule, fire_time, task_id) VALUES (?, ?, ?)"

    @property
    def advance(self) -> str:
        """After fire time ``:t`` of ``:name`` stored as task ``:task``."""
        return (
            f"UPDATE {self.states} SET decided_until = max(decided_until, :t), "
            "last_task_id = CASE WHEN last_fire IS NULL OR :t > last_fire THEN :task "
            "ELSE last_task_id END, last_fire = max(coalesce(last_fire, :t), :t) "
            "WHERE name = :name"
        )

    @property
    def forget_fires(self) -> str:
        """Delete the fire rows of schedule ``?`` at or before ``?``."""
        return f"DELETE FROM {self.fires} WHERE schedule = ? AND fire_time <= ?"

    @property
    def skip(self) -> str:
        """Fires of schedule ``?`` are decided up to ``?``."""
        return f"UPDATE {self.states} SET decided_until = max(decided_until, ?2) WHERE name = ?1"

    @property
    def pause(self) -> str:
        """Set ``paused`` (``?2``) of schedule ``?1``; a resume decides up to ``?3``."""
        return (
            f"UPDATE {self.states} SET paused = ?2, decided_until = CASE WHEN ?2 THEN "
            "decided_until ELSE max(decided_until, ?3) END WHERE name = ?1"
        )


def state_from_row(row: tuple[object, ...]) -> ScheduleState:
    """A `ScheduleState` from a row of `ScheduleStatements.read`."""
    name, paused, decided_until, last_fire, last_task_id, definition = row
    return ScheduleState(
        name=str(name),
        paused=bool(paused),
        decided_until=float(decided_until),  # type: ignore[arg-type]
        last_fire=None if last_fire is None else float(last_fire),  # type: ignore[arg-type]
        last_task_id=None if last_task_id is None else str(last_task_id),
        definition=None if definition is None else str(definition),
    )


async def store_fire(
    db: aiosqlite.Connection,
    sql: Statements,
    statements: ScheduleStatements,
    schedule: str,
    fire_time: float,
    record: TaskRecord,
) -> str | None:
    """Store ``record`` for fire ``(schedule, fire_time)`` in one write transaction, or
    nothing (None) if the schedule is paused, the fire stale or already stored. The caller
    holds the connection's mutex."""
    # the common loser of a race (another scheduler stored this fire) learns it from a read,
    # without queueing for the write lock that claims and finishes need
    if await retry_locked(db.execute_fetchall, statements.fire_exists, (schedule, fire_time)):
        return None
    await retry_locked(db.execute, "BEGIN IMMEDIATE")
    try:
        task_id = await _store_fire(db, sql, statements, schedule, fire_time, record)
        await settled(db.execute("COMMIT" if task_id is not None else "ROLLBACK"))
    except BaseException:
        if db.in_transaction:
            await settled(db.execute("ROLLBACK"))
        raise
    return task_id


async def _store_fire(
    db: aiosqlite.Connection,
    sql: Statements,
    statements: ScheduleStatements,
    schedule: str,
    fire_time: float,
    record: TaskRecord,
) -> str | None:
    await settled(db.execute(statements.add, (schedule, fire_time)))
    state = await settled(db.execute_fetchall(statements.read_one, (schedule,)))
    ((paused, decided_until),) = state
    if paused or fire_is_stale(fire_time, decided_until):
        return None
    if await settled(db.execute_fetchall(statements.fire_exists, (schedule, fire_time))):
        return None
    task_id = record.id
    # a dedupe hit: the fire is the key's holder's
    if not await insert(db, sql, [record], record.created_at):
        found = list(
            await settled(db.execute_fetchall(sql.active_dedupe_owner, (record.dedupe_key,)))
        )
        if not found:
            return None
        task_id = str(found[0][0])
    await settled(db.execute(statements.add_fire, (schedule, fire_time, task_id)))
    await settled(
        db.execute(statements.advance, {"t": fire_time, "task": task_id, "name": schedule})
    )
    horizon = max(decided_until, fire_time) - FIRE_MEMORY
    await settled(db.execute(statements.forget_fires, (schedule, horizon)))
    return task_id
