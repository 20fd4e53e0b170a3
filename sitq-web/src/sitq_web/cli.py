"""``sitq web APP``: serve the dashboard with uvicorn."""

from __future__ import annotations

import socket

import click

from sitq.cli.app import load_app
from sitq.errors import SitqError

from .app import create_app
from .security import check_bind

DEFAULT_PORT = 8700


@click.command("web")
@click.argument("app", envvar="SITQ_APP")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int, help="Port.")
@click.option(
    "--token",
    envvar="SITQ_WEB_TOKEN",
    default=None,
    help="Require this token (Authorization: Bearer, or ?token= once). Needed to listen "
    "beyond this machine. [env: SITQ_WEB_TOKEN]",
)
@click.option("--read-only", is_flag=True, help="Show everything, change nothing.")
@click.option("--title", default=None, help="The name in the page header.")
def web_command(
    app: str, host: str, port: int, token: str | None, read_only: bool, title: str | None
) -> None:
    """Serve the dashboard of APP's queue (module:queue, or a backend URL) on http://HOST:PORT.

    Port 0 takes a free port; the address is printed once listening.
    """
    import uvicorn

    try:
        check_bind(host, token)
        queue = app if "://" in app else load_app(app)
        asgi = create_app(queue, auth=token, read_only=read_only, title=title)
    except SitqError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listening = socket.create_server((host.strip("[]"), port), family=family)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    mode = " (read-only)" if read_only else ""
    click.echo(f"sitq web: http://{shown}:{listening.getsockname()[1]}/{mode}", err=False)
    server = uvicorn.Server(uvicorn.Config(asgi, log_level="warning"))
    server.run(sockets=[listening])
