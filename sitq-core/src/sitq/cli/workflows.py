"""``sitq workflows``: the workflows of a store with their progress, and what ``sitq
inspect`` shows of a task's workflow (its parents, its children, the workflow's state)."""

from __future__ import annotations

import asyncio
from typing import Any

import click
from rich import box
from rich.markup import escape
from rich.table import Table

from ..backend import Capability, TaskRecord
from ..queue import TaskQueue
from ..task import TaskStatus
from ..workflow_state import WorkflowSummary, summarize
from .app import from_command_line, queue_options, reading
from .output import ago, console, iso, json_option, print_json, status_text


def summary_json(summary: WorkflowSummary) -> dict[str, Any]:
    """A workflow's summary as JSON-ready data."""
    return {
        "id": summary.id,
        "done": summary.done,
        "total": summary.total,
        "counts": {s.value: n for s, n in summary.counts.items() if n},
        "created_at": iso(summary.created_at),
        "finished_at": iso(summary.finished_at),
    }


async def relations(queue: TaskQueue, record: TaskRecord) -> dict[str, Any]:
    """What ``sitq inspect`` shows of ``record``'s place in a workflow: its parents and
    children (id, function, status) and its workflow's summary; empty for a lone task."""
    found: dict[str, Any] = {}
    if not record.parents and record.workflow_id is None:
        return found
    if not queue.backend.supports(Capability.WORKFLOWS):
        return found
    members = (
        await queue.backend.workflow_tasks(record.workflow_id)
        if record.workflow_id is not None
        else []
    )
    by_id = {m.id: m for m in members}
    parents = [by_id.get(p) or await queue.backend.get_task(p) for p in record.parents]
    found["parents"] = [_brief(p_id, p) for p_id, p in zip(record.parents, parents, strict=True)]
    found["children"] = [_brief(m.id, m) for m in members if record.id in m.parents]
    if record.workflow_id is not None:
        found["workflow"] = summary_json(summarize(record.workflow_id, members))
    return found


def _brief(task_id: str, record: TaskRecord | None) -> dict[str, Any]:
    return {
        "id": task_id,
        "function": None if record is None else record.function,
        "status": "gone" if record is None else record.status.value,
    }


def relation_lines(data: dict[str, Any]) -> list[tuple[str, str]]:
    """The rows ``sitq inspect`` adds for `relations` (label, rich text)."""
    rows = []
    if "workflow" in data:
        wf = data["workflow"]
        rows.append(("workflow", f"{wf['id']} ({wf['done']}/{wf['total']} done)"))
    for label in ("parents", "children"):
        for i, item in enumerate(data.get(label, ())):
            status = item["status"]
            shown = status_text(TaskStatus(status)) if status != "gone" else "gone"
            text = f"{item['id']} {escape(item['function'] or '?')} {shown}"
            rows.append((label if i == 0 else "", text))
    return rows


@click.command("workflows")
@queue_options
@click.option("--all", "show_all", is_flag=True, help="Also workflows whose tasks all ended.")
@click.option("--limit", "-n", type=click.IntRange(min=1), default=50, show_default=True)
@json_option
@click.pass_context
def workflows_command(
    ctx: click.Context,
    app: str | None,
    backend: str | None,
    show_all: bool,
    limit: int,
    as_json: bool,
) -> None:
    """Workflows (chains, groups, chords) still running, newest first, with their progress
    (tasks done / total) and their tasks by status; --all adds those that ended."""

    async def read() -> list[WorkflowSummary]:
        async with reading(app, backend, from_command_line(ctx, "backend")) as queue:
            if not queue.backend.supports(Capability.WORKFLOWS):
                raise click.ClickException(
                    f"{type(queue.backend).__name__} stores no workflows (it does not declare "
                    "Capability.WORKFLOWS)"
                )
            return await queue.workflows(limit=limit, active_only=not show_all)

    found = asyncio.run(read())
    if as_json:
        print_json([summary_json(s) for s in found])
        return
    out = console()
    if not found:
        out.print("no running workflows" if not show_all else "no workflows")
        return
    table = Table(title="sitq workflows", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("workflow", no_wrap=True)
    for column in ("done", "tasks by status", "started", "ended"):
        table.add_column(column)
    for s in found:
        counts = " ".join(
            f"{status_text(status)} {n}" for status in TaskStatus if (n := s.counts.get(status))
        )
        ended = "-" if s.finished_at is None else ago(s.finished_at)
        table.add_row(s.id, f"{s.done}/{s.total}", counts, ago(s.created_at), ended)
    out.print(table)


__all__ = ["relation_lines", "relations", "summary_json", "workflows_command"]
