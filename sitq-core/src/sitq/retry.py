"""When a failed task runs again: `RetryPolicy`."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .errors import ConfigurationError


@dataclass(frozen=True)
class RetryPolicy:
    """How many times a failed task is retried and how long to wait before each retry.

    The delay before retry ``n`` (1-based) is ``retry_delay * retry_backoff ** (n - 1)``, capped
    at ``max_retry_delay``: ``retry_backoff=1`` waits the same each time, ``2`` doubles it.
    ``retry_jitter`` spreads out retries of tasks that failed together: ``True`` draws the
    delay uniformly from zero to that value ("full jitter"); a fraction ``j`` in (0, 1] draws
    it from ``(1 - j)`` times that value up to it (``0.1``: up to 10 % shorter); ``False`` or
    ``0`` keeps it exact.

    :param max_retries: retries after the first attempt (a task's own ``max_retries`` wins).
    :param retry_failed: False turns retries off whatever the task says.
    """

    max_retries: int = 0
    retry_delay: float = 1.0
    retry_backoff: float = 1.0
    max_retry_delay: float = 3600.0
    retry_jitter: bool | float = False
    retry_failed: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise ConfigurationError(f"max_retries must be an int >= 0, got {self.max_retries!r}")
        if self.max_retries < 0:
            raise ConfigurationError(f"max_retries must be >= 0, got {self.max_retries}")
        for name in ("retry_delay", "max_retry_delay"):
            value = getattr(self, name)
            if not _number(value) or value < 0:
                raise ConfigurationError(f"{name} must be a number of seconds >= 0, got {value!r}")
        if not _number(self.retry_backoff) or self.retry_backoff < 1:
            raise ConfigurationError(
                f"retry_backoff must be >= 1 (1 = constant delay, 2 = doubling), "
                f"got {self.retry_backoff!r}"
            )
        jitter = self.retry_jitter
        if not isinstance(jitter, bool) and (not _number(jitter) or not 0 <= jitter <= 1):
            raise ConfigurationError(
                f"retry_jitter must be True (full jitter), False, or a fraction in [0, 1], "
                f"got {jitter!r}"
            )

    def retries_allowed(self, task_max_retries: int | None) -> int:
        """Retries allowed for a task, given its own ``max_retries`` (None: the policy's)."""
        if not self.retry_failed:
            return 0
        return self.max_retries if task_max_retries is None else task_max_retries

    def will_retry(self, attempts: int, task_max_retries: int | None) -> bool:
        """True if a task that failed on attempt number ``attempts`` runs again."""
        return attempts <= self.retries_allowed(task_max_retries)

    def base_delay(self, retry_number: int) -> float:
        """The delay before retry ``retry_number`` (1 for the first retry), without jitter."""
        exponent = max(0, retry_number - 1)
        try:
            delay = self.retry_delay * self.retry_backoff**exponent
        except OverflowError:
            delay = self.max_retry_delay
        return float(min(delay, self.max_retry_delay))

    def delay(self, retry_number: int) -> float:
        """Seconds to wait before retry number ``retry_number`` (1 for the first retry)."""
        delay = self.base_delay(retry_number)
        jitter = self.retry_jitter
        if jitter is True:
            return random.uniform(0, delay)
        if jitter:
            return random.uniform(delay * (1 - float(jitter)), delay)
        return delay


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
