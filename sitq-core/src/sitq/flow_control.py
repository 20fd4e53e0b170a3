"""Flow control kept in the store: rate and concurrency limits by key, paused queues, and the
rules every backend applies to them alike.

A limit is declared on a key pattern (`LimitRule`): an exact key such as ``"stripe"``, or a
family such as ``"tenant:*"`` meaning one separate limit per distinct key of that family
(``"tenant:42"``, ``"tenant:43"``...). A task holds concrete keys (`TaskRecord.limits`); a
claim takes a task only if every key it holds has a free concurrency slot and a rate token,
in the claim's own transaction, so the limits hold across every process and machine on the
store. Keys without a rule are not limited.

The decisions a backend makes here are written once in this module: which rule governs a
key (`rule_for`), how a token bucket refills (`refill`), and what a rule's rate text means
(`parse_rate`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import ConfigurationError

#: The suffix that makes a pattern a family of keys: ``"tenant:*"``.
WILDCARD = "*"

_PERIODS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*$")


@dataclass(frozen=True)
class LimitRule:
    """A limit declared on a key ``pattern`` (``queue.limit``), stored in the backend so that
    every worker on it enforces the same one.

    :param pattern: an exact key (``"stripe"``) or a family (``"tenant:*"``: each distinct key
        of it limited on its own).
    :param rate: tokens per second added to each key's bucket, or None for no rate limit.
    :param burst: the bucket's size: how many starts may happen at once after a quiet spell
        (at least 1; defaults to ``max(1, rate)`` rounded up when a rate is set).
    :param concurrency: at most this many running tasks hold each key at once, or None.
    """

    pattern: str
    rate: float | None = None
    burst: float | None = None
    concurrency: int | None = None

    def __post_init__(self) -> None:
        check_pattern(self.pattern)
        if self.rate is None and self.concurrency is None:
            raise ConfigurationError(
                f"limit {self.pattern!r} sets neither a rate nor a concurrency; "
                "e.g. queue.limit('stripe', rate='100/s') or queue.limit('tenant:*', concurrency=2)"
            )
        if self.rate is not None and not self.rate > 0:
            raise ConfigurationError(f"limit {self.pattern!r}: rate must be > 0, got {self.rate}")
        if self.burst is not None and (self.rate is None or not self.burst >= 1):
            raise ConfigurationError(
                f"limit {self.pattern!r}: burst needs a rate and must be >= 1, got {self.burst}"
            )
        if self.concurrency is not None and (
            isinstance(self.concurrency, bool)
            or not isinstance(self.concurrency, int)
            or self.concurrency < 1
        ):
            raise ConfigurationError(
                f"limit {self.pattern!r}: concurrency must be an int >= 1, got {self.concurrency!r}"
            )

    @property
    def bucket_size(self) -> float:
        """The most tokens a key's bucket holds (its burst), or 0 without a rate."""
        if self.rate is None:
            return 0.0
        if self.burst is not None:
            return float(self.burst)
        return float(max(1, -(-self.rate // 1)))

    @property
    def is_family(self) -> bool:
        """True for a ``prefix*`` pattern (one limit per distinct key)."""
        return self.pattern.endswith(WILDCARD)

    def matches(self, key: str) -> bool:
        """True if this rule governs ``key`` (see `rule_for` for which of several wins)."""
        if self.is_family:
            return key.startswith(self.pattern[:-1])
        return key == self.pattern


@dataclass(frozen=True)
class LimitState:
    """What ``sitq limits`` shows of one key: its rule, the tokens in its bucket now, how many
    running tasks hold it and how many pending ones wait for it.

    For a family rule with no key seen yet, ``key`` is the pattern itself and the counts are 0.
    """

    key: str
    rule: LimitRule
    tokens: float | None
    running: int
    waiting: int


def check_pattern(pattern: str) -> None:
    """Raise `ConfigurationError` unless ``pattern`` is a key or ``prefix*`` family."""
    if not isinstance(pattern, str) or not pattern or pattern.strip() != pattern:
        raise ConfigurationError(
            f"a limit key must be non-empty text without surrounding spaces, got {pattern!r}"
        )
    if WILDCARD in pattern[:-1]:
        raise ConfigurationError(
            f"limit pattern {pattern!r}: '*' may only end a pattern, as in 'tenant:*'"
        )


def check_key(key: str) -> None:
    """Raise `ConfigurationError` unless ``key`` is a concrete key a task may hold."""
    if not isinstance(key, str) or not key or key.strip() != key or WILDCARD in key:
        raise ConfigurationError(
            f"a task's limit key must be non-empty text without '*' or surrounding spaces, "
            f"got {key!r} (declare families with queue.limit('tenant:*', ...), and give each "
            "task its own key: limits=[f'tenant:{tenant_id}'])"
        )


def task_limits(keys: Iterable[str]) -> tuple[str, ...]:
    """The keys a task holds (``limits=[...]``), each checked (`check_key`), once each in
    their order; `ConfigurationError` for text given instead of a list."""
    if isinstance(keys, str):
        raise ConfigurationError(f"limits={keys!r} is text; give a list of keys: limits=[{keys!r}]")
    try:
        found = tuple(dict.fromkeys(keys))
    except TypeError:
        raise ConfigurationError(
            f"limits must be a list of keys such as ['stripe', 'tenant:42'], got {keys!r}"
        ) from None
    for key in found:
        check_key(key)
    return found


def rule_for(rules: Iterable[LimitRule], key: str) -> LimitRule | None:
    """The rule that governs ``key``: an exact pattern wins, else the family with the longest
    prefix; None if no rule matches (the key is not limited)."""
    best: LimitRule | None = None
    for rule in rules:
        if not rule.matches(key):
            continue
        if not rule.is_family:
            return rule
        if best is None or len(rule.pattern) > len(best.pattern):
            best = rule
    return best


def refill(tokens: float, refilled_at: float, now: float, rule: LimitRule) -> float:
    """The tokens in a key's bucket at ``now``, holding ``tokens`` at ``refilled_at``: ``rate``
    tokens a second, never more than `LimitRule.bucket_size` (a clock that stepped back adds
    none)."""
    if rule.rate is None:
        return 0.0
    return min(rule.bucket_size, tokens + max(0.0, now - refilled_at) * rule.rate)


def parse_rate(rate: str | float | None) -> float | None:
    """Tokens per second from ``"100/s"``, ``"30/m"``, ``"500/h"`` (or a number of tokens a
    second); None stays None."""
    if rate is None:
        return None
    if isinstance(rate, (int, float)) and not isinstance(rate, bool):
        return float(rate)
    match = _RATE.match(rate) if isinstance(rate, str) else None
    if match is None or match.group(2) not in _PERIODS:
        raise ConfigurationError(
            f"cannot read rate {rate!r}: write a count per second, minute or hour, "
            "e.g. '100/s', '30/m' or '500/h'"
        )
    return float(match.group(1)) / _PERIODS[match.group(2)]


__all__ = [
    "WILDCARD",
    "LimitRule",
    "LimitState",
    "check_key",
    "check_pattern",
    "parse_rate",
    "refill",
    "rule_for",
    "task_limits",
]
