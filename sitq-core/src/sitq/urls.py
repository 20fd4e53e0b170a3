"""`redact_url`: a backend URL fit to show (logs, banners, ``repr``), its password hidden."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

#: What stands for a hidden password.
HIDDEN = "***"


def redact_url(url: str) -> str:
    """``url`` with the password of its ``user:password@`` part replaced by ``***``.

    A URL holding no password comes back unchanged; so does text that is no URL.
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # a malformed netloc (e.g. a bad port): show nothing of it
        return url.split("://", 1)[0] + "://" + HIDDEN if "://" in url else HIDDEN
    if not password:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{HIDDEN}@{host}"))
