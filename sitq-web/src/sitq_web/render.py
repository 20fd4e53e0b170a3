"""The Jinja environment of the pages (autoescape everywhere) and their formatting filters."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from .security import CSRF_FIELD, FLASH_COOKIE, csrf_token


def when(epoch: float | None) -> str:
    """An epoch time as ``2026-12-02 05:40:01 UTC`` ("-" for None)."""
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    """Seconds as ``4 s``, ``3 min``, ``2 h`` or ``5 d`` ("-" for None)."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s" if abs(seconds) < 10 else f"{seconds:.0f} s"


def ago(epoch: float | None) -> str:
    """How long ago ``epoch`` was (``in …`` for a future time; "-" for None)."""
    if epoch is None:
        return "-"
    delta = time.time() - epoch
    return f"{duration(delta)} ago" if delta >= 0 else f"in {duration(-delta)}"


environment = Environment(
    loader=PackageLoader("sitq_web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters.update(when=when, ago=ago, duration=duration)


def page(request: Request, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    """Render ``template`` with ``values`` plus what every page uses (the dashboard, the CSRF
    token, the flash message)."""
    dashboard = request.app.state.dashboard
    html = environment.get_template(template).render(
        request=request,
        dashboard=dashboard,
        csrf_field=CSRF_FIELD,
        csrf_token=csrf_token(request),
        flash=unquote(request.cookies.get(FLASH_COOKIE, "")) or None,
        root=request.scope.get("root_path", ""),
        **values,
    )
    response = HTMLResponse(html, status_code=status_code)
    if FLASH_COOKIE in request.cookies:
        response.delete_cookie(FLASH_COOKIE)
    return response
