"""Every statement the backend sends, built once per table prefix.

Conventions:

* Each operation is one statement, so it is its own short transaction: no row lock outlives
  it, and it runs unchanged behind PgBouncer in transaction mode.
* Values, queue names included, are always bound parameters; batches travel as arrays and are
  expanded with ``unnest``.
* ``$1`` of every statement that needs the time is *now*: NULL in production, so the database
  clock (``statement_timestamp()``) decides due times and leases; a replaced ``Backend.clock``
  (tests) passes its value instead.
* Wake-ups are ``pg_notify`` calls inside the statement: delivered at commit, never on rollback.
"""

from __future__ import annotations

from functools import cached_property

from sitq.rules import attempts_spent_sql

from .joins import ACTIVE, DEDUPE_WHERE
from .schema import COLUMNS, Names
from .workflows import WorkflowStatements

#: Columns as selected, ``seq`` first (enqueue order, used to sort claims).
SELECT = "seq, " + ", ".join(COLUMNS)
_K_SELECT = "k.seq, " + ", ".join(f"k.{c}" for c in COLUMNS)

_DB_NOW = "extract(epoch FROM statement_timestamp())::float8"
#: The time a statement runs at (see the module docstring).
NOW = f"(SELECT coalesce($1::float8, {_DB_NOW}) AS now)"

#: A notification payload is a hint; cap it well below PostgreSQL's 8000-byte limit.
_PAYLOAD = "left(queue, 200)"

FINAL = "('succeeded', 'failed', 'dead', 'cancelled')"


