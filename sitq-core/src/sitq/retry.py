"""When a failed task runs again: `RetryPolicy`."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .errors import ConfigurationError


@dataclass(frozen=True)
class RetryPolicy:
    """How many times a failed task is retried and how long to wait before each retry.

    The delay before retry ``n`` (1-based) is ``retry_delay * retry_backoff ** (n - 1)``, capped
    at ``max_retry_delay``; with ``retry_jitter`` it is drawn uniformly from zero to that
    ("full jitter"), which spreads out retries of tasks that failed together.

    :param max_retries: retries after the first attempt (a task's own ``max_retries`` wins).
    :param retry_failed: False turns retries off whatever the task says.
    """

    max_retries: int = 0
    retry_delay: float = 1.0
    retry_backoff: float = 1.0
    max_retry_delay: float = 3600.0
    retry_jitter: bool = False
    retry_failed: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise ConfigurationError(f"max_retries must be an int >= 0, got {self.max_retries!r}")
        if self.max_retries < 0:
            raise ConfigurationError(f"max_retries must be >= 0, got {self.max_retries}")
        for name in ("retry_delay", "max_retry_delay"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise ConfigurationError(f"{name} must be a number of seconds >= 0, got {value!r}")
        if not isinstance(self.retry_backoff, (int, float)) or self.retry_backoff < 1:
            raise ConfigurationError(
                f"retry_backoff must be >= 1 (1 = constant delay, 2 = doubling), "
                f"got {self.retry_backoff!r}"
            )

    def retries_allowed(self, task_max_retries: int | None) -> int:
        """Retries allowed for a task, given its own ``max_retries`` (None: the policy's)."""
        if not self.retry_failed:
            return 0
        return self.max_retries if task_max_retries is None else task_max_retries

    def will_retry(self, attempts: int, task_max_retries: int | None) -> bool:
        """True if a task that failed on attempt number ``attempts`` runs again."""
        return attempts <= self.retries_allowed(task_max_retries)

    def delay(self, retry_number: int) -> float:
        """Seconds to wait before retry number ``retry_number`` (1 for the first retry)."""
        delay = min(self.retry_delay * self.retry_backoff ** (retry_number - 1), self.max_retry_delay)
        if self.retry_jitter:
            delay = random.uniform(0, delay)
        return float(delay)
