"""`LoopRunner`: run coroutines from synchronous test code on one private event loop.

The kit does not need pytest-asyncio: every test is a plain function that drives its own loop.
One loop serves a whole test, so a backend's connections stay on the loop that opened them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

#: Upper bound, in seconds, on any single step a test runs; a hung backend fails, not hangs.
STEP_TIMEOUT = 60.0


class LoopRunner:
    """A private event loop; `run` drives one awaitable to completion on it."""

    def __init__(self, step_timeout: float = STEP_TIMEOUT) -> None:
        self.loop = asyncio.new_event_loop()
        self.step_timeout = step_timeout

    def run(self, awaitable: Awaitable[T]) -> T:
        """Run ``awaitable`` and return its result; fail after ``step_timeout`` seconds."""
        return self.loop.run_until_complete(asyncio.wait_for(awaitable, self.step_timeout))

    def close(self) -> None:
        """Cancel what is left on the loop and close it (idempotent)."""
        if self.loop.is_closed():
            return
        try:
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()

    def __enter__(self) -> LoopRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
