"""Who may look and act: the auth hook, the CSRF check of actions and the security headers."""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from sitq.errors import ConfigurationError

from .dashboard import AuthHook

#: The cookie holding the dashboard token once given as ``?token=``.
TOKEN_COOKIE = "sitq_web_token"
#: The cookie holding the CSRF secret that each action's ``csrf_token`` field must repeat.
CSRF_COOKIE = "sitq_web_csrf"
#: The cookie carrying the message an action leaves for the page it redirects to.
FLASH_COOKIE = "sitq_web_flash"
#: The form field of every action holding the CSRF token.
CSRF_FIELD = "csrf_token"

#: Headers on every response. The pages load their script and style from /static only.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def token_of(request: Request) -> str | None:
    """The token a request carries: ``Authorization: Bearer``, ``?token=`` or the cookie."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    return request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE)


def allowed(auth: AuthHook, request: Request) -> bool:
    """True if ``auth`` lets ``request`` in (no hook: everyone)."""
    if auth is None:
        return True
    if isinstance(auth, str):
        given = token_of(request)
        return given is not None and hmac.compare_digest(given.encode(), auth.encode())
    return bool(auth(request))


def csrf_token(request: Request) -> str:
    """The CSRF token of this browser: the cookie's, or a new one the response sets
    (`guard` sets it on the response)."""
    existing = request.cookies.get(CSRF_COOKIE)
    if existing:
        return existing
    token: str | None = getattr(request.state, "new_csrf", None)
    if token is None:
        token = request.state.new_csrf = secrets.token_urlsafe(32)
    return token


def csrf_valid(request: Request, submitted: object) -> bool:
    """True if ``submitted`` repeats the request's CSRF cookie (double-submit)."""
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not isinstance(submitted, str) or not submitted:
        return False
    return hmac.compare_digest(cookie.encode(), submitted.encode())


Handler = Callable[[Request], Awaitable[Response]]


async def guard(request: Request, call_next: Handler, auth: AuthHook) -> Response:
    """Refuse a request ``auth`` does not allow (401); remember a ``?token=`` in a cookie
    (and drop it from the address); set the CSRF cookie a page handed out; add
    `SECURITY_HEADERS`."""
    static = request.url.path.startswith(request.scope.get("root_path", "") + "/static/")
    secure = request.url.scheme == "https"
    if not static and not allowed(auth, request):
        response: Response = PlainTextResponse(
            "sitq-web: not authorized (give the dashboard token)", status_code=401
        )
    elif isinstance(auth, str) and "token" in request.query_params and request.method == "GET":
        query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
        response = RedirectResponse(request.url.replace(query=query), status_code=303)
        # lax: a link from elsewhere still opens the dashboard; actions need the CSRF token
        response.set_cookie(TOKEN_COOKIE, auth, httponly=True, samesite="lax", secure=secure)
    else:
        response = await call_next(request)
    new_csrf = getattr(request.state, "new_csrf", None)
    if new_csrf:
        response.set_cookie(CSRF_COOKIE, new_csrf, httponly=True, samesite="strict", secure=secure)
    response.headers.update(SECURITY_HEADERS)
    return response


def is_loopback(host: str) -> bool:
    """True if ``host`` is reachable only from this machine (``127.0.0.1``, ``::1``,
    ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, auth: AuthHook) -> None:
    """Refuse to serve on ``host`` beyond this machine without an auth hook."""
    if auth is None and not is_loopback(host):
        raise ConfigurationError(
            f"refusing to serve the dashboard on {host} without authentication: anyone who "
            "reaches it could retry, cancel and delete tasks. Give --token TOKEN (or "
            "SITQ_WEB_TOKEN; auth= when you mount create_app yourself), or bind 127.0.0.1"
        )
