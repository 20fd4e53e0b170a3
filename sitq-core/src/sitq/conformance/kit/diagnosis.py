"""What the kit adds to a failing test's message: the contract the test checks, and a hint
when the backend reads the wall clock instead of `Backend.clock`.

Every time of the contract is a ``clock()`` reading, and the kit replaces ``clock`` with a
`FakeClock` set years away from the wall clock, so a backend reading ``time.time()`` fails
many tests with bare differences between two large numbers; the hint says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ...backend import Backend
from ..clock import FakeClock
from ..records import make_record
from ..runner import LoopRunner

#: Bound, in seconds, on the probe of a backend's clock after a failure.
PROBE_TIMEOUT = 10.0
#: How close, in seconds, a stored time must be to one clock to be taken for its reading.
NEAR = 600.0

WALL_CLOCK_HINT = (
    "{backend} stored {field}={value!r}: that is the wall clock (time.time() is {wall:.1f}), "
    "not the backend's clock (clock() is {fake!r}). Every time of the contract (due checks, "
    "started_at, lease_expires_at, lease expiry, due times put back, cancels) is a "
    "self.clock() reading, and "
    "the kit replaces Backend.clock with a FakeClock: read self.clock(), never time.time()."
)


def reads_wall_clock(value: float | None, clock: FakeClock) -> bool:
    """True if ``value`` is near the wall clock's time and far from ``clock``'s."""
    if value is None:
        return False
    return abs(value - time.time()) < NEAR and abs(value - clock()) > NEAR


def wall_clock_message(backend: Backend, field: str, value: float | None, clock: FakeClock) -> str:
    """The hint for a stored ``field`` that holds a wall-clock time."""
    return WALL_CLOCK_HINT.format(
        backend=type(backend).__name__, field=field, value=value, wall=time.time(), fake=clock()
    )


async def wall_clock_hint(backend: Backend, clock: FakeClock) -> str | None:
    """The hint if ``backend`` stamps a task it claims with the wall clock; None otherwise,
    or if the probe itself fails or hangs (the test's own failure says more then)."""
    with contextlib.suppress(Exception):
        return await asyncio.wait_for(probe_claim_times(backend, clock), PROBE_TIMEOUT)
    return None


def fresh_backend_hint(make_backend: Callable[[Path], Awaitable[Backend]]) -> str | None:
    """`wall_clock_hint` for a new backend from ``make_backend``, on a folder of its own (for
    a failure found where no backend is left to probe, e.g. by the state machine)."""
    with (
        contextlib.suppress(Exception),
        tempfile.TemporaryDirectory() as folder,
        LoopRunner() as runner,
    ):
        clock = FakeClock()
        backend = runner.run(make_backend(Path(folder)))
        backend.clock = clock
        runner.run(backend.connect())
        try:
            return runner.run(wall_clock_hint(backend, clock))
        finally:
            runner.run(backend.close())
    return None


async def probe_claim_times(backend: Backend, clock: FakeClock) -> str | None:
    """Enqueue and claim one task; the hint if its claim times are wall-clock readings."""
    (task_id,) = await backend.enqueue_many([make_record(queue="sitq-kit-clock-probe")])
    claimed = await backend.claim_by_id(task_id, worker_id="clock-probe", lease_seconds=30)
    for field in ("started_at", "lease_expires_at"):
        value = getattr(claimed, field, None)
        if reads_wall_clock(value, clock):
            return wall_clock_message(backend, field, value, clock)
    return None


def contract_of(test: Any, name: str) -> str:
    """One line naming what the failed test ``name`` of ``test``'s class checks: its part of
    the contract (the kit mixin's docstring) and the test's own docstring, if any."""
    part, _, method = name.rpartition(".")
    mixin = next((c for c in type(test).__mro__ if c.__qualname__ == part), None)
    summary = first_line(mixin.__doc__) if mixin is not None else ""
    own = first_line(getattr(getattr(mixin, method, None), "__doc__", None))
    checks = " ".join(text for text in (summary, own) if text)
    return f"conformance {name} failed (the Backend contract in sitq.backend: {checks})"


def first_line(doc: str | None) -> str:
    """The first line of a docstring ('' for none)."""
    return doc.strip().splitlines()[0].strip() if doc and doc.strip() else ""


def explain(error: AssertionError, *lines: str | None) -> None:
    """Put ``lines`` (those not None) before ``error``'s message, in place, so that pytest
    shows them above the assertion's own explanation."""
    told = "\n".join(line for line in lines if line)
    if not told:
        return
    message = str(error.args[0]) if error.args else ""
    error.args = (f"{told}\n{message}" if message else told, *error.args[1:])
