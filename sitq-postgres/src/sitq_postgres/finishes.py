"""Finishing on PostgreSQL: outcomes applied in rounds (one statement each), and outcomes whose
reply was lost recognized by the state they left."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import asyncpg

from sitq import TaskStatus
from sitq.backend import Outcome

from .sql import Statements


def rounds_of(outcomes: Sequence[Outcome]) -> list[list[int]]:
    """Indexes of ``outcomes`` in rounds: a task named twice goes in a later round, so its
    outcomes apply in order (usually there is one round)."""
    rounds: list[list[int]] = []
    seen: Counter[str] = Counter()
    for i, o in enumerate(outcomes):
        n = seen[o.task_id]
        seen[o.task_id] += 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(i)
    return rounds


async def apply_round(
    conn: asyncpg.Connection,
    sql: Statements,
    outcomes: Sequence[Outcome],
    indexes: list[int],
    now: float | None,
    applied: list[bool],
) -> None:
    """Apply the outcomes at ``indexes`` in one statement; mark in ``applied`` those that
    held their lease."""
    batch = [outcomes[i] for i in indexes]
    pending = TaskStatus.PENDING
    rows = await conn.fetch(
        sql.finish,
        now,
        [o.task_id for o in batch],
        [o.lease_token for o in batch],
        [o.status.value for o in batch],
        [o.result for o in batch],
        [o.error for o in batch],
        [o.traceback for o in batch],
        [o.available_at if o.status is pending else None for o in batch],
        [o.status is pending and not o.count_attempt for o in batch],
        [o.finished_at for o in batch],
    )
    done = {row[0] for row in rows}
    for i in indexes:
        applied[i] = applied[i] or outcomes[i].task_id in done


async def recognize_applied(
    conn: asyncpg.Connection, sql: Statements, outcomes: Sequence[Outcome], applied: list[bool]
) -> None:
    """Mark as applied the outcomes a lost earlier attempt already stored."""
    missing = [i for i, ok in enumerate(applied) if not ok]
    if not missing:
        return
    rows = await conn.fetch(sql.outcome_state, [outcomes[i].task_id for i in missing])
    state = {row[0]: row for row in rows}
    for i in missing:
        o, row = outcomes[i], state.get(outcomes[i].task_id)
        if row is None or row["lease_token"] is not None or row["status"] != o.status.value:
            continue
        if o.status is TaskStatus.PENDING:
            applied[i] = o.available_at is None or row["available_at"] == o.available_at
        else:
            applied[i] = row["finished_at"] == o.finished_at
