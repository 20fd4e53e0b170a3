"""Backend options and the URLs that carry them.

``postgresql://user:password@host:5432/db?table_prefix=app_&pgbouncer=true`` — the query
parameters below belong to sitq and are taken out of the URL; every other one goes to asyncpg
(``sslmode``, or any server setting such as ``application_name``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from sitq.errors import ConfigurationError

#: The longest identifier PostgreSQL keeps (longer ones are silently cut).
_MAX_IDENTIFIER = 63
#: The longest name sitq derives from the prefix: ``<prefix>schema_version``.
_LONGEST_SUFFIX = len("schema_version")
_PREFIX_RE = re.compile(r"[a-z_][a-z0-9_]*\Z")

_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True,
             "0": False, "false": False, "no": False, "off": False}  # fmt: skip


@dataclass(frozen=True)
class Options:
    """Everything a `PostgresBackend` is configured with, checked."""

    dsn: str
    table_prefix: str = "sitq_"
    pgbouncer: bool = False
    listen_dsn: str | None = None
    pool_min_size: int = 0
    pool_max_size: int = 10
    retry_timeout: float = 60.0
    connect_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not isinstance(self.dsn, str) or urlsplit(self.dsn).scheme not in (
            "postgresql",
            "postgres",
        ):
            raise ConfigurationError(
                f"PostgresBackend needs a URL like 'postgresql://user@host:5432/dbname', "
                f"got {self.dsn!r}"
            )
        check_prefix(self.table_prefix)
        for name in ("pool_min_size", "pool_max_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigurationError(f"{name} must be an int >= 0, got {value!r}")
        if self.pool_max_size < max(1, self.pool_min_size):
            raise ConfigurationError(
                f"pool_max_size ({self.pool_max_size}) must be >= 1 and >= pool_min_size "
                f"({self.pool_min_size})"
            )
        for name in ("retry_timeout", "connect_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigurationError(f"{name} must be a number of seconds > 0, got {value!r}")

    @property
    def listens(self) -> bool:
        """False behind PgBouncer without a direct ``listen_dsn`` (LISTEN needs a session)."""
        return not self.pgbouncer or self.listen_dsn is not None

    @property
    def location(self) -> str:
        """``host:port/database`` of the DSN, without credentials (for messages and keys)."""
        parts = urlsplit(self.dsn)
        host = parts.hostname or "localhost"
        database = unquote(parts.path.lstrip("/")) or parts.username or "postgres"
        return f"{host}:{parts.port or 5432}/{database}"


def check_prefix(prefix: str) -> None:
    """Reject a table prefix that is not a plain lower-case identifier start."""
    if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix):
        raise ConfigurationError(
            f"table_prefix {prefix!r} must be lower-case letters, digits and '_' and not start "
            "with a digit, e.g. 'sitq_' or 'billing_'"
        )
    if len(prefix) + _LONGEST_SUFFIX > _MAX_IDENTIFIER:
        raise ConfigurationError(
            f"table_prefix {prefix!r} is too long: keep it under "
            f"{_MAX_IDENTIFIER - _LONGEST_SUFFIX + 1} characters"
        )


def options_from_url(url: str, **overrides: Any) -> Options:
    """Split sitq's own query parameters out of ``url`` and build `Options`.

    ``postgresql+asyncpg://`` is accepted too; any other ``+driver`` is an error.
    """
    parts = urlsplit(url)
    scheme, _, driver = parts.scheme.partition("+")
    if driver and driver != "asyncpg":
        raise ConfigurationError(
            f"{url!r}: sitq-postgres runs on asyncpg; write postgresql://… "
            f"(or postgresql+asyncpg://…), not +{driver}"
        )
    ours: dict[str, Any] = {}
    theirs = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in ("table_prefix", "listen_url"):
            ours["listen_dsn" if key == "listen_url" else key] = value
        elif key == "pgbouncer":
            if value.lower() not in _BOOLEANS:
                raise ConfigurationError(f"{url!r}: pgbouncer={value!r}; write true or false")
            ours[key] = _BOOLEANS[value.lower()]
        elif key in ("pool_min_size", "pool_max_size"):
            ours[key] = _parse(url, key, value, int)
        elif key in ("retry_timeout", "connect_timeout"):
            ours[key] = _parse(url, key, value, float)
        else:
            theirs.append((key, value))
    dsn = urlunsplit((scheme, parts.netloc, parts.path, urlencode(theirs), parts.fragment))
    ours.update(overrides)
    return Options(dsn=dsn, **ours)


def _parse(url: str, key: str, value: str, kind: type) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise ConfigurationError(
            f"{url!r}: {key}={value!r} is not a{'n int' if kind is int else ' number'}"
        ) from None
