"""`FakeClock`: a clock tests move by hand, to replace `Backend.clock`."""

from __future__ import annotations

import threading

#: Where a `FakeClock` starts: a realistic epoch time, exact in binary floating point.
DEFAULT_START = 1_700_000_000.0


class FakeClock:
    """A callable returning epoch seconds that only moves when told to.

    Assign it to a backend (``backend.clock = clock``) to test due times and lease expiry
    without sleeping. Safe to read from several threads.
    """

    def __init__(self, start: float = DEFAULT_START) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        """The current fake time."""
        return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (never backward); return the new time."""
        if seconds < 0:
            raise ValueError(f"a FakeClock only moves forward, got advance({seconds!r})")
        with self._lock:
            self._now += seconds
            return self._now

    def __repr__(self) -> str:
        return f"FakeClock({self._now!r})"
