"""Every statement the SQLite backend sends, built for one table.

Conventions:

* Each operation is one statement over a whole batch, in autocommit mode, so it is its own
  transaction and takes the write lock up front (claims are atomic across processes).
* Values are always bound parameters (``?``); a batch of n rows gets n placeholder groups, so
  statements whose shape depends on a batch size are built per call (`placeholders`).
* Statuses are written as their stored text (``'pending'``, …; see `sitq.rules`).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from sitq.rules import attempts_spent_sql, status_texts
from sitq.search import TaskSearch, like_pattern

from .joins import ACTIVE
from .schema import COLUMNS, DEDUPE_WHERE, INSERT_COLUMNS
from .workflows import read_expressions


def select_list(table: str) -> str:
    """What a record is selected as: the columns in the order `TaskRecord` takes them, then
    its workflow fields (`workflows.read_expressions`)."""
    return ", ".join((*COLUMNS, *read_expressions(table)))


__all__ = ["ACTIVE", "FINAL", "Statements", "placeholders", "select_list"]
FINAL = "('succeeded', 'failed', 'dead', 'cancelled')"


def placeholders(count: int, width: int = 1) -> str:
    """``count`` placeholder groups of ``width`` values: ``?,?`` or ``(?,?),(?,?)``."""
    if width == 1:
        return ",".join("?" * count)
    return ",".join(["(" + ",".join("?" * width) + ")"] * count)


def _outcome_key(by_rowid: bool) -> str:
    """The leading columns of an outcome row: the task's id and lease token, after its rowid
    if ``by_rowid``."""
    return "rowid_, id, token" if by_rowid else "id, token"


class Statements:
    """SQL text for one tasks table."""

    def __init__(self, table: str) -> None:
        self.t = table
        self.select = select_list(table)

    # -- enqueue -----------------------------------------------------------------------------

    def enqueue(self, rows: int) -> str:
        """Insert ``rows`` records; returns the ids stored. Only a dedupe hit is skipped: a
        taken id fails the whole statement."""
        return (
            f"INSERT INTO {self.t} ({', '.join(INSERT_COLUMNS)}) VALUES "
            + placeholders(rows, len(INSERT_COLUMNS))
            + f" ON CONFLICT (dedupe_key) WHERE {DEDUPE_WHERE} DO NOTHING RETURNING id"
        )

    @cached_property
    def enqueue_one(self) -> str:
        """`enqueue` of one record (a single enqueue, the common case), built once."""
        return self.enqueue(1)

    def stored_ids(self, count: int) -> str:
        """The ids among ``count`` given ones that are stored."""
        return f"SELECT id FROM {self.t} WHERE id IN ({placeholders(count)})"

    @cached_property
    def active_dedupe_owner(self) -> str:
        """The active task holding dedupe key ``?`` in the dedupe index."""
        return f"SELECT id FROM {self.t} WHERE dedupe_key = ? AND {DEDUPE_WHERE}"

    def unique_owner(self, states: int, since: bool) -> str:
        """The latest task with dedupe key ``?`` in ``states`` given statuses, created at or
        after ``?`` if ``since``."""
        created = " AND created_at >= ?" if since else ""
        return (
            f"SELECT id FROM {self.t} WHERE dedupe_key = ? AND status IN "
            f"({placeholders(states)}){created} ORDER BY rowid DESC LIMIT 1"
        )

    @cached_property
    def latest_dedupe_owner(self) -> str:
        """The latest task that held dedupe key ``?`` (it finished after taking it)."""
        return f"SELECT id FROM {self.t} WHERE dedupe_key = ? ORDER BY rowid DESC LIMIT 1"

    # -- claim and leases --------------------------------------------------------------------

    def claim(
        self, queues: int | None, excluded: int, paused: int = 0, keyless: bool = False
    ) -> str:
        """Claim up to ``limit`` due tasks: parameters worker, now, token, lease expiry, now,
        then ``queues`` queue names (None: every queue), ``excluded`` ids, ``paused`` queue
        names, the flow version the caller's copy of rules and pauses is from, and the limit.
        Returns ``rowid`` then the selected columns.

        Nothing is claimed unless the stored flow version is the one given (then the rules or
        pauses changed: the caller reads them again). With ``keyless``, only the tasks holding
        no limit key among the first ``limit`` due are taken (the others go through
        `sitq_sqlite.limits`)."""
        where = self.due_where(queues, excluded, paused)
        where.append(f"(SELECT value FROM {self.t}_meta WHERE key = 'flow_version') = ?")
        # without INDEXED BY the planner picks the status index and sorts every pending
        # row on each claim (O(pending)); the partial index is already in claim order
        picked = (
            f"SELECT rowid{', limit_keys' if keyless else ''} "
            f"FROM {self.t} INDEXED BY {self.t}_pending WHERE {' AND '.join(where)} "
            "ORDER BY priority DESC, available_at, rowid LIMIT ?"
        )
        if keyless:
            picked = f"SELECT rowid FROM ({picked}) WHERE limit_keys IS NULL"
        return (
            f"UPDATE {self.t} SET status = 'running', attempts = attempts + 1, "
            "worker_id = ?, started_at = ?, lease_token = ?, lease_expires_at = ? "
            f"WHERE rowid IN ({picked}) RETURNING rowid, {self.select}"
        )

    @staticmethod
    def due_where(queues: int | None, excluded: int, paused: int = 0) -> list[str]:
        """The conditions of a due pending task: parameters now, then ``queues`` queue names
        (None: every queue), ``excluded`` ids and ``paused`` queue names."""
        where = ["status = 'pending'", "available_at <= ?"]
        if queues is not None:
            where.append(f"queue IN ({placeholders(queues)})")
        if excluded:
            where.append(f"id NOT IN ({placeholders(excluded)})")
        if paused:
            where.append(f"queue NOT IN ({placeholders(paused)})")
        return where

    def claim_rowids(self, count: int) -> str:
        """Claim the ``count`` tasks of the given rowids if still pending: parameters worker,
        now, token, lease expiry, then the rowids. Returns ``rowid`` then the columns."""
        return (
            f"UPDATE {self.t} SET status = 'running', attempts = attempts + 1, "
            "worker_id = ?, started_at = ?, lease_token = ?, lease_expires_at = ? "
            # "+status": a term no index serves, so the planner looks the rowids up instead of
            # walking every pending task in the status index (O(pending) per claim)
            f"WHERE rowid IN ({placeholders(count)}) AND +status = 'pending' "
            f"RETURNING rowid, {self.select}"
        )

    @cached_property
    def claim_by_id(self) -> str:
        """Claim task ``id`` if pending, due or not: worker, now, token, lease expiry, id."""
        return (
            f"UPDATE {self.t} SET status = 'running', attempts = attempts + 1, "
            "worker_id = ?, started_at = ?, lease_token = ?, lease_expires_at = ? "
            f"WHERE id = ? AND status = 'pending' RETURNING {self.select}"
        )

    def extend_leases(self, count: int) -> str:
        """Set the lease expiry (last parameter) of ``count`` (id, token) pairs still held."""
        t = self.t
        return (
            f"WITH o(id, token) AS (VALUES {placeholders(count, 2)}) "
            f"UPDATE {t} SET lease_expires_at = ? FROM o "
            f"WHERE {t}.id = o.id AND {t}.lease_token = o.token "
            f"AND {t}.status = 'running' RETURNING id"
        )

    def set_progress(self, count: int) -> str:
        """Store the progress of ``count`` (id, token, fraction, message, at) tasks still
        running under that lease; returns the ids stored."""
        t = self.t
        return (
            f"WITH o(id, token, fraction, message, at) AS (VALUES {placeholders(count, 5)}) "
            f"UPDATE {t} SET progress = o.fraction, progress_message = o.message, "
            f"progress_at = o.at FROM o WHERE {t}.id = o.id AND {t}.lease_token = o.token "
            f"AND {t}.status = 'running' RETURNING id"
        )

    def finish_final(self, count: int, by_rowid: bool = False) -> str:
        """Apply ``count`` final outcomes (id, token, status, result, error, traceback,
        finished_at, now; each after its rowid if ``by_rowid``), fenced by lease token;
        returns ``(id, has_children)`` of those applied. Like every statement ending a task,
        it sets ``available_at`` to now: when the children it releases are due."""
        t = self.t
        return (
            f"WITH o({_outcome_key(by_rowid)}, status, result, error, traceback, finished_at, "
            f"now) AS (VALUES {placeholders(count, 8 + by_rowid)}) "
            f"UPDATE {t} SET status = o.status, result = o.result, error = o.error, "
            "traceback = o.traceback, finished_at = o.finished_at, available_at = o.now, "
            "lease_token = NULL, "
            f"lease_expires_at = NULL FROM o WHERE {self._held_by_outcome(by_rowid)} "
            "RETURNING id, has_children"
        )

    def finish_pending(self, count: int, by_rowid: bool = False) -> str:
        """Put back ``count`` tasks (id, token, available_at, error, traceback, uncount; each
        after its rowid if ``by_rowid``), fenced by lease token; ``uncount`` 1 gives the
        attempt back and keeps the last error. Returns ``(id, has_children)`` of those
        applied."""
        t = self.t
        return (
            f"WITH o({_outcome_key(by_rowid)}, available_at, error, traceback, uncount) AS "
            f"(VALUES {placeholders(count, 6 + by_rowid)}) "
            f"UPDATE {t} SET status = 'pending', available_at = o.available_at, "
            f"attempts = MAX(0, {t}.attempts - o.uncount), "
            f"error = CASE WHEN o.uncount THEN {t}.error ELSE o.error END, "
            f"traceback = CASE WHEN o.uncount THEN {t}.traceback ELSE o.traceback END, "
            f"lease_token = NULL, lease_expires_at = NULL FROM o "
            f"WHERE {self._held_by_outcome(by_rowid)} RETURNING id, has_children"
        )

    def _held_by_outcome(self, by_rowid: bool) -> str:
        """The row of outcome ``o`` if it still runs under the outcome's lease. By rowid, the
        row is found in the table itself instead of through the index of ids (a random page
        of a large index per task); the id is still compared, as a full ``VACUUM`` may give
        rows new rowids."""
        t = self.t
        found = f"{t}.rowid = o.rowid_ AND {t}.id = o.id" if by_rowid else f"{t}.id = o.id"
        return f"{found} AND {t}.lease_token = o.token AND {t}.status = 'running'"

    @cached_property
    def recover_expired(self) -> str:
        """Requeue running tasks whose lease lapsed before now, or kill those past the attempt
        limit. Parameters: max_attempts, error, now; returns ``(id, status, has_children)``."""
        spent = attempts_spent_sql("?1")
        return (
            f"UPDATE {self.t} SET "
            f"status = CASE WHEN {spent} THEN 'dead' ELSE 'pending' END, "
            f"error = CASE WHEN {spent} THEN ?2 ELSE error END, "
            f"finished_at = CASE WHEN {spent} THEN ?3 ELSE finished_at END, "
            "available_at = ?3, lease_token = NULL, lease_expires_at = NULL "
            "WHERE status = 'running' AND lease_expires_at < ?3 RETURNING id, status, has_children"
        )

    # -- control -----------------------------------------------------------------------------

    @cached_property
    def cancel(self) -> str:
        """Cancel task ``?2`` at ``?1`` (now) if waiting, pending or running; its lease goes."""
        return (
            f"UPDATE {self.t} SET status = 'cancelled', finished_at = ?1, available_at = ?1, "
            "lease_token = NULL, lease_expires_at = NULL "
            f"WHERE id = ?2 AND status IN {ACTIVE}"
        )

    @cached_property
    def requeue(self) -> str:
        """Put task ``id`` (second parameter) back to pending at ``now`` if it failed, died or
        was cancelled and is no tombstone; fails on a dedupe key held by an active task."""
        return (
            f"UPDATE {self.t} SET status = 'pending', attempts = 0, available_at = ?, "
            "result = NULL, error = NULL, traceback = NULL, started_at = NULL, "
            "finished_at = NULL, worker_id = NULL "
            "WHERE id = ? AND status IN ('failed', 'dead', 'cancelled') "
            "AND length(payload) > 0"
        )

    @cached_property
    def expire_results(self) -> str:
        """Make tombstones of tasks finished before ``?``."""
        return (
            f"UPDATE {self.t} SET payload = x'', result = NULL, traceback = NULL "
            f"WHERE status IN {FINAL} AND finished_at < ? AND length(payload) > 0"
        )

    # -- reading -----------------------------------------------------------------------------

    @cached_property
    def get_task(self) -> str:
        """The record of task ``?``."""
        return f"SELECT {self.select} FROM {self.t} WHERE id = ?"

    def counts(self, by_queue: bool) -> str:
        """``(status, n)`` rows, of queue ``?`` only if ``by_queue``."""
        where = " WHERE queue = ?" if by_queue else ""
        return f"SELECT status, COUNT(*) FROM {self.t}{where} GROUP BY status"

    @cached_property
    def queue_counts(self) -> str:
        """``(queue, status, n)`` rows."""
        return f"SELECT queue, status, COUNT(*) FROM {self.t} GROUP BY queue, status"

    def list_tasks(self, statuses: int | None, by_queue: bool, newest: bool, limited: bool) -> str:
        """Records in ``statuses`` given statuses (None: all), of queue ``?`` if ``by_queue``,
        oldest (or newest) first, at most ``?`` if ``limited``."""
        where: list[str] = []
        if statuses is not None:
            where.append(f"status IN ({placeholders(statuses)})")
        if by_queue:
            where.append("queue = ?")
        direction = "DESC" if newest else "ASC"
        sql = f"SELECT {self.select} FROM {self.t}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY created_at {direction}, rowid {direction}"
        if limited:
            sql += " LIMIT ?"
        return sql

    def search_tasks(self, search: TaskSearch) -> tuple[str, list[Any]]:
        """The statement of one page of ``search`` and its parameters: newest first in
        enqueue order (rowid), stopping at the limit (`sitq.search`)."""
        where: list[str] = []
        params: list[Any] = []
        if search.statuses is not None:
            where.append(f"status IN ({placeholders(len(search.statuses))})")
            params.extend(status_texts(search.statuses))
        if search.queue is not None:
            where.append("queue = ?")
            params.append(search.queue)
        if search.function is not None:
            where.append("function LIKE ? ESCAPE '\\'")
            params.append(like_pattern(search.function))
        if search.text is not None:
            where.append(
                "(function LIKE ? ESCAPE '\\' OR error LIKE ? ESCAPE '\\' OR instr(payload, ?) > 0)"
            )
            pattern = like_pattern(search.text)
            params.extend([pattern, pattern, search.text.encode()])
        if search.before is not None:
            where.append(f"rowid < (SELECT rowid FROM {self.t} WHERE id = ?)")
            params.append(search.before)
        # the page's rowids first, from the narrowest index (a status filter reads only the
        # (status, queue) index and keeps the top `limit` rowids), then only their records:
        # the records' columns and workflow fields are read for one page, not for every match
        page = f"SELECT rowid FROM {self.t}"
        if where:
            page += " WHERE " + " AND ".join(where)
        page += " ORDER BY rowid DESC LIMIT ?"
        sql = f"SELECT {self.select} FROM {self.t} WHERE rowid IN ({page}) ORDER BY rowid DESC"
        return sql, [*params, search.limit]

    def throughput(self, statuses: int) -> str:
        """``(bucket index, status, n)`` rows of the tasks in ``statuses`` given statuses that
        finished at or after ``since`` (parameters: since, bucket_seconds, the statuses,
        since), read through the ``_finished`` index (`sitq.throughput`)."""
        return (
            f"SELECT CAST((finished_at - ?) / ? AS INTEGER) AS bucket, status, COUNT(*) "
            f"FROM {self.t} WHERE status IN ({placeholders(statuses)}) AND finished_at >= ? "
            "GROUP BY bucket, status"
        )

    def delete_final(self, count: int) -> str:
        """Delete the tasks among ``count`` ids that are in a final state."""
        return f"DELETE FROM {self.t} WHERE id IN ({placeholders(count)}) AND status IN {FINAL}"

    def purge(self, statuses: int, older: bool) -> str:
        """Delete tasks in ``statuses`` given statuses, finished (or, never started, created)
        before ``?`` if ``older``."""
        sql = f"DELETE FROM {self.t} WHERE status IN ({placeholders(statuses)})"
        if older:
            sql += " AND COALESCE(finished_at, created_at) < ?"
        return sql

    def prune(self, statuses: int) -> str:
        """Delete at most ``?`` tasks in ``statuses`` given statuses finished before ``?``
        (parameters: the statuses, the cutoff, the limit), found through the ``_finished``
        index (no ORDER BY: sorting every expired task to delete a thousand costs more than
        it gives)."""
        return (
            f"DELETE FROM {self.t} WHERE rowid IN (SELECT rowid FROM {self.t} "
            f"WHERE status IN ({placeholders(statuses)}) AND finished_at < ? "
            "LIMIT ?)"
        )
