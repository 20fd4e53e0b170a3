"""One claiming process of the kit's cross-process claim test (`CrossProcessClaimTests`).

Run as ``python -m sitq.conformance.claimer MODULE QUALNAME URL WORKER_ID``: opens
``MODULE.QUALNAME.from_url(URL)``, prints ``{"pending": n}`` (the pending tasks it sees), then
waits for a line on stdin: ``go`` claims and completes tasks until none is left and prints
``{"claimed": [ids]}``; anything else exits at once. Errors go to stderr, exit status 1.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from typing import Any

from ..backend import Backend
from ..task import TaskStatus

#: Bound, in seconds, on each phase of the child (opening, then claiming).
PHASE_TIMEOUT = 60.0
#: Tasks taken per claim: small, so that the processes' claims interleave.
BATCH = 4


def backend_class(module: str, qualname: str) -> type[Backend]:
    """The class ``module.qualname``."""
    found: Any = importlib.import_module(module)
    for name in qualname.split("."):
        found = getattr(found, name)
    if not (isinstance(found, type) and issubclass(found, Backend)):
        raise TypeError(f"{module}.{qualname} is not a Backend subclass")
    return found


async def drain(backend: Backend, worker_id: str) -> list[str]:
    """Claim and complete tasks until none is left; the ids this process claimed."""
    mine: list[str] = []
    while batch := await backend.claim(worker_id=worker_id, limit=BATCH, lease_seconds=300):
        for task in batch:
            assert task.lease_token, f"claim returned {task.id} without a lease token"
            assert await backend.complete(task.id, task.lease_token, None), (
                f"{worker_id} could not complete {task.id}, which it had just claimed: "
                "another process holds it (a claim is not atomic across processes)"
            )
            mine.append(task.id)
    return mine


async def main(module: str, qualname: str, url: str, worker_id: str) -> None:
    """Open the store, report what it sees, then claim on ``go``."""
    backend = backend_class(module, qualname).from_url(url)
    await asyncio.wait_for(backend.connect(), PHASE_TIMEOUT)
    try:
        pending = (await asyncio.wait_for(backend.counts(), PHASE_TIMEOUT))[TaskStatus.PENDING]
        print(json.dumps({"pending": pending}), flush=True)
        order = await asyncio.to_thread(sys.stdin.readline)
        if order.strip() == "go":
            claimed = await asyncio.wait_for(drain(backend, worker_id), PHASE_TIMEOUT)
            print(json.dumps({"claimed": claimed}), flush=True)
    finally:
        await backend.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
