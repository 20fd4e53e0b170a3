"""``sitq retry``, ``sitq cancel`` and ``sitq purge``: changing stored tasks by hand."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import click

from ..queue import TaskQueue
from ..task import FINAL_STATUSES, TaskStatus
from .app import from_command_line, queue_options, reading
from .output import console, json_option, print_json

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class Age(click.ParamType):  # type: ignore[type-arg]
    """A duration such as ``90``, ``90s``, ``15m``, ``12h``, ``7d`` or ``2w``; in seconds."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        """Parse the duration or fail naming the accepted forms."""
        if isinstance(value, (int, float)):
            return float(value)
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", str(value))
        if not match:
            self.fail(f"{value!r} is not a duration; write e.g. 90, 90s, 15m, 12h, 7d or 2w")
        return float(match[1]) * _UNITS[match[2] or "s"]


async def _why_not(queue: TaskQueue, task_id: str, wanted: str) -> str:
    record = await queue.backend.get_task(task_id)
    if record is None:
        return "no such task"
    return f"it is {record.status.value}, not {wanted}"


@click.command("retry")
@click.argument("task_ids", nargs=-1)
@click.option("--all-failed", is_flag=True, help="Retry every failed and dead task.")
@click.option("--queue", "-q", "queue_name", help="With --all-failed: only this queue.")
@queue_options
@json_option
@click.pass_context
def retry_command(
    ctx: click.Context,
    task_ids: tuple[str, ...],
    all_failed: bool,
    queue_name: str | None,
    app: str | None,
    backend: str | None,
    as_json: bool,
) -> None:
    """Put failed, dead or cancelled tasks back in the queue, attempts reset."""
    if not task_ids and not all_failed:
        raise click.UsageError("name the tasks to retry, or pass --all-failed")

    async def change() -> tuple[list[str], dict[str, str]]:
        async with reading(app, backend, from_command_line(ctx, "backend")) as queue:
            ids = list(task_ids)
            if all_failed:
                records = await queue.backend.list_tasks(
                    statuses=[TaskStatus.FAILED, TaskStatus.DEAD], queue=queue_name, limit=None
                )
                ids += [r.id for r in records]
            done, refused = [], {}
            for task_id in dict.fromkeys(ids):
                if await queue.requeue(task_id):
                    done.append(task_id)
                else:
                    refused[task_id] = await _why_not(queue, task_id, "failed, dead or cancelled")
            return done, refused

    _report("retried", *asyncio.run(change()), as_json=as_json)


@click.command("cancel")
@click.argument("task_ids", nargs=-1, required=True)
@queue_options
@json_option
@click.pass_context
def cancel_command(
    ctx: click.Context, task_ids: tuple[str, ...], app: str | None, backend: str | None,
    as_json: bool,
) -> None:  # fmt: skip
    """Cancel tasks: a pending one never runs; a running one is stopped by its worker within
    one heartbeat (a third of its lease), and its outcome is not stored."""

    async def change() -> tuple[list[str], dict[str, str]]:
        async with reading(app, backend, from_command_line(ctx, "backend")) as queue:
            done, refused = [], {}
            for task_id in dict.fromkeys(task_ids):
                if await queue.cancel(task_id):
                    done.append(task_id)
                else:
                    refused[task_id] = await _why_not(queue, task_id, "pending or running")
            return done, refused

    _report("cancelled", *asyncio.run(change()), as_json=as_json)


def _report(verb: str, done: list[str], refused: dict[str, str], *, as_json: bool) -> None:
    if as_json:
        print_json({verb: done, "refused": refused})
    else:
        out = console()
        for task_id in done:
            out.print(f"{verb} {task_id}")
        for task_id, why in refused.items():
            out.print(f"[red]not {verb} {task_id}: {why}[/]")
        if not done and not refused:
            out.print(f"no task {verb}")
    if refused:
        raise SystemExit(1)


@click.command("purge")
@click.option(
    "--status",
    "-s",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in TaskStatus]),
    help="Delete tasks in this status (repeatable) [default: succeeded, failed, dead, cancelled].",
)
@click.option(
    "--older-than",
    type=Age(),
    help="Only tasks that finished longer ago than this (90s, 15m, 12h, 7d, 2w).",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@queue_options
@json_option
@click.pass_context
def purge_command(
    ctx: click.Context,
    statuses: tuple[str, ...],
    older_than: float | None,
    yes: bool,
    app: str | None,
    backend: str | None,
    as_json: bool,
) -> None:
    """Delete finished tasks and their results for good."""
    wanted = [TaskStatus(s) for s in statuses] or sorted(FINAL_STATUSES, key=list(TaskStatus).index)
    if TaskStatus.RUNNING in wanted and not yes:
        raise click.UsageError(
            "deleting running tasks needs --yes: their workers are still on them"
        )
    what = ", ".join(s.value for s in wanted)
    when = f" finished more than {older_than:g} s ago" if older_than is not None else ""
    if not yes:
        click.confirm(f"Delete every {what} task{when}?", abort=True, err=True)

    async def change() -> int:
        async with reading(app, backend, from_command_line(ctx, "backend")) as queue:
            cutoff = None if older_than is None else queue.backend.clock() - older_than
            return await queue.purge(wanted, cutoff)

    deleted = asyncio.run(change())
    if as_json:
        print_json({"deleted": deleted, "statuses": [s.value for s in wanted]})
    else:
        console().print(f"deleted {deleted} task(s) ({what}{when})")


__all__ = ["cancel_command", "purge_command", "retry_command"]
