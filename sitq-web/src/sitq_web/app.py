"""`create_app`: the dashboard as a Starlette ASGI app, to mount in any ASGI framework."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from sitq.backend import Backend
from sitq.errors import ConfigurationError
from sitq.queue import TaskQueue
from sitq.sync import SyncTaskQueue

from . import actions, views
from .dashboard import AuthHook, Dashboard
from .security import guard

#: The routes of the dashboard: its DOM contract's pages and actions.
ROUTES = [
    Route("/", views.overview, name="overview"),
    Route("/tasks", views.tasks, name="tasks"),
    Route("/tasks/bulk", actions.bulk_action, methods=["POST"], name="bulk"),
    Route("/tasks/{task_id}", views.task_detail, name="task"),
    Route("/tasks/{task_id}/{action}", actions.task_action, methods=["POST"], name="task_action"),
    Route("/workers", views.workers, name="workers"),
    Route("/schedules", views.schedules, name="schedules"),
    Route(
        "/schedules/{name}/{action}",
        actions.schedule_action,
        methods=["POST"],
        name="schedule_action",
    ),
    Route("/limits", views.limits, name="limits"),
    Route("/queues/{name}/{action}", actions.queue_action, methods=["POST"], name="queue_action"),
    Route("/workflows", views.workflows, name="workflows"),
    Route("/workflows/{workflow_id}", views.workflow_detail, name="workflow"),
    Route(
        "/workflows/{workflow_id}/cancel",
        actions.workflow_cancel,
        methods=["POST"],
        name="workflow_cancel",
    ),
    Route("/api/summary", views.summary_json, name="summary"),
]


def _queues_of(
    queue_or_url: TaskQueue | SyncTaskQueue | Backend | str,
) -> tuple[TaskQueue, TaskQueue, bool]:
    """The queue whose store the app reads and changes, the queue that decodes what it shows
    (serializers, signing key, declared schedules), and whether the app opened the first
    (and so closes it)."""
    if isinstance(queue_or_url, TaskQueue):
        return queue_or_url, queue_or_url, False
    if isinstance(queue_or_url, SyncTaskQueue):
        # its connections belong to its own loop thread: the app opens the store again
        base = queue_or_url.async_queue
        if base.backend.url is None:
            raise ConfigurationError(
                "create_app() opens a SyncTaskQueue's store again on its own event loop, by "
                "URL, and this one's backend has none; pass the URL or a TaskQueue instead"
            )
        return TaskQueue(base.backend.url, plugins=base.plugins), base, True
    if isinstance(queue_or_url, (Backend, str)):
        queue = TaskQueue(queue_or_url)
        return queue, queue, True
    raise ConfigurationError(
        f"create_app() takes a TaskQueue, a SyncTaskQueue, a Backend or a backend URL, not "
        f"{type(queue_or_url).__name__}"
    )


def _check_auth(auth: Any) -> AuthHook:
    if auth is None or callable(auth) or (isinstance(auth, str) and auth):
        return auth  # type: ignore[no-any-return]
    raise ConfigurationError(
        "auth= takes a token string, a callable (request) -> bool, or None; "
        f"got {type(auth).__name__} {auth!r}"
    )


def create_app(
    queue_or_url: TaskQueue | SyncTaskQueue | Backend | str,
    *,
    auth: AuthHook = None,
    read_only: bool = False,
    title: str | None = None,
) -> Starlette:
    """The dashboard of ``queue_or_url``'s store, as an ASGI app.

    :param queue_or_url: your `TaskQueue` (its serializers and signing key decode the
        arguments shown), a `SyncTaskQueue`, a `Backend`, or a backend URL.
    :param auth: None (anyone who reaches it), a token string (sent as ``Authorization:
        Bearer TOKEN``, or once as ``?token=TOKEN``, then kept in a cookie), or a callable
        ``(request) -> bool`` (your framework's session check).
    :param read_only: show, never act: no action forms, and every POST is refused (403).
    :param title: the name in the page header (default ``sitq``).

    Mount it (``app.mount("/sitq", create_app(queue))``) or run it with ``sitq web``. The
    store is connected on the first request and closed at shutdown if the app opened it.
    """
    queue, decoder, owns = _queues_of(queue_or_url)
    dashboard = Dashboard(queue, decoder, _check_auth(auth), read_only, title or "sitq", owns)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await dashboard.close()

    routes = [
        *ROUTES,
        Mount("/static", StaticFiles(packages=[("sitq_web", "static")]), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=partial(_guard, auth=dashboard.auth))],
        lifespan=lifespan,
    )
    app.state.dashboard = dashboard
    return app


async def _guard(request: Any, call_next: Any, auth: AuthHook) -> Any:
    return await guard(request, call_next, auth)
