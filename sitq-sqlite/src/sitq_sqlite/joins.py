"""How workflow joins stay exact in SQLite: the edges table, its indexes and the triggers.

The joins live in two triggers, so every statement that ends a task (`finish`, `cancel`,
`recover_expired`, `cancel_workflow`) or requeues one releases or cancels its children in its
own transaction, whichever connection or process runs it, at no cost for tasks without children
(the trigger's ``WHEN`` reads ``has_children`` first). A statement ending a task sets its
``available_at`` to the backend's clock, and the trigger dates what it moves by it: released
children are due then, cascaded ones cancelled then.

* ``<table>_parent_ended``: a task that ended unsuccessfully cancels its waiting children that
  have no ``allow_failure``, and their descendants (one recursive CTE); then the waiting
  children of every task that just ended count it down, and those at zero become pending.
* ``<table>_parent_requeued``: a requeued task takes back to waiting the descendants cancelled
  for it (their error names it), unless another parent still failed; counters are recomputed.
* ``<table>_child_deleted``: a deleted task (purge, prune) takes its edges along.

Within a statement the rows a step changed are found again through ``remaining``: negative
values mark them (`MARK_DOOMED`, …) until the last step resets them, through a partial index
holding only negative values. Marks never outlive the statement or transaction that sets them.
"""

from __future__ import annotations

from sitq.workflow_state import PARENT_FAILED_PREFIX

#: ``remaining`` of a task the enqueue just stored waiting (its count is not known yet).
MARK_NEW = -3
#: ``remaining`` of a task a parent's failure just cancelled.
MARK_DOOMED = -1
#: ``remaining`` of a task a requeue just took back to waiting.
MARK_REVIVED = -2
#: ``remaining`` of a revived task cancelled again (another parent still failed).
MARK_REDOOMED = -4

#: The statuses of a task not ended yet, which hold its dedupe key.
ACTIVE = "('waiting', 'pending', 'running')"
#: The final statuses.
FINAL = "('succeeded', 'failed', 'dead', 'cancelled')"
#: The statuses of a parent that did not succeed.
UNSUCCESSFUL = "('failed', 'dead', 'cancelled')"


def ddl(table: str) -> list[str]:
    """The edges table, the indexes and the triggers of workflows (idempotent; run once the
    workflow columns exist)."""
    t, e = table, f"{table}_edges"
    return [
        f"""CREATE TABLE IF NOT EXISTS {e} (
    child_id  TEXT NOT NULL,
    position  INTEGER NOT NULL,
    parent_id TEXT NOT NULL,
    PRIMARY KEY (child_id, position)
) WITHOUT ROWID""",
        f"CREATE INDEX IF NOT EXISTS {e}_parent ON {e} (parent_id, child_id)",
        f"CREATE INDEX IF NOT EXISTS {t}_workflow ON {t} (workflow_id) "
        "WHERE workflow_id IS NOT NULL",
        f"CREATE INDEX IF NOT EXISTS {t}_waiting ON {t} (remaining) WHERE status = 'waiting'",
        f"CREATE INDEX IF NOT EXISTS {t}_marked ON {t} (remaining) WHERE remaining < 0",
        _ended_trigger(t),
        _requeued_trigger(t),
        # a deleted task (purge, prune) takes its edges to its parents along
        f"""CREATE TRIGGER IF NOT EXISTS {t}_child_deleted AFTER DELETE ON {t}
BEGIN DELETE FROM {e} WHERE child_id = old.id; END""",
    ]


def failed_parent_error_sql(table: str, child: str) -> str:
    """`sitq.workflow_state.parent_failed_error` of the first parent (by position) of
    ``child`` that did not succeed."""
    return (
        f"(SELECT '{PARENT_FAILED_PREFIX}: ' || p.id || ' ended ' || p.status "
        f"FROM {table}_edges AS e JOIN {table} AS p ON p.id = e.parent_id "
        f"WHERE e.child_id = {child}.id AND p.status IN {UNSUCCESSFUL} "
        "ORDER BY e.position LIMIT 1)"
    )


def unended_parents_sql(table: str, child: str) -> str:
    """How many parents of ``child`` have not ended."""
    return (
        f"(SELECT count(*) FROM {table}_edges AS e JOIN {table} AS p ON p.id = e.parent_id "
        f"WHERE e.child_id = {child}.id AND p.status IN {ACTIVE})"
    )


