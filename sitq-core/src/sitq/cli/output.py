"""How the ``sitq`` command prints: rich tables for people, ``--json`` for programs."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console

from ..backend import TaskRecord
from ..queue import TaskQueue
from ..task import TaskStatus, from_timestamp

F = TypeVar("F", bound=Callable[..., Any])

#: Colours of the statuses in tables.
STATUS_STYLES = {
    TaskStatus.WAITING: "blue",
    TaskStatus.PENDING: "yellow",
    TaskStatus.RUNNING: "cyan",
    TaskStatus.SUCCEEDED: "green",
    TaskStatus.FAILED: "red",
    TaskStatus.DEAD: "bold red",
    TaskStatus.CANCELLED: "dim",
}


def console(stderr: bool = False) -> Console:
    """A rich console on stdout (or stderr); plain text when not a terminal."""
    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def json_option(function: F) -> F:
    """The ``--json`` flag of every read command."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print JSON instead of tables (for scripts)."
    )(function)


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON to stdout."""
    click.echo(json.dumps(data, indent=2, default=str))


def iso(ts: float | None) -> str | None:
    """Epoch seconds as an ISO 8601 UTC string (None stays None).

    A stored time no `datetime` can hold shows as the nearest one it can (`from_timestamp`).
    """
    when = from_timestamp(ts)
    return None if when is None else when.isoformat(timespec="milliseconds")


def ago(ts: float | None, now: float | None = None) -> str:
    """A short human age such as ``3.2s ago`` or ``in 5m`` (``-`` for no time or NaN)."""
    if ts is None or math.isnan(ts):
        return "-"
    delta = (time.time() if now is None else now) - ts
    text = duration(abs(delta))
    return f"{text} ago" if delta >= 0 else f"in {text}"


#: Beyond this many seconds (about 10,000 years) a duration shows as ``>10000y``.
LONGEST_DURATION = 10_000 * 365.25 * 86400


def duration(seconds: float) -> str:
    """Seconds as ``850ms``, ``12.5s``, ``4m10s``, ``3h05m`` or ``2d04h`` (``>10000y`` for
    more than ten thousand years, infinity included)."""
    if not seconds <= LONGEST_DURATION:  # also true for NaN, which no comparison passes
        return ">10000y"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def status_text(status: TaskStatus) -> str:
    """The status as rich markup, coloured."""
    return f"[{STATUS_STYLES[status]}]{status.value}[/]"


def progress_text(progress: dict[str, Any]) -> str:
    """A progress as `record_json` gives it, for people: ``40% step 2 of 5 (at <time>)``."""
    text = f"{progress['fraction']:.0%}"
    if progress["message"]:
        text += f" {progress['message']}"
    return f"{text} (at {progress['updated_at']})"


def record_json(record: TaskRecord, queue: TaskQueue | None = None) -> dict[str, Any]:
    """A stored record as JSON-ready data; with ``queue``, its call and result decoded."""
    data: dict[str, Any] = {
        "id": record.id,
        "function": record.function,
        "queue": record.queue,
        "status": record.status.value,
        "priority": record.priority,
        "attempts": record.attempts,
        "max_retries": record.max_retries,
        "timeout": record.timeout,
        "dedupe_key": record.dedupe_key,
        "serializer": record.serializer,
        "created_at": iso(record.created_at),
        "available_at": iso(record.available_at),
        "started_at": iso(record.started_at),
        "finished_at": iso(record.finished_at),
        "worker_id": record.worker_id,
        "lease_expires_at": iso(record.lease_expires_at),
        "error": record.error,
        "traceback": record.traceback,
        "meta": record.meta,
        "progress": None
        if record.progress is None
        else {
            "fraction": record.progress.fraction,
            "message": record.progress.message,
            "updated_at": iso(record.progress.updated_at),
        },
    }
    if queue is not None:
        task = queue.task_from_record(record)
        data["args"] = [repr(a) for a in task.args]
        data["kwargs"] = {k: repr(v) for k, v in task.kwargs.items()}
        if record.status is TaskStatus.SUCCEEDED:
            result = queue.result_from_record(record)
            data["result"] = repr(result.value) if result.error is None else None
            if result.error is not None:
                data["error"] = result.error
    return data
