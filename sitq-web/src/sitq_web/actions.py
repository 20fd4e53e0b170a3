"""The actions (POST only): retry, cancel and delete tasks, one or in bulk; pause and resume
queues and schedules; cancel a workflow.

Each checks read-only mode and the CSRF token first (403), goes through the backend (so every
worker on the store sees it at once), then redirects back with a flash message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from sitq.backend import Backend, Capability
from sitq.errors import ConfigurationError

from .dashboard import Dashboard
from .security import CSRF_FIELD, FLASH_COOKIE, csrf_valid
from .tasks_query import BULK_LIMIT, TaskFilter, every_match

#: What a bulk action may be, and the backend call applying it to one task.
TASK_ACTIONS: dict[str, Callable[[Backend, str], Awaitable[bool]]] = {
    "retry": lambda backend, task_id: backend.requeue(task_id),
    "cancel": lambda backend, task_id: backend.cancel(task_id),
    "delete": lambda backend, task_id: _delete_one(backend, task_id),
}

#: The longest flash message kept (a cookie holds it).
MAX_FLASH = 500

#: Past tense of each action, for the flash message.
DONE = {"retry": "requeued", "cancel": "cancelled", "delete": "deleted"}


async def _delete_one(backend: Backend, task_id: str) -> bool:
    return await backend.delete_tasks([task_id]) == 1


#: The last path segment of a queue or schedule action.
SWITCHES = ("pause", "resume")


async def _checked_form(
    request: Request, actions: Sequence[str] = SWITCHES
) -> tuple[Dashboard, FormData] | Response:
    """The dashboard and the form of an allowed action; or the 404 of an unknown action
    (``{action}`` not in ``actions``), the 403 refusing it."""
    dashboard: Dashboard = request.app.state.dashboard
    action = request.path_params.get("action")
    if action is not None and action not in actions:
        return PlainTextResponse(f"no action {action!r} here", status_code=404)
    if dashboard.read_only:
        return PlainTextResponse("sitq-web is read-only: actions are disabled", status_code=403)
    form = await request.form()
    if not csrf_valid(request, form.get(CSRF_FIELD)):
        return PlainTextResponse(
            "sitq-web: missing or wrong CSRF token; reload the page and try again",
            status_code=403,
        )
    await dashboard.ready()
    return dashboard, form


def back(request: Request, form: FormData, default: str, message: str) -> Response:
    """Redirect (303) to the form's ``next`` page (a path of this app) or ``default``,
    leaving ``message`` for it to show."""
    target = form.get("next")
    if not isinstance(target, str) or not _local(target):
        target = default
    root = request.scope.get("root_path", "")
    response = RedirectResponse(root + target, status_code=303)
    flash = quote(message[:MAX_FLASH])
    secure = request.url.scheme == "https"
    response.set_cookie(FLASH_COOKIE, flash, httponly=True, samesite="strict", secure=secure)
    return response


def _local(path: str) -> bool:
    """True for a path of this app: not another site (``//host``, ``/\\host``, which
    browsers read as ``//host``)."""
    return path.startswith("/") and not path.startswith("//") and "\\" not in path


async def task_action(request: Request) -> Response:
    """``/tasks/{id}/retry``, ``/cancel`` and ``/delete``."""
    checked = await _checked_form(request, tuple(TASK_ACTIONS))
    if isinstance(checked, Response):
        return checked
    dashboard, form = checked
    task_id, action = request.path_params["task_id"], request.path_params["action"]
    try:
        done = await TASK_ACTIONS[action](dashboard.backend, task_id)
    except ConfigurationError as exc:
        return back(request, form, f"/tasks/{task_id}", f"{action} failed: {exc}")
    dashboard.forget_readings()
    message = (
        f"task {task_id} {DONE[action]}"
        if done
        else f"task {task_id} not {DONE[action]}: it is not in a state that allows it"
    )
    default = "/tasks" if action == "delete" and done else f"/tasks/{task_id}"
    return back(request, form, default, message)


async def bulk_action(request: Request) -> Response:
    """``/tasks/bulk``: ``action`` over the selected ``ids``, or over every task of the
    filter (``scope=filter`` with the filter's fields), at most `BULK_LIMIT` at once."""
    checked = await _checked_form(request)
    if isinstance(checked, Response):
        return checked
    dashboard, form = checked
    action = form.get("action")
    if not isinstance(action, str) or action not in TASK_ACTIONS:
        return PlainTextResponse(
            f"unknown bulk action {action!r}; choose one of {', '.join(TASK_ACTIONS)}",
            status_code=400,
        )
    try:
        ids, more = await _bulk_ids(dashboard.backend, form)
    except ConfigurationError as exc:
        return PlainTextResponse(str(exc), status_code=400)
    try:
        done = await _apply(dashboard.backend, action, ids)
    except ConfigurationError as exc:
        return back(request, form, "/tasks", f"{action} failed: {exc}")
    dashboard.forget_readings()
    message = f"{done} of {len(ids)} tasks {DONE[action]}"
    if more:
        message += f" (the newest {BULK_LIMIT} of the filter: apply it again for the rest)"
    return back(request, form, "/tasks", message)


async def _bulk_ids(backend: Backend, form: FormData) -> tuple[list[str], bool]:
    """The ids a bulk action applies to, and True if the filter matched more."""
    if form.get("scope") == "filter":
        params = {k: v for k, v in form.items() if isinstance(v, str)}
        return await every_match(backend, TaskFilter.from_params(params))
    return [i for i in form.getlist("ids") if isinstance(i, str) and i], False


async def _apply(backend: Backend, action: str, ids: Sequence[str]) -> int:
    if action == "delete":
        return await backend.delete_tasks(ids) if ids else 0
    apply_one = TASK_ACTIONS[action]
    return sum([await apply_one(backend, task_id) for task_id in ids])


async def queue_action(request: Request) -> Response:
    """``/queues/{name}/pause`` and ``/resume`` (flow-control backends only)."""
    checked = await _checked_form(request)
    if isinstance(checked, Response):
        return checked
    dashboard, form = checked
    name, action = request.path_params["name"], request.path_params["action"]
    if not dashboard.backend.supports(Capability.FLOW_CONTROL):
        return back(request, form, "/limits", "pausing queues is not supported by this backend")
    await dashboard.backend.pause_queue(name, action == "pause")
    dashboard.forget_readings()
    return back(request, form, "/limits", f"queue {name} {action}d")


async def schedule_action(request: Request) -> Response:
    """``/schedules/{name}/pause`` and ``/resume``."""
    checked = await _checked_form(request)
    if isinstance(checked, Response):
        return checked
    dashboard, form = checked
    name, action = request.path_params["name"], request.path_params["action"]
    if not dashboard.backend.supports(Capability.SCHEDULES):
        return back(request, form, "/schedules", "schedules are not supported by this backend")
    found = await dashboard.backend.pause_schedule(name, action == "pause")
    message = f"schedule {name} {action}d" if found else f"no stored schedule {name!r}"
    return back(request, form, "/schedules", message)


async def workflow_cancel(request: Request) -> Response:
    """``/workflows/{id}/cancel``: cancel every member not ended yet."""
    checked = await _checked_form(request)
    if isinstance(checked, Response):
        return checked
    dashboard, form = checked
    workflow_id = request.path_params["workflow_id"]
    if not dashboard.backend.supports(Capability.WORKFLOWS):
        return back(request, form, "/workflows", "workflows are not supported by this backend")
    cancelled = await dashboard.backend.cancel_workflow(workflow_id)
    dashboard.forget_readings()
    known = bool(await dashboard.backend.workflow_tasks(workflow_id))
    return back(
        request, form, f"/workflows/{workflow_id}" if known else "/workflows",
        f"workflow {workflow_id}: {cancelled} tasks cancelled",
    )  # fmt: skip
