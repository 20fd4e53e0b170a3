"""Periodic schedules on PostgreSQL: the statements on the schedule tables (`schema._v4`) and
the one transaction that stores a fire with its task (`sitq.schedule_state`'s rules).

A fire locks its schedule's state row (``FOR UPDATE``) for the length of its short
transaction, so schedulers racing for one schedule's fires queue up behind each other and
each finds the row the winner wrote; the primary key of the fires table backs that up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from sitq.backend import TaskRecord
from sitq.schedule_state import FIRE_MEMORY, ScheduleState, fire_is_stale

from .inserts import insert
from .schema import Names
from .sql import Statements


@dataclass(frozen=True)
class ScheduleStatements:
    """The statements on the schedule tables of one table prefix."""

    names: Names

    @property
    def add(self) -> str:
        """Create the states of schedules ``$1`` decided up to ``$2`` unless they have one."""
        return (
            f"INSERT INTO {self.names.schedules} (name, decided_until) "
            "SELECT unnest($1::text[]), $2::float8 ON CONFLICT (name) DO NOTHING"
        )

    @property
    def define(self) -> str:
        """Create the states of schedules ``$1`` decided up to ``$2`` unless they have one,
        and set their definitions to ``$3`` (in the order of ``$1``)."""
        return (
            f"INSERT INTO {self.names.schedules} (name, decided_until, definition) "
            "SELECT n, $2::float8, d FROM unnest($1::text[], $3::text[]) AS s(n, d) "
            "ON CONFLICT (name) DO UPDATE SET definition = excluded.definition"
        )

    @property
    def read(self) -> str:
        """Every state, by name."""
        return (
            "SELECT name, paused, decided_until, last_fire, last_task_id, definition "
            f"FROM {self.names.schedules} ORDER BY name"
        )

    @property
    def lock_state(self) -> str:
        """``paused, decided_until`` of schedule ``$1``, its row locked."""
        return (
            f"SELECT paused, decided_until FROM {self.names.schedules} WHERE name = $1 FOR UPDATE"
        )

    @property
    def stored_fire(self) -> str:
        """The task id stored for fire ``($1, $2)``."""
        return (
            f"SELECT task_id FROM {self.names.schedule_fires} "
            "WHERE schedule = $1 AND fire_time = $2"
        )

    @property
    def add_fire(self) -> str:
        """Store fire ``($1, $2)`` as task ``$3``, move the state on and forget old fires."""
        n = self.names
        return f"""
WITH fire AS (
    INSERT INTO {n.schedule_fires} (schedule, fire_time, task_id) VALUES ($1, $2, $3)
), state AS (
    UPDATE {n.schedules} SET
        decided_until = greatest(decided_until, $2),
        last_task_id = CASE WHEN last_fire IS NULL OR $2 > last_fire THEN $3
                            ELSE last_task_id END,
        last_fire = greatest(last_fire, $2)
    WHERE name = $1
)
DELETE FROM {n.schedule_fires} WHERE schedule = $1 AND fire_time <= $4"""

    @property
    def skip(self) -> str:
        """Fires of schedule ``$1`` are decided up to ``$2``."""
        return (
            f"UPDATE {self.names.schedules} SET decided_until = greatest(decided_until, $2) "
            "WHERE name = $1"
        )

    @property
    def pause(self) -> str:
        """Set ``paused`` (``$2``) of schedule ``$1``; a resume decides up to ``$3``."""
        return (
            f"UPDATE {self.names.schedules} SET paused = $2, decided_until = CASE WHEN $2 "
            "THEN decided_until ELSE greatest(decided_until, $3) END WHERE name = $1"
        )


def state_from_row(row: Sequence[Any]) -> ScheduleState:
    """A `ScheduleState` from a row of `ScheduleStatements.read`."""
    name, paused, decided_until, last_fire, last_task_id, definition = row
    return ScheduleState(
        name, bool(paused), float(decided_until), last_fire, last_task_id, definition
    )


async def store_fire(
    conn: asyncpg.Connection,
    sql: Statements,
    statements: ScheduleStatements,
    schedule: str,
    fire_time: float,
    record: TaskRecord,
    enqueue_args: list[Any],
    *,
    retried: bool,
) -> str | None:
    """Store ``record`` for fire ``(schedule, fire_time)`` in one transaction, or nothing
    (None) if the schedule is paused, the fire stale or already stored. ``retried``: an
    earlier attempt's reply was lost; a fire it stored with this record counts as ours."""
    async with conn.transaction():
        await conn.execute(statements.add, [schedule], fire_time)
        paused, decided_until = await conn.fetchrow(statements.lock_state, schedule)
        if paused or fire_is_stale(fire_time, decided_until):
            return None
        stored = await conn.fetchval(statements.stored_fire, schedule, fire_time)
        if stored is not None:
            return record.id if retried and stored == record.id else None
        (task_id,), _stored_any = await insert(
            conn, sql, [record], enqueue_args, retried=retried, now=record.created_at
        )
        horizon = max(decided_until, fire_time) - FIRE_MEMORY
        await conn.execute(statements.add_fire, schedule, fire_time, task_id, horizon)
        return str(task_id)
