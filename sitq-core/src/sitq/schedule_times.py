"""When a schedule fires: cron expressions and fixed intervals, as pure functions of time.

A `Trigger` answers two questions, given epoch seconds: which fire times fall in ``(after,
until]`` (`Trigger.between`), and which is the last one at or before a time (`Trigger.last_at`).
Every scheduler process computes the same fire times from the same definition, so the store
can tell a fire already written from a new one by its time alone.

Cron expressions are parsed and walked by cronsim (five fields, or six with a leading seconds
field; ``@hourly`` and the other shortcuts are expanded here). The time-zone rule is cronsim's,
which is Debian cron's:

* an expression with a fixed minute and hour (``30 2 * * *``) runs by the wall clock of its
  time zone: on the spring-forward day a wall time that does not exist runs once, at the first
  valid wall time after it (02:30 in Europe/Berlin runs at 03:00); on the fall-back day a wall
  time that occurs twice runs once, at its first occurrence;
* an expression with a wildcard minute or hour (``*/5 * * * *``) and every six-field
  expression runs by elapsed time: every matching instant, so the repeated hour of the
  fall-back day runs again (it is another hour) and the skipped one does not.

A fixed interval (`Every`) ignores time zones: it fires at the multiples of its length since
the Unix epoch, so every process agrees on them without talking to each other.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from .errors import ConfigurationError

#: The cron shortcuts and the expressions they stand for.
CRON_SHORTCUTS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

#: The shortest interval `Every` accepts, in seconds.
MIN_INTERVAL = 1.0


def time_zone(tz: str | tzinfo | None) -> tzinfo:
    """``tz`` as a `tzinfo`: an IANA name (``"Europe/Berlin"``), a `tzinfo`, or None for UTC."""
    if tz is None:
        return timezone.utc
    if isinstance(tz, tzinfo):
        return tz
    if isinstance(tz, str):
        try:
            return ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    raise ConfigurationError(
        f"tz must be an IANA time zone name such as 'Europe/Berlin' (or a tzinfo, or None for "
        f"UTC), got {tz!r}; on Windows, pip install tzdata"
    )


def tz_name(tz: tzinfo) -> str:
    """The name a time zone is shown by (``Europe/Berlin``, ``UTC``)."""
    return str(getattr(tz, "key", None) or tz.tzname(None) or tz)


class Trigger:
    """When a schedule fires; see `Cron` and `Every`."""

    def between(self, after: float, until: float) -> Iterator[float]:
        """The fire times in ``(after, until]``, ascending, as epoch seconds."""
        raise NotImplementedError

    def last_at(self, at: float) -> float | None:
        """The last fire time at or before ``at`` (None if there is none)."""
        raise NotImplementedError

    def next_after(self, after: float) -> float | None:
        """The first fire time after ``after`` (None if there is none)."""
        return next(iter(self.between(after, math.inf)), None)

    def describe(self) -> str:
        """How ``sitq schedules`` shows it."""
        raise NotImplementedError


@dataclass(frozen=True)
class Cron(Trigger):
    """A cron expression evaluated in time zone ``tz``."""

    expression: str
    tz: tzinfo = timezone.utc

    def __post_init__(self) -> None:
        try:
            CronSim(self._expanded, datetime(2000, 1, 1, tzinfo=self.tz))
        except (CronSimError, ValueError, TypeError, AttributeError) as exc:
            raise ConfigurationError(
                f"cron={self.expression!r} is not a cron expression ({exc}); write five fields "
                "'minute hour day-of-month month day-of-week' (optionally a leading seconds "
                f"field), or one of {', '.join(CRON_SHORTCUTS)}"
            ) from None

    @property
    def _expanded(self) -> str:
        text = self.expression.strip() if isinstance(self.expression, str) else self.expression
        return CRON_SHORTCUTS.get(text.lower(), text) if isinstance(text, str) else text

    def between(self, after: float, until: float) -> Iterator[float]:
        """The fire times in ``(after, until]`` (see the module's time-zone rule)."""
        start = datetime.fromtimestamp(math.floor(after), self.tz)
        seen = after
        for fire in CronSim(self._expanded, start):
            at = fire.timestamp()
            if at > until:
                return
            if at > seen:  # a wall-clock walk may yield a time twice, or one behind ``after``
                seen = at
                yield at

    def last_at(self, at: float) -> float | None:
        """The last fire time at or before ``at``."""
        # the reverse walk starts one second later so that ``at`` itself is found
        start = datetime.fromtimestamp(math.floor(at) + 1, self.tz)
        for fire in itertools.islice(CronSim(self._expanded, start, reverse=True), 3):
            if fire.timestamp() <= at:
                return fire.timestamp()
        return None

    def describe(self) -> str:
        """The expression as written."""
        return f"cron {self.expression}"


@dataclass(frozen=True)
class Every(Trigger):
    """A fixed interval of ``seconds``, fired at its multiples since the Unix epoch."""

    seconds: float

    def __post_init__(self) -> None:
        if (
            isinstance(self.seconds, bool)
            or not isinstance(self.seconds, (int, float))
            or not MIN_INTERVAL <= self.seconds < math.inf
        ):
            raise ConfigurationError(
                f"every= must be a timedelta (or seconds) of at least {MIN_INTERVAL:g} s, got "
                f"{self.seconds!r}"
            )

    def between(self, after: float, until: float) -> Iterator[float]:
        """The multiples of the interval in ``(after, until]``."""
        step = self.seconds
        index = math.floor(after / step) + 1
        while (at := float(index * step)) <= until:
            if at > after:
                yield at
            index += 1

    def last_at(self, at: float) -> float | None:
        """The last multiple of the interval at or before ``at``."""
        return float(math.floor(at / self.seconds) * self.seconds)

    def describe(self) -> str:
        """``every 10s``, ``every 1:00:00`` and so on."""
        return f"every {timedelta(seconds=self.seconds)}"


def trigger(
    *, cron: str | None, every: timedelta | float | None, tz: str | tzinfo | None
) -> Trigger:
    """The trigger of ``cron=`` (in ``tz``) or ``every=``: exactly one of them."""
    if (cron is None) == (every is None):
        raise ConfigurationError(
            "a schedule needs exactly one of cron='*/5 * * * *' or every=timedelta(...), "
            f"got cron={cron!r} and every={every!r}"
        )
    if cron is not None:
        if not isinstance(cron, str):
            raise ConfigurationError(f"cron= must be a string, got {cron!r}")
        return Cron(cron, time_zone(tz))
    if tz is not None:
        raise ConfigurationError(
            "tz= applies to cron schedules only: every= fires at fixed multiples of its "
            "interval, whatever the time zone. Leave tz out, or use cron="
        )
    seconds = every.total_seconds() if isinstance(every, timedelta) else every
    return Every(seconds)  # type: ignore[arg-type]


__all__ = ["CRON_SHORTCUTS", "Cron", "Every", "Trigger", "time_zone", "trigger", "tz_name"]
