"""The pages (GET): overview, tasks, task detail, workers, schedules, limits, workflows, and
the live summary's JSON."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sitq.backend import Capability
from sitq.errors import ConfigurationError
from sitq.schedules import FIRED_AT_HEADER, SCHEDULE_HEADER
from sitq.task import TaskStatus

from .calls import call_text, result_text
from .dashboard import Dashboard
from .render import page
from .summary import RUNNING_READ
from .tasks_query import TaskFilter, task_page

#: The overview's chart: the last hour, by minute.
#: Workflows listed on /workflows.
WORKFLOWS_SHOWN = 100


def dashboard_of(request: Request) -> Dashboard:
    """The `Dashboard` of the app serving ``request``."""
    dashboard: Dashboard = request.app.state.dashboard
    return dashboard


async def overview(request: Request) -> Response:
    """``/``: counts by queue and status, the last hour's throughput, oldest pending, workers."""
    dashboard = dashboard_of(request)
    backend = await dashboard.ready()
    summary = await dashboard.summary.get()
    chart = await dashboard.chart.get()
    paused = await backend.paused_queues() if backend.supports(Capability.FLOW_CONTROL) else set()
    return page(
        request, "overview.html", summary=summary, chart=chart, statuses=list(TaskStatus),
        paused=paused,
    )  # fmt: skip


async def tasks(request: Request) -> Response:
    """``/tasks``: the filtered, paginated task list with its bulk actions."""
    dashboard = dashboard_of(request)
    backend = await dashboard.ready()
    try:
        wanted = TaskFilter.from_params(request.query_params)
    except ConfigurationError as exc:
        return page(request, "error.html", status_code=400, message=str(exc))
    found = await task_page(backend, wanted, request.query_params.get("before"))
    summary = await dashboard.summary.get()
    return page(
        request, "tasks.html", wanted=wanted, found=found, statuses=list(TaskStatus),
        queues=sorted(summary.queues), summary=summary,
    )  # fmt: skip


async def task_detail(request: Request) -> Response:
    """``/tasks/{id}``: everything stored about one task."""
    dashboard = dashboard_of(request)
    backend = await dashboard.ready()
    task_id = request.path_params["task_id"]
    record = await backend.get_task(task_id)
    if record is None:
        return page(request, "error.html", status_code=404, message=f"no task {task_id!r}")
    relatives: dict[str, list[object]] = {"parents": [], "children": []}
    if record.workflow_id and backend.supports(Capability.WORKFLOWS):
        members = await backend.workflow_tasks(record.workflow_id)
        relatives["parents"] = [m for m in members if m.id in record.parents]
        relatives["children"] = [m for m in members if record.id in m.parents]
    return page(
        request, "task.html", record=record, call=call_text(dashboard.decoder, record),
        result=result_text(dashboard.decoder, record), relatives=relatives,
        workflows=backend.supports(Capability.WORKFLOWS),
        schedule=record.meta.get(SCHEDULE_HEADER), fired_at=record.meta.get(FIRED_AT_HEADER),
    )  # fmt: skip


async def workers(request: Request) -> Response:
    """``/workers``: the workers seen running tasks, with their leases."""
    dashboard = dashboard_of(request)
    await dashboard.ready()
    summary = await dashboard.summary.get()
    return page(request, "workers.html", summary=summary, running_read=RUNNING_READ)


async def schedules(request: Request) -> Response:
    """``/schedules``: the stored periodic schedules, with pause and resume; their next fire
    where the queue shown declares them (``sitq web myapp:queue``)."""
    dashboard = dashboard_of(request)
    backend = await dashboard.ready()
    supported = backend.supports(Capability.SCHEDULES)
    states = await backend.schedule_states() if supported else []
    declared = dashboard.decoder.schedules
    now = time.time()
    next_fires = {
        s.name: declared[s.name].trigger.next_after(now) for s in states if s.name in declared
    }
    return page(
        request, "schedules.html", supported=supported, states=states, next_fires=next_fires
    )


async def limits(request: Request) -> Response:
    """``/limits``: limit states and paused queues, with pause and resume."""
    dashboard = dashboard_of(request)
    backend = await dashboard.ready()
    supported = backend.supports(Capability.FLOW_CONTROL)
    states = await backend.limit_states() if supported else []
    paused = await backend.paused_queues() if supported else set()
    queues = sorted(set((await dashboard.summary.get()).queues) | paused)
    return page(
        request, "limits.html", supported=supported, states=states, paused=paused, queues=queues
    )


async def workflows(request: Request) -> Response:
    """``/workflows``: the newest workflows with their members' counts."""
    backend = await dashboard_of(request).ready()
    supported = backend.supports(Capability.WORKFLOWS)
    found = await backend.workflows(limit=WORKFLOWS_SHOWN) if supported else []
    return page(
        request, "workflows.html", supported=supported, workflows=found, statuses=list(TaskStatus)
    )


async def workflow_detail(request: Request) -> Response:
    """``/workflows/{id}``: the members of one workflow."""
    backend = await dashboard_of(request).ready()
    workflow_id = request.path_params["workflow_id"]
    supported = backend.supports(Capability.WORKFLOWS)
    members = await backend.workflow_tasks(workflow_id) if supported else []
    if supported and not members:
        return page(request, "error.html", status_code=404, message=f"no workflow {workflow_id!r}")
    return page(
        request, "workflow.html", supported=supported, workflow_id=workflow_id, members=members
    )


async def summary_json(request: Request) -> Response:
    """``/api/summary``: the live counts, workers and oldest pending (cached per interval)."""
    dashboard = dashboard_of(request)
    await dashboard.ready()
    return JSONResponse((await dashboard.summary.get()).as_json())
