"""The checks of option values, written once: counts, seconds, bounded numbers, names, and
the limits of what every backend can store (integer widths, times, text).

Each check returns the value normalized (ints stay ints, seconds become floats, names a
tuple) or raises `ConfigurationError` naming the option, what it must be, and what it got.
Used by `sitq.worker.WorkerConfig` (and through it the ``sitq worker`` command, its
``SITQ_*`` variables and ``[tool.sitq]``), `sitq.retry.RetryPolicy`,
`sitq.limits.ResourceLimits`, and the per-task options (`sitq.task.validate_options`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timezone

from .errors import ConfigurationError

#: The largest value a 64-bit signed integer column holds (SQLite INTEGER, PostgreSQL bigint);
#: the smallest accepted is its negation, so negating a stored value cannot overflow.
INT64_MAX = 2**63 - 1

#: The largest value a PostgreSQL ``integer`` column holds (32-bit signed).
INT32_MAX = 2**31 - 1

#: The earliest and latest times (epoch seconds) a stored time may hold: 0001-01-02 and
#: 9999-12-31 UTC, a day inside what `datetime` represents, so a stored time still is a
#: `datetime` once shown in any time zone.
EARLIEST_TIMESTAMP = datetime(1, 1, 2, tzinfo=timezone.utc).timestamp()
LATEST_TIMESTAMP = datetime(9999, 12, 31, tzinfo=timezone.utc).timestamp()


def is_number(value: object) -> bool:
    """True for an int or float that is not a bool (NaN and infinities included)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_count(name: str, value: object, *, minimum: int) -> int:
    """An int >= ``minimum`` (a bool is refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def check_seconds(name: str, value: object, *, allow_zero: bool = False) -> float:
    """A finite number of seconds, > 0 (or >= 0 with ``allow_zero``)."""
    if (
        not is_number(value)
        or not math.isfinite(value)  # type: ignore[arg-type]
        or value < 0  # type: ignore[operator]
        or (value == 0 and not allow_zero)
    ):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigurationError(
            f"{name} must be a number of seconds {bound} and finite, got {value!r}"
        )
    return float(value)  # type: ignore[arg-type]


def check_number(
    name: str,
    value: object,
    *,
    what: str,
    above: float | None = None,
    at_least: float | None = None,
    at_most: float | None = None,
) -> float:
    """A finite number within the bounds given; ``what`` says what it must be, e.g.
    ``"a number of MiB > 0"``, and is the start of the error message."""
    ok = is_number(value) and math.isfinite(value)  # type: ignore[arg-type]
    if ok:
        number = float(value)  # type: ignore[arg-type]
        ok = (
            (above is None or number > above)
            and (at_least is None or number >= at_least)
            and (at_most is None or number <= at_most)
        )
    if not ok:
        raise ConfigurationError(f"{name} must be {what}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def check_int_range(name: str, value: object, *, minimum: int, maximum: int, what: str) -> int:
    """An int (not a bool) in ``minimum..maximum``; ``what`` says what it must be, e.g.
    ``"an int (higher runs first)"``, and the range is added to the message."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ConfigurationError(
            f"{name} must be {what} between {minimum:,} and {maximum:,}, got {value!r}"
        )
    return value


def check_timestamp(name: str, value: float) -> float:
    """Epoch seconds a backend can store and a `datetime` can show: finite, between
    0001-01-02 and 9999-12-31 UTC; returned as a float."""
    try:
        seconds = float(value)
    except OverflowError:  # an int too large for a float is out of range all the same
        seconds = math.inf
    if not EARLIEST_TIMESTAMP <= seconds <= LATEST_TIMESTAMP:  # NaN fails it too
        raise ConfigurationError(
            f"{name} must be a time between 0001-01-02 and 9999-12-31 UTC (epoch seconds "
            f"{EARLIEST_TIMESTAMP:.0f} to {LATEST_TIMESTAMP:.0f}, finite), got {value!r}"
        )
    return seconds


def check_stored_text(name: str, value: str) -> str:
    """A string every backend stores as given: valid UTF-8 (no lone surrogates) and without
    NUL characters (PostgreSQL text cannot hold them)."""
    if "\x00" in value:
        raise ConfigurationError(f"{name} must not contain NUL characters ('\\x00'), got {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigurationError(
            f"{name} must be valid Unicode text (it has a lone surrogate, which UTF-8 cannot "
            f"encode), got {value!r}"
        ) from None
    return value


def check_flag(name: str, value: object) -> bool:
    """A bool."""
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be a bool (true or false), got {value!r}")
    return value


def check_jitter(name: str, value: object) -> bool | float:
    """True (full jitter), False, or a finite fraction in [0, 1]."""
    if isinstance(value, bool):
        return value
    return check_number(
        name,
        value,
        what="True (full jitter), False, or a fraction in [0, 1]",
        at_least=0,
        at_most=1,
    )


def check_names(name: str, value: object, *, what: str, hint: str = "") -> tuple[str, ...]:
    """One non-empty string, or a non-empty list of them; ``what`` names them ("queue names")."""
    names: object = [value] if isinstance(value, str) else value
    if isinstance(names, Iterable) and not isinstance(names, (bytes, dict)):
        names = list(names)
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise ConfigurationError(f"{name} must be a list of {what}, got {value!r}{hint}")
    return tuple(names)


def check_text(name: str, value: object) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{name} must be a non-empty string, got {value!r}")
    return value


def check_choice(name: str, value: object, choices: Iterable[str]) -> str:
    """One of ``choices``."""
    options = list(choices)
    if value not in options:
        raise ConfigurationError(f"unknown {name} {value!r}; choose one of: {', '.join(options)}")
    assert isinstance(value, str)
    return value


def check_callable(name: str, value: object) -> object:
    """A callable."""
    if not callable(value):
        raise ConfigurationError(f"{name} must be callable, got {value!r}")
    return value


__all__ = [
    "EARLIEST_TIMESTAMP",
    "INT32_MAX",
    "INT64_MAX",
    "LATEST_TIMESTAMP",
    "check_callable",
    "check_choice",
    "check_count",
    "check_flag",
    "check_int_range",
    "check_jitter",
    "check_names",
    "check_number",
    "check_seconds",
    "check_stored_text",
    "check_text",
    "check_timestamp",
    "is_number",
]
