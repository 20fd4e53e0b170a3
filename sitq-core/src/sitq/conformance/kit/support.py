"""What every part of the conformance kit shares: `KitBase` (the ``make_backend`` hook),
`backend_test` and `requires` (a test body as a pytest test), and helpers that drive a backend
through its contract.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from ...backend import Backend, Capability, Outcome, TaskRecord
from ...task import TaskStatus
from ..clock import FakeClock
from ..records import make_record
from ..runner import LoopRunner
from .diagnosis import contract_of, explain, wall_clock_hint

#: Bound, in seconds, on waiting for a wake-up that should come at once.
WAKE_BOUND = 10.0
#: The lease, in seconds, of the kit's claims.
LEASE = 30.0

BackendTestBody = Callable[[Any, Backend, FakeClock], Awaitable[None]]


class KitBase:
    """The hook every part of the kit builds its backends with."""

    async def make_backend(self, tmp_path: Path) -> Backend:
        """A new backend on an empty store; ``tmp_path`` is a private folder for its files.

        The suite connects it, replaces its clock and closes it.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must define `async def make_backend(self, tmp_path)` "
            "returning a new backend on an empty store"
        )


def backend_test(body: BackendTestBody) -> Callable[[Any, Path], None]:
    """Turn ``async def test_x(self, backend, clock)`` into a pytest test.

    The test gets a fresh, connected backend from ``self.make_backend(tmp_path)`` whose clock
    is a `FakeClock`, runs on a private event loop and closes the backend afterwards. A failed
    assertion's message starts with the part of the contract the test checks, and with a hint
    if the backend reads the wall clock rather than its ``clock``.
    """

    def test(self: KitBase, tmp_path: Path) -> None:
        with LoopRunner() as runner:
            clock = FakeClock()
            backend = runner.run(self.make_backend(tmp_path))
            backend.clock = clock
            try:
                runner.run(backend.connect())
                runner.run(body(self, backend, clock))
            except AssertionError as error:
                hint = runner.run(wall_clock_hint(backend, clock))
                explain(error, contract_of(self, body.__qualname__), hint)
                raise
            finally:
                runner.run(backend.close())

    test.__name__ = body.__name__
    test.__qualname__ = body.__qualname__
    test.__doc__ = body.__doc__
    test.__module__ = body.__module__
    return test


def requires(capability: Capability) -> Callable[[BackendTestBody], Callable[[Any, Path], None]]:
    """Like `backend_test`, for a test of an optional part of the contract: skipped, with a
    reason naming ``capability``, when the backend does not declare it."""

    def decorate(body: BackendTestBody) -> Callable[[Any, Path], None]:
        @functools.wraps(body)
        async def checked(self: Any, b: Backend, clock: FakeClock) -> None:
            if not b.supports(capability):
                pytest.skip(
                    f"{type(b).__name__} does not declare Capability.{capability.name} "
                    "in its capabilities"
                )
            await body(self, b, clock)

        return backend_test(checked)

    return decorate


# -- helpers -----------------------------------------------------------------------------------


async def enqueue(b: Backend, n: int = 1, **fields: Any) -> list[str]:
    """Enqueue ``n`` records built with ``fields``; return their ids."""
    return await b.enqueue_many([make_record(**fields) for _ in range(n)])


async def claim(b: Backend, limit: int = 1, *, worker: str = "w1", **kw: Any) -> list[TaskRecord]:
    """Claim up to ``limit`` tasks with a 30-second lease."""
    return await b.claim(worker_id=worker, limit=limit, lease_seconds=LEASE, **kw)


async def claim_one(b: Backend, **kw: Any) -> TaskRecord:
    """Claim exactly one task (fails the test if none is claimable)."""
    got = await claim(b, 1, **kw)
    assert len(got) == 1, f"expected to claim one task, claimed {len(got)}"
    return got[0]


async def stored(b: Backend, task_id: str) -> TaskRecord:
    """The stored record of a task that must exist."""
    record = await b.get_task(task_id)
    assert record is not None, f"get_task({task_id!r}) returned None"
    return record


async def status_of(b: Backend, task_id: str) -> TaskStatus:
    """The stored status of a task that must exist."""
    return (await stored(b, task_id)).status


def ids_of(records: Iterable[TaskRecord]) -> list[str]:
    """The ids of ``records``, in order."""
    return [r.id for r in records]


#: The statuses `in_status` brings a lone task to: every one but ``waiting``, which needs
#: parents (the workflow tests make those).
LONE_STATUSES = tuple(s for s in TaskStatus if s is not TaskStatus.WAITING)


async def in_status(b: Backend, status: TaskStatus, **fields: Any) -> str:
    """A new task brought to ``status`` (one of `LONE_STATUSES`) through the contract's own
    operations."""
    assert status in LONE_STATUSES, f"a lone task cannot be {status.value}"
    (task_id,) = await enqueue(b, **fields)
    if status is TaskStatus.PENDING:
        return task_id
    if status is TaskStatus.CANCELLED:
        assert await b.cancel(task_id)
        return task_id
    record = await b.claim_by_id(task_id, worker_id="w1", lease_seconds=LEASE)
    assert record is not None and record.lease_token is not None
    if status is TaskStatus.SUCCEEDED:
        assert await b.complete(task_id, record.lease_token, b"ok")
    elif status is TaskStatus.FAILED:
        assert await b.fail(task_id, record.lease_token, "ValueError: boom", "Traceback: ...")
    elif status is TaskStatus.DEAD:
        assert await b.finish([Outcome.dead(task_id, record.lease_token, "cannot decode")])
    return task_id


async def woken(waiter: asyncio.Task[Any], poke: Callable[[], Awaitable[Any]]) -> None:
    """Assert ``waiter`` finishes soon after ``poke``; pokes again now and then, in case the
    backend needed a moment to start listening."""
    deadline = asyncio.get_running_loop().time() + WAKE_BOUND
    await asyncio.sleep(0.01)
    while not waiter.done():
        assert asyncio.get_running_loop().time() < deadline, "no wake-up within 10 s"
        await poke()
        await asyncio.wait([waiter], timeout=0.5)
    waiter.result()


def in_threads(count: int, work: Callable[[int], Awaitable[Any]]) -> list[Any]:
    """Run ``work(i)`` for ``i in range(count)``, each on its own thread and event loop."""
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def main(i: int) -> None:
        try:
            results[i] = asyncio.run(asyncio.wait_for(work(i), 60))
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=main, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not any(t.is_alive() for t in threads), "a thread did not finish within 90 s"
    if errors:
        raise errors[0]
    return results
