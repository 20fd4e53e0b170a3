"""The one error sitq-postgres adds to sitq's own."""

from __future__ import annotations

from sitq import SitqError


class PostgresUnavailable(SitqError, ConnectionError):
    """The server stayed unreachable for longer than the backend's ``retry_timeout``."""
