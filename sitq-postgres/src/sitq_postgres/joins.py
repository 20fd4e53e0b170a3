"""How workflow joins stay exact on PostgreSQL: the migration adding them, and its triggers.

The joins live in two row triggers, so every statement that ends a task (`finish`, `cancel`,
`recover_expired`, `cancel_workflow`) or requeues one releases or cancels its children in its
own transaction, at no cost for tasks without children (the trigger's ``WHEN`` reads
``has_children`` before any function is called). A statement ending a task sets its
``available_at`` to now (the backend's clock), and the trigger dates what it moves by it:
released children are due then, cascaded ones cancelled then.

* ``parent_ended``: a task that ended unsuccessfully cancels its waiting children without
  ``allow_failure`` and their descendants (one recursive CTE); then every waiting child of it
  and of those counts down (``remaining = remaining - n``, on rows locked in id order, so two
  transactions ending two parents of one child never both miss nor double-release it), and
  those at zero become pending, with a NOTIFY.
* ``parent_requeued``: a requeued task takes back to waiting the descendants cancelled for it
  (their error names it), unless another parent still failed; counters are recomputed.

Statements run by a trigger do not fire them again (``pg_trigger_depth() < 1``): each trigger
handles the whole graph below its task. Its queries see rows committed after the statement
that fired it began, so a child enqueued meanwhile (which locks its parents first) is counted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sitq.workflow_state import PARENT_FAILED_PREFIX

if TYPE_CHECKING:  # schema registers this module's migration
    from .schema import Names

#: The statuses of a task not ended yet, which hold its dedupe key.
ACTIVE = "('waiting', 'pending', 'running')"
#: Which stored tasks the dedupe index holds: active ones with a key, unless their record chose
#: its own uniqueness (``unique_for``/``unique_states``: checked under an advisory lock).
DEDUPE_WHERE = f"dedupe_key IS NOT NULL AND status IN {ACTIVE} AND unique_checked IS NULL"
#: The final statuses.
FINAL = "('succeeded', 'failed', 'dead', 'cancelled')"
#: The statuses of a parent that did not succeed.
UNSUCCESSFUL = "('failed', 'dead', 'cancelled')"
_STATUSES = "('waiting', 'pending', 'running', 'succeeded', 'failed', 'dead', 'cancelled')"


def edges(n: Names) -> str:
    """The edges table of ``n``'s tasks."""
    return f"{n.prefix}task_edges"


# -- schema ------------------------------------------------------------------------------------


def migration(n: Names) -> str:
    """Workflows: the ``waiting`` status, the workflow columns, the edges table and the
    triggers of exact joins. The trigger functions are replaced if they exist: dropping the
    tables (``DROP TABLE … CASCADE``) drops the triggers but leaves the functions behind."""
    t, e = n.tasks, edges(n)
    return f"""
DO $$
DECLARE c text;
BEGIN
    FOR c IN SELECT conname FROM pg_constraint
             WHERE conrelid = '{t}'::regclass AND contype = 'c'
               AND pg_get_constraintdef(oid) LIKE '%status%'
    LOOP
        EXECUTE format('ALTER TABLE {t} DROP CONSTRAINT %I', c);
    END LOOP;
END $$;
ALTER TABLE {t}
    ADD CONSTRAINT {t}_status_known CHECK (status IN {_STATUSES}),
    ADD COLUMN workflow_id   text,
    ADD COLUMN parents       text[],
    ADD COLUMN allow_failure boolean NOT NULL DEFAULT false,
    ADD COLUMN remaining     integer NOT NULL DEFAULT 0,
    ADD COLUMN has_children  boolean NOT NULL DEFAULT false;
CREATE INDEX {t}_workflow ON {t} (workflow_id, seq) WHERE workflow_id IS NOT NULL;
DROP INDEX {t}_dedupe;
CREATE UNIQUE INDEX {t}_dedupe ON {t} (dedupe_key) WHERE {DEDUPE_WHERE};
CREATE TABLE {e} (
    child_id  text NOT NULL,
    position  integer NOT NULL,
    parent_id text NOT NULL,
    PRIMARY KEY (child_id, position)
);
CREATE INDEX {e}_parent ON {e} (parent_id, child_id);
{_ended_trigger(n)}
{_requeued_trigger(n)}
{_deleted_trigger(n)}
"""


