"""``sitq status``, ``sitq inspect`` and ``sitq failed``: reading the queue."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import click
from rich import box
from rich.markup import escape
from rich.table import Table

from ..backend import Capability
from ..schedules import FIRED_AT_HEADER, SCHEDULE_HEADER
from ..task import TaskStatus
from .app import from_command_line, queue_options, reading
from .output import (
    ago,
    console,
    json_option,
    print_json,
    progress_text,
    record_json,
    status_text,
)
from .workflows import relation_lines, relations

_RUNNING_SHOWN = 20


@click.command("status")
@queue_options
@json_option
@click.pass_context
def status_command(ctx: click.Context, app: str | None, backend: str | None, as_json: bool) -> None:
    """Tasks by status and queue, the oldest pending task, and what is running where."""

    async def read() -> dict[str, Any]:
        async with reading(app, backend, from_command_line(ctx, "backend")) as queue:
            per_queue = await queue.backend.queue_counts()
            oldest = await queue.backend.list_tasks(statuses=[TaskStatus.PENDING], limit=1)
            running = await queue.backend.list_tasks(
                statuses=[TaskStatus.RUNNING], limit=_RUNNING_SHOWN
            )
            paused = (
                await queue.paused_queues()
                if queue.backend.supports(Capability.FLOW_CONTROL)
                else set()
            )
            return {
                "backend": repr(queue.backend),
                "paused": sorted(paused),
                "queues": per_queue,
                "oldest_pending": oldest[0] if oldest else None,
                "running": running,
            }

    data = asyncio.run(read())
    totals = {s: sum(c[s] for c in data["queues"].values()) for s in TaskStatus}
    if as_json:
        print_json(
            {
                "backend": data["backend"],
                "counts": {s.value: n for s, n in totals.items()},
                "paused_queues": data["paused"],
                "queues": {
                    q: {s.value: n for s, n in c.items()} for q, c in sorted(data["queues"].items())
                },
                "oldest_pending": data["oldest_pending"] and record_json(data["oldest_pending"]),
                "running": [record_json(r) for r in data["running"]],
            }
        )
        return
    out = console()
    table = Table(
        title=f"sitq status: {escape(data['backend'])}", title_justify="left", box=box.SIMPLE_HEAD
    )
    table.add_column("queue", style="bold")
    paused = set(data["paused"])
    for s in TaskStatus:
        table.add_column(status_text(s), justify="right", min_width=len(s.value))
    table.add_column("total", justify="right")
    for name, counts in sorted(data["queues"].items()):
        shown = f"{escape(name)} [yellow](paused)[/]" if name in paused else escape(name)
        table.add_row(shown, *(str(counts[s]) for s in TaskStatus), str(sum(counts.values())))
    table.add_section()
    table.add_row("[bold]all[/]", *(f"[bold]{totals[s]}[/]" for s in TaskStatus),
                  f"[bold]{sum(totals.values())}[/]")  # fmt: skip
    out.print(table)
    if paused:
        out.print(
            f"paused queues: [yellow]{escape(', '.join(sorted(paused)))}[/] (sitq resume QUEUE)"
        )
    oldest = data["oldest_pending"]
    if oldest is None:
        out.print("oldest pending: none")
    else:
        due = "due" if oldest.available_at <= time.time() else f"due {ago(oldest.available_at)}"
        out.print(
            f"oldest pending: {oldest.id} {escape(oldest.function)} on {escape(oldest.queue)}, "
            f"enqueued {ago(oldest.created_at)}, {due}"
        )
    if not data["running"]:
        out.print("running: none")
        return
    running = Table(title="running", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("task", "function", "queue", "worker", "started", "attempt", "lease ends"):
        running.add_column(column)
    for r in data["running"]:
        running.add_row(r.id, escape(r.function), escape(r.queue), escape(r.worker_id or "-"),
                        ago(r.started_at), str(r.attempts), ago(r.lease_expires_at))  # fmt: skip
    out.print(running)
    if totals[TaskStatus.RUNNING] > len(data["running"]):
        out.print(f"… and {totals[TaskStatus.RUNNING] - len(data['running'])} more running")


@click.command("inspect")
@click.argument("task_id")
@queue_options
@json_option
@click.pass_context
def inspect_command(
    ctx: click.Context, task_id: str, app: str | None, backend: str | None, as_json: bool
) -> None:
    """Everything stored about one task: its call, status, timings, result or error, and
    its workflow with its parents and children."""

    async def read() -> dict[str, Any] | None:
        async with reading(app, backend, from_command_line(ctx, "backend")) as queue:
            record = await queue.backend.get_task(task_id)
            if record is None:
                return None
            return {**record_json(record, queue), **await relations(queue, record)}

    data = asyncio.run(read())
    if data is None:
        raise click.ClickException(f"no task with id {task_id!r}")
    if as_json:
        print_json(data)
        return
    out = console()
    table = Table(show_header=False, box=None, title=f"task {task_id}", title_justify="left")
    table.add_column(style="dim")
    table.add_column()
    call = ", ".join([*data["args"], *(f"{k}={v}" for k, v in data["kwargs"].items())])
    table.add_row("call", escape(f"{data['function']}({call})"))
    table.add_row("status", status_text(TaskStatus(data["status"])))
    for key in ("queue", "priority", "attempts", "max_retries", "timeout", "dedupe_key",
                "serializer", "created_at", "available_at", "started_at", "finished_at",
                "worker_id", "lease_expires_at", "result", "error"):  # fmt: skip
        if data.get(key) is not None:
            table.add_row(key.replace("_", " "), escape(str(data[key])))
    if data["progress"] is not None:
        table.add_row("progress", escape(progress_text(data["progress"])))
    for label, text in relation_lines(data):  # its workflow, parents and children
        table.add_row(label, text)
    if SCHEDULE_HEADER in data["meta"]:  # made by a periodic schedule (sitq.schedules)
        fired_at = data["meta"].get(FIRED_AT_HEADER, "?")
        table.add_row("schedule", escape(f"{data['meta'][SCHEDULE_HEADER]}, fired at {fired_at}"))
    if data["meta"]:
        table.add_row("meta", escape(json.dumps(data["meta"], ensure_ascii=False)))
    out.print(table)
    if data["traceback"]:
        out.print("[dim]traceback:[/]")
        out.print(escape(data["traceback"].rstrip()), style="red")


@click.command("failed")
@queue_options
@click.option("--queue", "-q", "queue_name", help="Only tasks of this queue.")
@click.option("--limit", "-n", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--tracebacks/--no-tracebacks", default=True, show_default=True)
@json_option
@click.pass_context
def failed_command(
    ctx: click.Context,
    app: str | None,
    backend: str | None,
    queue_name: str | None,
    limit: int,
    tracebacks: bool,
    as_json: bool,
) -> None:
    """Tasks that failed for good (failed and dead), newest first, with their tracebacks.

    Run them again with: sitq retry TASK_ID … (or sitq retry --all-failed).
    """

    async def read() -> list[dict[str, Any]]:
        async with reading(app, backend, from_command_line(ctx, "backend")) as queue:
            records = await queue.backend.list_tasks(
                statuses=[TaskStatus.FAILED, TaskStatus.DEAD],
                queue=queue_name,
                limit=limit,
                order="newest",
            )
            return [record_json(r, queue) for r in records]

    failed = asyncio.run(read())
    if as_json:
        if not tracebacks:
            for item in failed:
                item["traceback"] = None
        print_json(failed)
        return
    out = console()
    if not failed:
        out.print("no failed tasks")
        return
    for item in failed:
        call = ", ".join([*item["args"], *(f"{k}={v}" for k, v in item["kwargs"].items())])
        out.print(
            f"{status_text(TaskStatus(item['status']))} [bold]{item['id']}[/] "
            f"{escape(item['function'])}({escape(call)}) on {escape(item['queue'])}, "
            f"{item['attempts']} attempt(s), finished {item['finished_at'] or '-'}"
        )
        out.print(f"  [red]{escape(item['error'] or '')}[/]")
        if tracebacks and item["traceback"]:
            out.print(escape(item["traceback"].rstrip()), style="dim")
        out.print()
    out.print(f"[dim]{len(failed)} shown (newest first); retry with: sitq retry TASK_ID[/]")


__all__ = ["failed_command", "inspect_command", "status_command"]
