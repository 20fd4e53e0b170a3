"""How many tasks finished per interval (``Backend.throughput``), the same for every backend.

A task counts in the bucket of its ``finished_at``: bucket ``k`` starts at ``since + k *
bucket_seconds``. Only the outcomes of runs count (succeeded, failed, dead); a cancelled task
never ran to an outcome.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from .errors import ConfigurationError
from .task import TaskStatus

#: The statuses `Backend.throughput` counts.
THROUGHPUT_STATUSES = (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.DEAD)

#: Buckets per pair of arguments at most: a caller asking for more asks for a mistake.
MAX_BUCKETS = 100_000


def check_throughput_args(since: float, bucket_seconds: float, now: float) -> None:
    """A `ConfigurationError` unless ``since`` and ``bucket_seconds`` are finite numbers, the
    bucket positive, and at most `MAX_BUCKETS` buckets lie between ``since`` and ``now``."""
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (since, bucket_seconds)):
        raise ConfigurationError(
            f"throughput(since={since!r}, bucket_seconds={bucket_seconds!r}) takes finite numbers"
        )
    if bucket_seconds <= 0:
        raise ConfigurationError(f"bucket_seconds must be > 0, not {bucket_seconds!r}")
    if (now - since) / bucket_seconds > MAX_BUCKETS:
        raise ConfigurationError(
            f"throughput since {since} by {bucket_seconds} s is over {MAX_BUCKETS} buckets; "
            "ask for a shorter span or larger buckets"
        )


def bucket_index(finished_at: float, since: float, bucket_seconds: float) -> int:
    """The bucket a task finished at ``finished_at`` falls in (0 for the first)."""
    return math.floor((finished_at - since) / bucket_seconds)


def fold_throughput(
    rows: Iterable[tuple[int, str | TaskStatus, int]], since: float, bucket_seconds: float
) -> dict[float, dict[TaskStatus, int]]:
    """``(bucket index, status, n)`` rows as bucket start → status → count (buckets and
    statuses without a task are absent)."""
    found: dict[float, dict[TaskStatus, int]] = {}
    for index, status, n in rows:
        counts = found.setdefault(since + int(index) * bucket_seconds, {})
        key = TaskStatus(status)
        counts[key] = counts.get(key, 0) + int(n)
    return found


__all__ = [
    "MAX_BUCKETS",
    "THROUGHPUT_STATUSES",
    "bucket_index",
    "check_throughput_args",
    "fold_throughput",
]
