"""``sitq schedules`` (list, ``pause NAME``, ``resume NAME``) and ``sitq scheduler APP``: the
periodic schedules of an app and their stored state."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import datetime
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from ..backend import Capability
from ..errors import SitqError
from ..schedule_state import ScheduleState
from ..schedule_times import tz_name
from ..scheduler import Scheduler
from ..schedules import Schedule
from ..sync import SyncTaskQueue
from ..task import TaskStatus
from .app import from_command_line, load_app, queue_options, reading
from .output import console, json_option, print_json, status_text


def _iso(schedule: Schedule | None, ts: float | None) -> str | None:
    if ts is None:
        return None
    if schedule is None:
        return datetime.fromtimestamp(ts).astimezone().isoformat()
    return schedule.fired_at(ts).isoformat()


def schedule_rows(
    declared: list[Schedule] | None,
    states: list[ScheduleState],
    outcomes: dict[str, str],
    now: float,
    functions: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """One JSON-ready row per schedule the app declares or the store remembers. With the
    app's schedules (``declared``), a stored one it no longer declares is ``removed`` (it
    fires no more); without them (no app given) stored ones are just ``stored``, shown with
    the definition the schedulers last ran and the task of their last fire (``functions``:
    task id -> task name)."""
    stored = {state.name: state for state in states}
    rows = []
    for schedule in declared or ():
        state = stored.pop(schedule.name, None)
        rows.append(
            {
                "name": schedule.name,
                "task": schedule.task_name,
                "when": schedule.trigger.describe(),
                "tz": tz_name(schedule.tz),
                "catch_up": schedule.catch_up,
                "state": _state_of(schedule, state),
                "stored_definition": state.definition if state else None,
                "next_fire": None
                if state is not None and state.paused
                else _next(schedule, state, now),
                "last_fire": _iso(schedule, state.last_fire if state else None),
                "last_task_id": state.last_task_id if state else None,
                "last_outcome": outcomes.get(state.last_task_id or "") if state else None,
            }
        )
    for state in stored.values():
        rows.append(
            {
                "name": state.name,
                "task": (functions or {}).get(state.last_task_id or ""),
                "when": state.definition,
                "tz": None,
                "catch_up": None,
                "state": "stored" if declared is None else "removed",
                "stored_definition": state.definition,
                "next_fire": None,
                "last_fire": _iso(None, state.last_fire),
                "last_task_id": state.last_task_id,
                "last_outcome": outcomes.get(state.last_task_id or ""),
            }
        )
    return rows


def _state_of(schedule: Schedule, state: ScheduleState | None) -> str:
    """``paused``, ``changed`` (the schedulers started last run another definition: they
    have not been restarted with this code yet) or ``active``."""
    if state is not None and state.paused:
        return "paused"
    if state is not None and state.definition not in (None, schedule.describe()):
        return "changed"
    return "active"


def _next(schedule: Schedule, state: ScheduleState | None, now: float) -> str | None:
    after = now if state is None else max(now, state.decided_until)
    return _iso(schedule, schedule.trigger.next_after(after))


@click.group("schedules", invoke_without_command=True)
@queue_options
@json_option
@click.pass_context
def schedules_command(
    ctx: click.Context, app: str | None, backend: str | None, as_json: bool
) -> None:
    """List periodic schedules: name, task, cron or interval, time zone, next and last fire,
    the last fire's outcome. With --app, schedules stored but no longer in the code show as
    removed (they fire no more), and one whose cron or interval the running schedulers do not
    have yet as changed.

    \b
    sitq schedules --app myapp.tasks:queue
    sitq schedules pause NAME     (no fire is stored while paused)
    sitq schedules resume NAME    (the fires of the pause are not caught up)
    """
    ctx.ensure_object(dict)
    ctx.obj.update(app=app, backend=backend, from_cli=from_command_line(ctx, "backend"))
    if ctx.invoked_subcommand is not None:
        return

    async def read() -> list[dict[str, Any]]:
        async with reading(app, backend, from_command_line(ctx, "backend")) as queue:
            _check_capable(queue.backend)
            states = await queue.backend.schedule_states()
            outcomes, functions = {}, {}
            for state in states:
                if state.last_task_id:
                    record = await queue.backend.get_task(state.last_task_id)
                    if record is not None:
                        outcomes[state.last_task_id] = record.status.value
                        functions[state.last_task_id] = record.function
            declared = list(queue.schedules.values()) if app else None
            return schedule_rows(declared, states, outcomes, queue.backend.clock(), functions)

    rows = asyncio.run(read())
    if as_json:
        print_json(rows)
        return
    out = console()
    if not rows:
        out.print("no schedules (declare them with @queue.periodic or queue.schedule(...)).")
        return
    table = Table(title="schedules", title_justify="left")
    for column in ("name", "task", "when", "tz", "state", "next fire", "last fire", "last outcome"):
        table.add_column(column, style="bold" if column == "name" else None)
    for row in rows:
        outcome = row["last_outcome"]
        table.add_row(
            escape(row["name"]),
            escape(row["task"] or "-"),
            escape(row["when"] or "-"),
            row["tz"] or "-",
            _state_text(row),
            row["next_fire"] or "-",
            row["last_fire"] or "-",
            status_text(TaskStatus(outcome)) if outcome else "-",
        )
    out.print(table)


def _state_text(row: dict[str, Any]) -> str:
    state = row["state"]
    if state == "removed":
        return "[red]removed from the code[/]"
    if state == "changed":
        return f"[yellow]changed; schedulers still run {escape(row['stored_definition'])}[/]"
    return "[yellow]paused[/]" if state == "paused" else str(state)


def _check_capable(backend: Any) -> None:
    if not backend.supports(Capability.SCHEDULES):
        raise click.ClickException(f"{backend!r} cannot store periodic schedules")


def _pause(
    ctx: click.Context, name: str, paused: bool, app: str | None, backend: str | None
) -> None:
    group = ctx.obj  # --app/--backend may come before the subcommand or after it
    app = app or group["app"]
    from_cli = from_command_line(ctx, "backend") or group["from_cli"]
    backend = backend if from_command_line(ctx, "backend") else group["backend"] or backend

    async def change() -> bool:
        async with reading(app, backend, from_cli) as queue:
            _check_capable(queue.backend)
            return await queue.backend.pause_schedule(name, paused)

    if not asyncio.run(change()):
        raise click.ClickException(
            f"no schedule named {name!r} is stored; `sitq schedules` lists them (a schedule "
            "is stored once a scheduler has seen it)"
        )
    console().print(f"schedule {escape(name)} {'paused' if paused else 'resumed'}")


@schedules_command.command("pause")
@click.argument("name")
@queue_options
@click.pass_context
def pause_command(ctx: click.Context, name: str, app: str | None, backend: str | None) -> None:
    """Stop schedule NAME from firing (every scheduler obeys it) until resumed."""
    _pause(ctx, name, True, app, backend)


@schedules_command.command("resume")
@click.argument("name")
@queue_options
@click.pass_context
def resume_command(ctx: click.Context, name: str, app: str | None, backend: str | None) -> None:
    """Let schedule NAME fire again; the fire times of the pause are not caught up."""
    _pause(ctx, name, False, app, backend)


@click.command("scheduler")
@click.argument("app", envvar="SITQ_APP")
def scheduler_command(app: str) -> None:
    """Fire the periodic schedules of APP (module:queue) without running tasks, until Ctrl-C
    or SIGTERM. Workers run a scheduler too (unless --no-scheduler); any number may run."""
    try:
        loaded = load_app(app)
    except SitqError as exc:
        raise click.ClickException(str(exc)) from None
    queue = loaded.async_queue if isinstance(loaded, SyncTaskQueue) else loaded
    if not queue.schedules:
        raise click.ClickException(
            f"{app} declares no schedules (declare them with @queue.periodic or queue.schedule)"
        )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # not on Windows
                loop.add_signal_handler(signum, stop.set)
        try:
            scheduler = Scheduler(queue)
            console(stderr=True).print(
                f"sitq scheduler: {len(queue.schedules)} schedule(s) of {app} on "
                f"{escape(repr(queue.backend))}"
            )
            await scheduler.run(stop)
        finally:
            await queue.close()

    try:
        asyncio.run(run())
    except SitqError as exc:
        raise click.ClickException(str(exc)) from None


__all__ = ["schedule_rows", "scheduler_command", "schedules_command"]
