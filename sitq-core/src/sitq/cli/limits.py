"""``sitq limits`` (each limited key: rule, tokens, running, waiting) and ``sitq pause
QUEUE`` / ``sitq resume QUEUE``: flow control as the store holds it (`sitq.flow_control`)."""

from __future__ import annotations

import asyncio
from typing import Any

import click
from rich import box
from rich.markup import escape
from rich.table import Table

from ..backend import Backend, Capability
from ..flow_control import LimitRule, LimitState
from .app import from_command_line, queue_options, reading
from .output import console, json_option, print_json


def limit_row(state: LimitState) -> dict[str, Any]:
    """One JSON-ready row of ``sitq limits``."""
    rule = state.rule
    return {
        "key": state.key,
        "rule": rule.pattern,
        "rate": rule.rate,
        "burst": rule.bucket_size if rule.rate is not None else None,
        "tokens": state.tokens,
        "concurrency": rule.concurrency,
        "running": state.running,
        "waiting": state.waiting,
    }


def rate_text(rule: LimitRule) -> str:
    """A rule's rate as people write it: ``100/s``, ``30/m``, ``2/h``."""
    if rule.rate is None:
        return "-"
    for per, seconds in (("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        count = rule.rate * seconds
        if count >= 1 and abs(count - round(count)) < 1e-9:
            return f"{round(count)}/{per}"
    return f"{rule.rate:g}/s"


def check_flow_control(backend: Backend) -> None:
    """`click.ClickException` unless ``backend`` enforces limits and pauses."""
    if not backend.supports(Capability.FLOW_CONTROL):
        raise click.ClickException(f"{backend!r} cannot enforce limits or pause queues")


@click.command("limits")
@queue_options
@json_option
@click.pass_context
def limits_command(ctx: click.Context, app: str | None, backend: str | None, as_json: bool) -> None:
    """Each limited key: its rule, rate, burst, tokens now, concurrency, running and waiting
    tasks. Rules are declared in code with queue.limit(...) and stored when a queue connects.

    \b
    sitq limits --app myapp.tasks:queue
    """

    async def read() -> list[LimitState]:
        async with reading(app, backend, from_command_line(ctx, "backend")) as queue:
            check_flow_control(queue.backend)
            return await queue.limit_states()

    states = asyncio.run(read())
    if as_json:
        print_json([limit_row(s) for s in states])
        return
    out = console()
    if not states:
        out.print("no limits (declare them with queue.limit('stripe', rate='100/s')).")
        return
    table = Table(title="limits", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("key", style="bold")
    table.add_column("rule")
    for column in ("rate", "burst", "tokens", "concurrency", "running", "waiting"):
        table.add_column(column, justify="right")
    for state in states:
        row = limit_row(state)
        table.add_row(
            escape(state.key),
            escape(state.rule.pattern),
            rate_text(state.rule),
            "-" if row["burst"] is None else f"{row['burst']:g}",
            "-" if state.tokens is None else f"{state.tokens:.1f}",
            "-" if state.rule.concurrency is None else str(state.rule.concurrency),
            _running_text(state),
            str(state.waiting),
        )
    out.print(table)


def _running_text(state: LimitState) -> str:
    full = state.rule.concurrency is not None and state.running >= state.rule.concurrency
    return f"[yellow]{state.running}[/]" if full else str(state.running)


def _pause(
    ctx: click.Context, name: str, paused: bool, app: str | None, backend: str | None
) -> None:
    async def change() -> None:
        async with reading(app, backend, from_command_line(ctx, "backend")) as queue:
            check_flow_control(queue.backend)
            if paused:
                await queue.pause(name)
            else:
                await queue.resume(name)

    asyncio.run(change())
    done = "paused: workers claim none of its tasks" if paused else "resumed"
    console().print(f"queue {escape(name)} {done}")


@click.command("pause")
@click.argument("queue_name", metavar="QUEUE")
@queue_options
@click.pass_context
def pause_command(
    ctx: click.Context, queue_name: str, app: str | None, backend: str | None
) -> None:
    """Stop every worker on the backend from claiming tasks of QUEUE (within one poll);
    running tasks go on and enqueues are still stored. `sitq status` shows it paused."""
    _pause(ctx, queue_name, True, app, backend)


@click.command("resume")
@click.argument("queue_name", metavar="QUEUE")
@queue_options
@click.pass_context
def resume_command(
    ctx: click.Context, queue_name: str, app: str | None, backend: str | None
) -> None:
    """Let workers claim tasks of QUEUE again."""
    _pause(ctx, queue_name, False, app, backend)


__all__ = ["limit_row", "limits_command", "pause_command", "rate_text", "resume_command"]