class Statements:
    """SQL text for one table prefix."""

    def __init__(self, names: Names) -> None:
        self.names = names
        self.t = names.tasks
        self._claims: dict[tuple[bool, bool, bool, bool], str] = {}
        self.workflow = WorkflowStatements(names, SELECT)

    def _notify(self, source: str, where: str, channel: str) -> str:
        """A scalar subquery sending one notification per distinct queue in ``source``."""
        return (
            f"(SELECT count(pg_notify('{channel}', q.p)) FROM "
            f"(SELECT DISTINCT {_PAYLOAD} AS p FROM {source} WHERE {where}) AS q)"
        )

    @cached_property
    def enqueue(self) -> str:
        """Insert a batch; returns the ids stored.

        ``$1`` is the caller's clock reading in production (NULL in tests): a record due by
        then is stored due at once even if the database clock is a little behind this one.
        Only the dedupe index is an arbiter, so a reused id fails the whole batch. A record's
        limit keys come as a JSON array (``$20``, NULL for none); each key gets its state row
        here, in sorted order, so that claims only ever lock rows that exist
        (`sitq_postgres.limits`).
        """
        n = self.names
        return f"""
WITH ins AS (
    INSERT INTO {self.t} (id, function, payload, serializer, queue, priority, available_at,
                          max_retries, timeout, dedupe_key, status, attempts, created_at,
                          meta, workflow_id, parents, allow_failure, remaining, has_children,
                          limit_keys, unique_checked)
    SELECT r.id, r.function, r.payload, r.serializer, r.queue, r.priority,
           CASE WHEN r.available_at <= $1::float8 THEN least(r.available_at, {_DB_NOW})
                ELSE r.available_at END,
           r.max_retries, r.timeout, r.dedupe_key, r.status, 0, r.created_at, r.meta::jsonb,
           r.workflow_id,
           CASE WHEN r.parents IS NOT NULL
                THEN ARRAY(SELECT jsonb_array_elements_text(r.parents::jsonb)) END,
           r.allow_failure, r.remaining, r.has_children,
           CASE WHEN r.keys IS NOT NULL
                THEN ARRAY(SELECT jsonb_array_elements_text(r.keys::jsonb)) END,
           r.checked
    FROM unnest($2::text[], $3::text[], $4::bytea[], $5::text[], $6::text[], $7::bigint[],
                $8::float8[], $9::int[], $10::float8[], $11::text[], $12::float8[],
                $13::text[], $14::text[], $15::text[], $16::text[], $17::bool[], $18::int[],
                $19::bool[], $20::text[], $21::bool[])
         AS r(id, function, payload, serializer, queue, priority, available_at, max_retries,
              timeout, dedupe_key, created_at, meta, status, workflow_id, parents,
              allow_failure, remaining, has_children, keys, checked)
    ON CONFLICT (dedupe_key) WHERE {DEDUPE_WHERE} DO NOTHING
    RETURNING id, queue, limit_keys
),
keys AS (
    INSERT INTO {n.limit_keys} (key)
    SELECT DISTINCT k FROM ins, unnest(ins.limit_keys) AS k ORDER BY k
    ON CONFLICT (key) DO NOTHING
)
SELECT id, {self._notify("ins", "true", n.enqueued_channel)} FROM ins"""

    def unique_owner(self, since: bool) -> str:
        """The latest task with dedupe key ``$1`` in statuses ``$2``, created at or after
        ``$3`` if ``since``."""
        created = " AND created_at >= $3::float8" if since else ""
        return (
            f"SELECT id FROM {self.t} WHERE dedupe_key = $1 AND status = ANY($2::text[])"
            f"{created} ORDER BY seq DESC LIMIT 1"
        )

    @cached_property
    def stored_ids(self) -> str:
        """``(id, payload, created_at)`` of the stored tasks among ids ``$1``."""
        return f"SELECT id, payload, created_at FROM {self.t} WHERE id = ANY($1::text[])"

    @cached_property
    def dedupe_owners(self) -> str:
        """``(dedupe_key, id)`` of the task holding each key in ``$1``: the active one, else
        the latest (it finished after taking the key from us)."""
        return f"""
SELECT DISTINCT ON (dedupe_key) dedupe_key, id FROM {self.t}
WHERE dedupe_key = ANY($1::text[])
ORDER BY dedupe_key, ({DEDUPE_WHERE}) DESC, seq DESC"""

    def claim(self, queues: bool, exclude: bool, paused: bool, keyless: bool) -> str:
        """Claim up to ``$2`` due tasks for worker ``$3`` with token ``$4`` for ``$5`` seconds,
        if the flow version is still ``$6``; then the queues, the excluded ids and the paused
        queues (each when asked for, in that order).

        A changed flow version (rules or pauses changed) claims nothing: the caller reads them
        again. With ``keyless``, only the tasks holding no limit key among the first ``$2``
        due are taken (the others go through `sitq_postgres.limits`)."""
        key = (queues, exclude, paused, keyless)
        if key not in self._claims:
            extra, slot = "", 7
            if queues:
                extra += f" AND queue = ANY(${slot}::text[])"
                slot += 1
            if exclude:
                extra += f" AND NOT (id = ANY(${slot}::text[]))"
                slot += 1
            if paused:
                extra += f" AND queue <> ALL(${slot}::text[])"
            only = " AND picked.limit_keys IS NULL" if keyless else ""
            # MATERIALIZED: the limited, locked pick runs exactly once, whatever the planner
            # makes of the join (an inlined subquery could lock and claim more than LIMIT).
            self._claims[key] = f"""
WITH c AS MATERIALIZED {NOW},
picked AS MATERIALIZED (
    SELECT id, limit_keys FROM {self.t}
    WHERE status = 'pending' AND available_at <= (SELECT now FROM c){extra}
      AND (SELECT version FROM {self.names.flow_version}) = $6::bigint
    ORDER BY priority DESC, available_at, seq
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE {self.t} AS k
SET status = 'running', attempts = k.attempts + 1, worker_id = $3, started_at = c.now,
    lease_token = $4, lease_expires_at = c.now + $5::float8
FROM picked, c
WHERE k.id = picked.id{only}
RETURNING {_K_SELECT}"""
        return self._claims[key]

    @cached_property
    def claim_ids(self) -> str:
        """Claim tasks ``$5`` if still pending, at ``$1`` for worker ``$2`` with token ``$3``
        for ``$4`` seconds (a limited claim's choice, `sitq_postgres.limits`)."""
        return f"""
UPDATE {self.t} AS k
SET status = 'running', attempts = k.attempts + 1, worker_id = $2, started_at = $1::float8,
    lease_token = $3, lease_expires_at = $1::float8 + $4::float8
WHERE k.id = ANY($5::text[])
  -- "IS TRUE": no partial index on pending tasks matches, so the ids are looked up
  AND (k.status = 'pending') IS TRUE
RETURNING {_K_SELECT}"""

    @cached_property
    def claim_by_id(self) -> str:
        """Claim task ``$2`` if pending, due or not (other parameters as in `claim`)."""
        return f"""
WITH c AS MATERIALIZED {NOW}
UPDATE {self.t} AS k
SET status = 'running', attempts = k.attempts + 1, worker_id = $3, started_at = c.now,
    lease_token = $4, lease_expires_at = c.now + $5::float8
FROM c
WHERE k.id = $2 AND k.status = 'pending'
RETURNING {_K_SELECT}"""

    @cached_property
    def claimed_with(self) -> str:
        """The running tasks holding lease token ``$1`` (what a lost claim reply took)."""
        return f"SELECT {SELECT} FROM {self.t} WHERE lease_token = $1 AND status = 'running'"

    @cached_property
    def extend_leases(self) -> str:
        """Extend by ``$4`` seconds the leases of ids ``$2`` still held with tokens ``$3``."""
        return f"""
WITH c AS MATERIALIZED {NOW}
UPDATE {self.t} AS k SET lease_expires_at = c.now + $4::float8
FROM unnest($2::text[], $3::text[]) AS o(id, token), c
WHERE k.id = o.id AND k.lease_token = o.token AND k.status = 'running'
RETURNING k.id"""

    @cached_property
    def set_progress(self) -> str:
        """Store progress ``$3``, ``$4``, ``$5`` (fraction, message, time) of ids ``$1`` still
        running with tokens ``$2``; returns the ids stored."""
        return f"""
UPDATE {self.t} AS k
SET progress = o.fraction, progress_message = o.message, progress_at = o.at
FROM unnest($1::text[], $2::text[], $3::float8[], $4::text[], $5::float8[])
     AS o(id, token, fraction, message, at)
WHERE k.id = o.id AND k.lease_token = o.token AND k.status = 'running'
RETURNING k.id"""

    @cached_property
    def finish(self) -> str:
        """Apply outcomes (one per task) fenced by lease token; returns the ids applied. A
        task that held limit keys wakes the workers as one back to pending does: its slots
        are free. A final outcome sets ``available_at`` to now, as every statement ending a
        task does: when the children it releases are due (`workflows`)."""
        n = self.names
        return f"""
WITH c AS MATERIALIZED {NOW},
done AS (
    UPDATE {self.t} AS k SET
        status = o.status,
        result = o.result,
        error = CASE WHEN o.uncount THEN k.error ELSE o.error END,
        traceback = CASE WHEN o.uncount THEN k.traceback ELSE o.traceback END,
        finished_at = CASE WHEN o.status = 'pending' THEN k.finished_at ELSE o.finished_at END,
        available_at = CASE WHEN o.status = 'pending' THEN coalesce(o.available_at, c.now)
                            ELSE c.now END,
        attempts = CASE WHEN o.uncount THEN greatest(k.attempts - 1, 0) ELSE k.attempts END,
        lease_token = NULL,
        lease_expires_at = NULL
    FROM unnest($2::text[], $3::text[], $4::text[], $5::bytea[], $6::text[], $7::text[],
                $8::float8[], $9::bool[], $10::float8[])
         AS o(id, token, status, result, error, traceback, available_at, uncount, finished_at),
         c
    WHERE k.id = o.id AND k.lease_token = o.token AND k.status = 'running'
    RETURNING k.id, k.queue, k.status, k.available_at <= c.now AS due,
              k.limit_keys IS NOT NULL AS keyed
)
SELECT id,
       {self._notify("done", "(status = 'pending' AND due) OR keyed", n.enqueued_channel)},
       {self._notify("done", "status <> 'pending'", n.finished_channel)}
FROM done"""

    @cached_property
    def outcome_state(self) -> str:
        """What became of tasks ``$1`` (to tell whether a lost finish reply had applied)."""
        return (
            f"SELECT id, status, lease_token, finished_at, available_at FROM {self.t} "
            "WHERE id = ANY($1::text[])"
        )

    @cached_property
    def recover_expired(self) -> str:
        """Requeue (or kill past ``$2`` attempts, with error ``$3``) tasks whose lease lapsed.

        Only the one caller that gets advisory lock ``$4`` does anything; the others, finding
        it taken, return at once instead of queueing on the same rows.
        """
        n = self.names
        spent = attempts_spent_sql(
            "$2::int", attempts="k.attempts", max_retries="k.max_retries", greatest="greatest"
        )
        return f"""
WITH c AS MATERIALIZED (SELECT c.now, pg_try_advisory_xact_lock($4::bigint) AS locked
                        FROM {NOW} AS c),
gone AS (
    UPDATE {self.t} AS k SET
        status = CASE WHEN {spent} THEN 'dead' ELSE 'pending' END,
        error = CASE WHEN {spent} THEN $3::text ELSE k.error END,
        finished_at = CASE WHEN {spent} THEN c.now ELSE k.finished_at END,
        available_at = c.now,
        lease_token = NULL,
        lease_expires_at = NULL
    FROM c
    WHERE c.locked AND k.status = 'running' AND k.lease_expires_at < c.now
    RETURNING k.id, k.queue, k.status
)
SELECT id, status,
       {self._notify("gone", "status = 'pending'", n.enqueued_channel)},
       {self._notify("gone", "status <> 'pending'", n.finished_channel)}
FROM gone"""

    @cached_property
    def cancel(self) -> str:
        """Cancel task ``$2`` if waiting, pending or running; a running task loses its lease,
        so its worker can store nothing and finds out at its next heartbeat."""
        return f"""
WITH c AS MATERIALIZED {NOW},
x AS (
    UPDATE {self.t} AS k SET status = 'cancelled', finished_at = c.now, available_at = c.now,
        lease_token = NULL, lease_expires_at = NULL
    FROM c WHERE k.id = $2 AND k.status IN {ACTIVE}
    RETURNING k.id, k.queue
)
SELECT id, {self._notify("x", "true", self.names.finished_channel)} FROM x"""

    @cached_property
    def requeue(self) -> str:
        """Put task ``$2`` back to pending if failed, dead or cancelled."""
        return f"""
WITH c AS MATERIALIZED {NOW},
x AS (
    UPDATE {self.t} AS k SET status = 'pending', attempts = 0, available_at = c.now,
        result = NULL, error = NULL, traceback = NULL, started_at = NULL, finished_at = NULL,
        worker_id = NULL
    FROM c WHERE k.id = $2 AND k.status IN ('failed', 'dead', 'cancelled')
        AND k.payload <> ''::bytea
    RETURNING k.id, k.queue
)
SELECT id, {self._notify("x", "true", self.names.enqueued_channel)} FROM x"""

    @cached_property
    def expire_results(self) -> str:
        """Make tombstones of tasks finished before ``$1``: payload, result and traceback go,
        the rest of the row stays."""
        return (
            f"UPDATE {self.t} SET payload = ''::bytea, result = NULL, traceback = NULL "
            f"WHERE status IN {FINAL} AND finished_at < $1::float8 AND payload <> ''::bytea"
        )

    @cached_property
    def get_task(self) -> str:
        """The task with id ``$1``."""
        return f"SELECT {SELECT} FROM {self.t} WHERE id = $1"

    @cached_property
    def status_of(self) -> str:
        """Status of the task with id ``$1``."""
        return f"SELECT status FROM {self.t} WHERE id = $1"

    @cached_property
    def counts(self) -> str:
        """Tasks per status, in queue ``$1`` (NULL: every queue)."""
        return (
            f"SELECT status, count(*) FROM {self.t} "
            "WHERE $1::text IS NULL OR queue = $1 GROUP BY status"
        )

    @cached_property
    def queue_counts(self) -> str:
        """Tasks per queue and status."""
        return f"SELECT queue, status, count(*) FROM {self.t} GROUP BY queue, status"

    def list_tasks(self, newest: bool) -> str:
        """Tasks in statuses ``$1`` (NULL: any) and queue ``$2`` (NULL: any), ``$3`` at most
        (NULL: all), oldest or newest first."""
        order = "DESC" if newest else ""
        return (
            f"SELECT {SELECT} FROM {self.t} "
            "WHERE ($1::text[] IS NULL OR status = ANY($1)) AND ($2::text IS NULL OR queue = $2) "
            f"ORDER BY created_at {order}, seq {order} LIMIT $3"
        )

    @cached_property
    def search_tasks(self) -> str:
        """One page of a task search, newest first by ``seq`` (`sitq.search`): statuses
        ``$1``, queue ``$2``, function pattern ``$3``, text pattern ``$4`` and its bytes
        ``$5``, before the task of id ``$6``, at most ``$7`` (NULL: any)."""
        return (
            f"SELECT {SELECT} FROM {self.t} "
            "WHERE ($1::text[] IS NULL OR status = ANY($1)) AND ($2::text IS NULL OR queue = $2) "
            "AND ($3::text IS NULL OR function ILIKE $3) "
            "AND ($4::text IS NULL OR function ILIKE $4 OR error ILIKE $4 "
            "OR position($5::bytea IN payload) > 0) "
            f"AND ($6::text IS NULL OR seq < (SELECT seq FROM {self.t} WHERE id = $6)) "
            "ORDER BY seq DESC LIMIT $7"
        )

    @cached_property
    def throughput(self) -> str:
        """``(bucket index, status, n)`` rows of tasks in statuses ``$3`` that finished at or
        after ``$1``, in buckets of ``$2`` seconds, read through the ``_finished`` index
        (`sitq.throughput`)."""
        return (
            "SELECT floor((finished_at - $1::float8) / $2::float8)::bigint AS bucket, status, "
            f"count(*) FROM {self.t} WHERE status = ANY($3::text[]) AND finished_at >= $1 "
            "GROUP BY bucket, status"
        )

    @cached_property
    def delete_final(self) -> str:
        """Delete the tasks of ids ``$1`` that are in a final state."""
        return (
            f"DELETE FROM {self.t} WHERE id = ANY($1::text[]) "
            "AND status IN ('succeeded', 'failed', 'dead', 'cancelled')"
        )

    @cached_property
    def purge(self) -> str:
        """Delete tasks in statuses ``$1`` finished (or else created) before ``$2`` (NULL:
        any time)."""
        return (
            f"DELETE FROM {self.t} WHERE status = ANY($1::text[]) "
            "AND ($2::float8 IS NULL OR coalesce(finished_at, created_at) < $2)"
        )

    @cached_property
    def prune(self) -> str:
        """Delete at most ``$3`` tasks whose status is in ``$1`` and that finished before the
        cutoff at the same place in ``$2``. Rows another pruner holds are skipped, not waited
        for, so workers pruning at once share the work."""
        return (
            f"DELETE FROM {self.t} WHERE id IN ("
            f"SELECT x.id FROM {self.t} AS x "
            "JOIN unnest($1::text[], $2::float8[]) AS cut(status, before) "
            "ON x.status = cut.status AND x.finished_at < cut.before "
            "LIMIT $3 FOR UPDATE OF x SKIP LOCKED)"
        )

    @cached_property
    def db_clock(self) -> str:
        """The database clock, epoch seconds."""
        return "SELECT extract(epoch FROM clock_timestamp())::float8"
