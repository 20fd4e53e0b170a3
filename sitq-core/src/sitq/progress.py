"""`Progress`: how far a running task says it is, and the rule for what it may say.

A task reports it with ``sitq.current_task().set_progress(0.4, "step 2 of 5")``; the worker
stores the latest value with the task (throttled, see `sitq.worker.progress`), and readers see
it as `Task.progress`. Progress is kept until the task sets it again: a retried task shows the
last value of its previous attempt until its new attempt reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError

#: The longest progress message accepted (UTF-8 bytes).
MAX_MESSAGE_BYTES = 1024


@dataclass(frozen=True, slots=True)
class Progress:
    """A task's reported progress.

    :ivar fraction: how much is done, from 0.0 to 1.0.
    :ivar message: what it is doing, or None.
    :ivar updated_at: when it was reported (epoch seconds).
    """

    fraction: float
    message: str | None = None
    updated_at: float = 0.0

    def __str__(self) -> str:
        text = f"{self.fraction:.0%}"
        return f"{text} {self.message}" if self.message else text


def check_progress(fraction: Any, message: Any = None) -> tuple[float, str | None]:
    """Check a reported progress; return it as ``(float, message)``, or raise
    `ConfigurationError` naming the problem."""
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, (int, float))
        or not math.isfinite(fraction)
        or not 0.0 <= fraction <= 1.0
    ):
        raise ConfigurationError(
            f"progress must be a finite number from 0.0 to 1.0 (a fraction, not a percent), "
            f"got {fraction!r}"
        )
    if message is not None:
        if not isinstance(message, str):
            raise ConfigurationError(
                f"progress message must be a string or None, got {type(message).__name__}"
            )
        if len(message.encode()) > MAX_MESSAGE_BYTES:
            raise ConfigurationError(
                f"progress message is over {MAX_MESSAGE_BYTES} bytes; keep it to one short line"
            )
    return float(fraction), message


def progress_from_row(
    fraction: float | None, message: str | None, updated_at: float | None
) -> Progress | None:
    """The `Progress` stored in three columns (None when never reported)."""
    if fraction is None:
        return None
    return Progress(float(fraction), message, 0.0 if updated_at is None else float(updated_at))


__all__ = ["MAX_MESSAGE_BYTES", "Progress", "check_progress", "progress_from_row"]
