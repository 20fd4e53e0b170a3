"""When a failed task runs again: `RetryPolicy`."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .validation import check_count, check_flag, check_jitter, check_number, check_seconds


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
        check_count("max_retries", self.max_retries, minimum=0)
        check_seconds("retry_delay", self.retry_delay, allow_zero=True)
        check_seconds("max_retry_delay", self.max_retry_delay, allow_zero=True)
        check_number(
            "retry_backoff",
            self.retry_backoff,
            what="a finite number >= 1 (1 = constant delay, 2 = doubling)",
            at_least=1,
        )
        check_jitter("retry_jitter", self.retry_jitter)
        check_flag("retry_failed", self.retry_failed)

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