def failed_parent_error_sql(n: Names, child: str, cancelled: str) -> str:
    """`sitq.workflow_state.parent_failed_error` of the first parent (by position) of
    ``child`` that did not succeed, counting those in the array ``cancelled`` as cancelled."""
    return (
        f"(SELECT '{PARENT_FAILED_PREFIX}: ' || p.id || ' ended ' || "
        f"CASE WHEN p.id = ANY({cancelled}) THEN 'cancelled' ELSE p.status END "
        f"FROM {edges(n)} AS e JOIN {n.tasks} AS p ON p.id = e.parent_id "
        f"WHERE e.child_id = {child}.id "
        f"AND (p.status IN {UNSUCCESSFUL} OR p.id = ANY({cancelled})) "
        "ORDER BY e.position LIMIT 1)"
    )


def _count_down(n: Names, ended: str) -> str:
    """The loop counting down the waiting children of the tasks ``parent_id`` matches
    with condition ``ended`` (``= NEW.id``, ``= ANY(…)``), one
    primary-key update per child in id order (no lock-order deadlock between two of them),
    releasing those at zero with a NOTIFY."""
    t, e = n.tasks, edges(n)
    return f"""
    FOR child IN
        SELECT child_id AS id, count(*) AS n FROM {e} WHERE parent_id {ended}
        GROUP BY child_id ORDER BY child_id
    LOOP
        UPDATE {t} AS k SET remaining = k.remaining - child.n,
            status = CASE WHEN k.remaining - child.n <= 0 THEN 'pending' ELSE 'waiting' END,
            available_at = CASE WHEN k.remaining - child.n <= 0 THEN NEW.available_at
                                ELSE k.available_at END
        WHERE k.id = child.id AND k.status = 'waiting'
        RETURNING k.status, k.queue INTO released, released_queue;
        IF released = 'pending' THEN
            PERFORM pg_notify('{n.enqueued_channel}', left(released_queue, 200));
        END IF;
        released := NULL;
    END LOOP;"""


def _ended_trigger(n: Names) -> str:
    """The trigger releasing or cancelling the children of a task that ended."""
    t, e = n.tasks, edges(n)
    return f"""
CREATE OR REPLACE FUNCTION {t}_parent_ended() RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE
    doomed text[] := '{{}}';
    child record;
    released text;
    released_queue text;
BEGIN
    IF NEW.status <> 'succeeded' THEN
        doomed := ARRAY(
            WITH RECURSIVE d(id) AS (
                SELECT c.id FROM {e} AS e JOIN {t} AS c ON c.id = e.child_id
                WHERE e.parent_id = NEW.id AND c.status = 'waiting' AND NOT c.allow_failure
                UNION
                SELECT c.id FROM d JOIN {e} AS e ON e.parent_id = d.id
                JOIN {t} AS c ON c.id = e.child_id
                WHERE c.status = 'waiting' AND NOT c.allow_failure
            ) SELECT id FROM d ORDER BY id);
        PERFORM 1 FROM {t} WHERE id = ANY(doomed) ORDER BY id FOR UPDATE;
        WITH x AS (
            UPDATE {t} AS k SET status = 'cancelled', finished_at = NEW.available_at,
                available_at = NEW.available_at,
                error = {failed_parent_error_sql(n, "k", "doomed")}
            WHERE k.id = ANY(doomed) AND k.status = 'waiting' RETURNING k.id
        ) SELECT coalesce(array_agg(id), '{{}}') INTO doomed FROM x;
    END IF;
    IF cardinality(doomed) = 0 THEN  -- the common case: no array to build
        {_count_down(n, "= NEW.id")}
    ELSE
        {_count_down(n, "= ANY(doomed || NEW.id)")}
    END IF;
    RETURN NULL;
END $f$;
CREATE TRIGGER {t}_parent_ended AFTER UPDATE OF status ON {t} FOR EACH ROW
WHEN (pg_trigger_depth() < 1 AND NEW.has_children AND OLD.status IN {ACTIVE}
      AND NEW.status IN {FINAL})
EXECUTE FUNCTION {t}_parent_ended();"""


