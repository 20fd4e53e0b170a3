"""A SQLite store with tasks in every state, written through the backend as workers write it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sitq
from sitq.backend import Outcome

#: Arguments and errors an attacker could store: markup and both quote characters.
HOSTILE = "<script>alert('x')</script> \"quoted\""
WORKER_ID = "web-host:4242:abcd"


@dataclass
class Seeded:
    """The ids of the tasks `seed` stored, by what happened to them."""

    url: str
    pending: str
    running: str
    dead: str
    succeeded: str
    other_queue: str


async def seed(path: Path) -> Seeded:
    """Store a pending, a running, a dead (error and traceback hostile) and a succeeded task
    on queue ``default`` and a pending one on ``mail``, JSON-encoded so their arguments show."""
    url = f"sqlite:///{path}"
    async with sitq.TaskQueue(url, serializer="json") as queue:
        backend = queue.backend
        pending = await queue.enqueue("app.tasks:greet", HOSTILE, name=HOSTILE)
        dead = await queue.enqueue("app.tasks:explode", HOSTILE)
        succeeded = await queue.enqueue("app.tasks:add", 1, 2)
        running = await queue.enqueue("app.tasks:slow", 30)
        other_queue = await queue.enqueue("app.tasks:send", "a@b.c", queue="mail")
        for task_id, outcome in ((dead, "dead"), (succeeded, "succeeded"), (running, None)):
            claimed = await backend.claim_by_id(task_id, worker_id=WORKER_ID, lease_seconds=600)
            assert claimed is not None and claimed.lease_token is not None
            token = claimed.lease_token
            if outcome == "dead":
                failure = Outcome.dead(task_id, token, HOSTILE, f"Traceback {HOSTILE}")
                await backend.finish([failure])
            elif outcome == "succeeded":
                result = queue.envelope.seal_result(claimed, 3)
                await backend.finish([Outcome.succeeded(task_id, token, result)])
    return Seeded(url, pending, running, dead, succeeded, other_queue)