def _ended_trigger(t: str) -> str:
    """The trigger releasing or cancelling the children of a task that ended."""
    e = f"{t}_edges"
    doomed = (
        f"WITH RECURSIVE doomed(id) AS ("
        f"SELECT c.id FROM {e} AS e JOIN {t} AS c ON c.id = e.child_id "
        "WHERE e.parent_id = new.id AND c.status = 'waiting' AND NOT c.allow_failure "
        f"UNION SELECT c.id FROM doomed JOIN {e} AS e ON e.parent_id = doomed.id "
        f"JOIN {t} AS c ON c.id = e.child_id "
        "WHERE c.status = 'waiting' AND NOT c.allow_failure) SELECT id FROM doomed"
    )
    return f"""CREATE TRIGGER IF NOT EXISTS {t}_parent_ended AFTER UPDATE OF status ON {t}
WHEN new.has_children AND new.remaining >= 0 AND old.status IN {ACTIVE}
    AND new.status IN {FINAL}
BEGIN
    UPDATE {t} SET status = 'cancelled', finished_at = new.available_at,
        available_at = new.available_at, remaining = {MARK_DOOMED}
    WHERE new.status <> 'succeeded' AND id IN ({doomed});
    UPDATE {t} SET error = {failed_parent_error_sql(t, t)} WHERE remaining < 0;
    UPDATE {t} SET remaining = remaining
        - (SELECT count(*) FROM {e} AS e WHERE e.parent_id = new.id AND e.child_id = {t}.id)
        - (SELECT count(*) FROM {t} AS p CROSS JOIN {e} AS e
           WHERE p.remaining < 0 AND e.parent_id = p.id AND e.child_id = {t}.id)
    WHERE status = 'waiting' AND id IN (
        SELECT child_id FROM {e} WHERE parent_id = new.id
        UNION SELECT e.child_id FROM {t} AS p JOIN {e} AS e ON e.parent_id = p.id
        WHERE p.remaining < 0);
    UPDATE {t} SET status = 'pending', available_at = new.available_at
    WHERE status = 'waiting' AND remaining <= 0;
    UPDATE {t} SET remaining = 0 WHERE remaining < 0;
END"""


def _requeued_trigger(t: str) -> str:
    """The trigger taking back to waiting the descendants cancelled for a requeued task."""
    e = f"{t}_edges"
    named = f"'{PARENT_FAILED_PREFIX}: '"
    revived = (
        f"WITH RECURSIVE revived(id) AS ("
        f"SELECT c.id FROM {e} AS e JOIN {t} AS c ON c.id = e.child_id "
        "WHERE e.parent_id = new.id AND c.status = 'cancelled' "
        f"AND c.error = {named} || new.id || ' ended ' || old.status "
        f"UNION SELECT c.id FROM revived JOIN {e} AS e ON e.parent_id = revived.id "
        f"JOIN {t} AS c ON c.id = e.child_id "
        f"WHERE c.status = 'cancelled' AND c.error = {named} || revived.id || ' ended cancelled'"
        ") SELECT id FROM revived"
    )
    redoomed = (
        f"WITH RECURSIVE again(id) AS ("
        f"SELECT c.id FROM {t} AS c WHERE c.remaining < 0 AND c.remaining = {MARK_REVIVED} "
        f"AND EXISTS (SELECT 1 FROM {e} AS e JOIN {t} AS p ON p.id = e.parent_id "
        f"WHERE e.child_id = c.id AND p.status IN {UNSUCCESSFUL}) "
        f"UNION SELECT c.id FROM again JOIN {e} AS e ON e.parent_id = again.id "
        f"JOIN {t} AS c ON c.id = e.child_id WHERE c.remaining = {MARK_REVIVED}"
        ") SELECT id FROM again"
    )
    return f"""CREATE TRIGGER IF NOT EXISTS {t}_parent_requeued AFTER UPDATE OF status ON {t}
WHEN new.has_children AND new.remaining >= 0 AND old.status IN {UNSUCCESSFUL}
    AND new.status IN {ACTIVE}
BEGIN
    UPDATE {t} SET status = 'waiting', remaining = {MARK_REVIVED} WHERE id IN ({revived});
    UPDATE {t} SET status = 'cancelled', remaining = {MARK_REDOOMED} WHERE id IN ({redoomed});
    UPDATE {t} SET error = {failed_parent_error_sql(t, t)}
    WHERE remaining < 0 AND remaining = {MARK_REDOOMED};
    UPDATE {t} SET remaining = {unended_parents_sql(t, t)}
    WHERE status = 'waiting' AND remaining >= 0 AND id IN (
        SELECT child_id FROM {e} WHERE parent_id = new.id
        UNION SELECT e.child_id FROM {t} AS p JOIN {e} AS e ON e.parent_id = p.id
        WHERE p.remaining < 0 AND p.remaining = {MARK_REVIVED});
    UPDATE {t} SET error = NULL, finished_at = NULL, remaining = {unended_parents_sql(t, t)}
    WHERE remaining < 0 AND remaining = {MARK_REVIVED};
    UPDATE {t} SET remaining = 0 WHERE remaining < 0;
END"""
