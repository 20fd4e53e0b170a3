"""``sitq retry``, ``sitq cancel``, ``sitq purge``, ``sitq prune`` and ``sitq vacuum``:
changing stored tasks by hand, and giving their space back."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from ..backend import Capability
from ..queue import TaskQueue
from ..retention import (
    DEFAULT_FAILED_RETENTION,
    DEFAULT_RETENTION,
    DURATION_FORMS,
    check_retention,
    parse_duration,
    prune_in_batches,
    retention_cutoffs,
)
from ..task import FINAL_STATUSES, TaskStatus
from .app import from_command_line, queue_options, reading
from .output import console, json_option, print_json


class Age(click.ParamType):  # type: ignore[type-arg]
    """A duration such as ``90``, ``90s``, ``15m``, ``12h``, ``7d`` or ``2w``; in seconds."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        """Parse the duration or fail naming the accepted forms."""
        if isinstance(value, (int, float)):
            return float(value)
        seconds = parse_duration(str(value))
        if isinstance(seconds, str):
            self.fail(f"{value!r} is not a duration; write e.g. {DURATION_FORMS}")
        return seconds


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
    """Cancel tasks: a waiting or pending one never runs (a workflow member's descendants are
    cancelled with it); a running one is stopped by its worker within one heartbeat (a third
    of its lease), and its outcome is not stored."""

    async def change() -> tuple[list[str], dict[str, str]]:
        async with reading(app, backend, from_command_line(ctx, "backend")) as queue:
            done, refused = [], {}
            for task_id in dict.fromkeys(task_ids):
                if await queue.cancel(task_id):
                    done.append(task_id)
                else:
                    refused[task_id] = await _why_not(queue, task_id, "pending, running or waiting")
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


def _duration_text(seconds: float | None) -> str:
    if not seconds:
        return "forever"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


@click.command("prune")
@click.option(
    "--retention",
    type=Age(),
    default=DEFAULT_RETENTION,
    envvar="SITQ_RETENTION",
    show_envvar=True,
    help="Delete succeeded and cancelled tasks finished longer ago than this (0: keep them) "
    "[default: 7d].",
)
@click.option(
    "--failed-retention",
    type=Age(),
    default=DEFAULT_FAILED_RETENTION,
    envvar="SITQ_FAILED_RETENTION",
    show_envvar=True,
    help="Delete failed and dead tasks finished longer ago than this (0: keep them) "
    "[default: 30d].",
)
@queue_options
@json_option
@click.pass_context
def prune_command(
    ctx: click.Context,
    retention: float,
    failed_retention: float,
    app: str | None,
    backend: str | None,
    as_json: bool,
) -> None:
    """Delete finished tasks past their retention now, as workers do every prune_interval:
    in small batches, then give the space back."""
    keep = check_retention("retention", retention)
    keep_failed = check_retention("failed_retention", failed_retention)

    async def change() -> int:
        async with reading(app, backend, from_command_line(ctx, "backend")) as queue:
            if not queue.backend.supports(Capability.PRUNE):
                raise click.ClickException(
                    f"{type(queue.backend).__name__} cannot prune old tasks; use sitq purge "
                    "--older-than instead"
                )
            cutoffs = retention_cutoffs(queue.backend.clock(), keep, keep_failed)
            return (await prune_in_batches(queue.backend, cutoffs)).deleted if cutoffs else 0

    deleted = asyncio.run(change())
    kept = {"retention": _duration_text(keep), "failed_retention": _duration_text(keep_failed)}
    if as_json:
        print_json({"deleted": deleted, **kept})
    else:
        console().print(
            f"deleted {deleted} task(s) (succeeded and cancelled older than "
            f"{kept['retention']}, failed and dead older than {kept['failed_retention']})"
        )


@click.command("vacuum")
@queue_options
@click.pass_context
def vacuum_command(ctx: click.Context, app: str | None, backend: str | None) -> None:
    """Give the space of deleted tasks back to the operating system, in full.

    On SQLite this rewrites the whole file (VACUUM): workers wait meanwhile, and it needs as
    much free disk as the file takes. Run it once on a file made before sitq-sqlite turned on
    incremental auto-vacuum; from then on, pruning and purging shrink the file by
    themselves. PostgreSQL reuses the space of deleted rows by itself (autovacuum): nothing
    to do there.
    """

    async def change() -> None:
        async with reading(app, backend, from_command_line(ctx, "backend")) as queue:
            await queue.backend.reclaim_space(full=True)

    asyncio.run(change())
    console().print("space given back")


__all__ = [
    "cancel_command",
    "prune_command",
    "purge_command",
    "retry_command",
    "vacuum_command",
]