def _requeued_trigger(n: Names) -> str:
    """The trigger taking back to waiting the descendants cancelled for a requeued task."""
    t, e = n.tasks, edges(n)
    named = f"'{PARENT_FAILED_PREFIX}: '"
    return f"""
CREATE OR REPLACE FUNCTION {t}_parent_requeued() RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE
    revived text[];
    again text[];
BEGIN
    revived := ARRAY(
        WITH RECURSIVE r(id) AS (
            SELECT c.id FROM {e} AS e JOIN {t} AS c ON c.id = e.child_id
            WHERE e.parent_id = NEW.id AND c.status = 'cancelled'
              AND c.error = {named} || NEW.id || ' ended ' || OLD.status
            UNION
            SELECT c.id FROM r JOIN {e} AS e ON e.parent_id = r.id
            JOIN {t} AS c ON c.id = e.child_id
            WHERE c.status = 'cancelled' AND c.error = {named} || r.id || ' ended cancelled'
        ) SELECT id FROM r ORDER BY id);
    PERFORM 1 FROM {t} WHERE id = ANY(revived) ORDER BY id FOR UPDATE;
    -- still doomed: a revived task with another parent that did not succeed, and below it
    again := ARRAY(
        WITH RECURSIVE a(id) AS (
            SELECT c.id FROM {t} AS c WHERE c.id = ANY(revived) AND NOT c.allow_failure
              AND EXISTS (SELECT 1 FROM {e} AS e JOIN {t} AS p ON p.id = e.parent_id
                          WHERE e.child_id = c.id AND p.status IN {UNSUCCESSFUL}
                            AND NOT p.id = ANY(revived) AND p.id <> NEW.id)
            UNION
            SELECT e.child_id FROM a JOIN {e} AS e ON e.parent_id = a.id
            WHERE e.child_id = ANY(revived)
        ) SELECT id FROM a);
    revived := ARRAY(SELECT unnest(revived) EXCEPT SELECT unnest(again));
    UPDATE {t} AS k SET status = 'waiting', error = NULL, finished_at = NULL
    WHERE k.id = ANY(revived);
    UPDATE {t} AS k SET error = {failed_parent_error_sql(n, "k", "again")}
    WHERE k.id = ANY(again);
    UPDATE {t} AS k SET remaining = (
        SELECT count(*) FROM {e} AS e JOIN {t} AS p ON p.id = e.parent_id
        WHERE e.child_id = k.id AND p.status IN {ACTIVE})
    WHERE k.status = 'waiting' AND (k.id = ANY(revived) OR k.id IN (
        SELECT child_id FROM {e} WHERE parent_id = ANY(revived || NEW.id)));
    RETURN NULL;
END $f$;
CREATE TRIGGER {t}_parent_requeued AFTER UPDATE OF status ON {t} FOR EACH ROW
WHEN (pg_trigger_depth() < 1 AND NEW.has_children AND OLD.status IN {UNSUCCESSFUL}
      AND NEW.status IN {ACTIVE})
EXECUTE FUNCTION {t}_parent_requeued();"""


def _deleted_trigger(n: Names) -> str:
    """The trigger deleting the edges of a deleted task (purge, prune) to its parents."""
    t, e = n.tasks, edges(n)
    return f"""
CREATE OR REPLACE FUNCTION {t}_child_deleted() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    DELETE FROM {e} WHERE child_id = OLD.id;
    RETURN NULL;
END $f$;
CREATE TRIGGER {t}_child_deleted AFTER DELETE ON {t} FOR EACH ROW
WHEN (OLD.parents IS NOT NULL)
EXECUTE FUNCTION {t}_child_deleted();"""
