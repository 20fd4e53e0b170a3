"""``sitq worker``: run a worker in the foreground until it is told to stop."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import click
from rich.markup import escape

from ..errors import SitqError
from ..logs import configure_logging
from ..sync import SyncTaskQueue
from ..worker import Worker
from .app import build_queue, from_command_line
from .output import console, duration

#: Exit code after Ctrl-C (SIGINT), as shells report a process ended by it.
EXIT_INTERRUPTED = 130

logger = logging.getLogger("sitq.cli")

WORKER_HELP = """Run a worker on APP (a queue, as 'module:attribute') until stopped.

\b
  sitq worker app.tasks:queue -c 4 -q emails,default

The current folder is on sys.path, so 'tasks:queue' finds ./tasks.py. Settings come from the
command line, then SITQ_* environment variables, then [tool.sitq] in pyproject.toml.

Ctrl-C or SIGTERM stops taking tasks and lets running ones finish for up to
--graceful-shutdown seconds; what is still running then, or at a second Ctrl-C / SIGTERM,
is handed back to the queue for another worker.

\b
Exit codes:
  0    stopped by SIGTERM, --duration or --max-tasks
  1    the app, its backend or a setting is wrong, or the worker failed
  2    bad command-line usage
  130  stopped by Ctrl-C (SIGINT)
"""


@click.command("worker", help=WORKER_HELP)
@click.argument("app", required=False, envvar="SITQ_APP")
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    envvar="SITQ_CONCURRENCY",
    show_envvar=True,
    help="Tasks run at once [default: 100 async, 8 thread, one process per CPU].",
)
@click.option(
    "-t",
    "--worker-type",
    type=click.Choice(["async", "thread", "process"]),
    default="async",
    show_default=True,
    envvar="SITQ_WORKER_TYPE",
    show_envvar=True,
    help="async: coroutines on the loop, functions in threads; thread; process: CPU-bound work.",
)
@click.option(
    "-q",
    "--queues",
    metavar="NAMES",
    envvar="SITQ_QUEUES",
    show_envvar=True,
    help="Comma-separated queues to take tasks from [default: all].",
)
@click.option(
    "--max-tasks",
    type=click.IntRange(min=1),
    envvar="SITQ_MAX_TASKS",
    show_envvar=True,
    help="Stop after this many task attempts.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    envvar="SITQ_DURATION",
    show_envvar=True,
    help="Stop after this many seconds.",
)
@click.option(
    "--graceful-shutdown",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    envvar="SITQ_GRACEFUL_SHUTDOWN",
    show_envvar=True,
    help="Seconds running tasks get to finish when stopping.",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    envvar="SITQ_POLL_INTERVAL",
    show_envvar=True,
    help="Seconds between looks at an idle queue (enqueues in-process wake it at once).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    envvar="SITQ_TIMEOUT",
    show_envvar=True,
    help="Seconds a task may run (a task's own timeout wins).",
)
@click.option(
    "--max-retries",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    envvar="SITQ_MAX_RETRIES",
    show_envvar=True,
    help="Retries of a failing task (a task's own max_retries wins).",
)
@click.option(
    "--retry-delay",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    envvar="SITQ_RETRY_DELAY",
    show_envvar=True,
    help="Seconds before a retry.",
)
@click.option("--worker-id", help="A name for this worker [default: host:pid:random].")
@click.option(
    "--backend",
    "-b",
    metavar="URL",
    envvar="SITQ_BACKEND_URL",
    show_envvar=True,
    help="Backend URL; on the command line it replaces the app's backend.",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="INFO",
    show_default=True,
    envvar="SITQ_LOG_LEVEL",
    show_envvar=True,
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    envvar="SITQ_LOG_FORMAT",
    show_envvar=True,
    help="json: one object per line with task_id, function, attempt, duration.",
)
@click.option(
    "--log-tasks/--no-log-tasks",
    default=False,
    show_default=True,
    envvar="SITQ_LOG_TASKS",
    show_envvar=True,
    help="Log the start and end of every task (costs throughput).",
)
@click.pass_context
def worker_command(ctx: click.Context, /, app: str | None, **options: Any) -> None:
    """Run a worker (see WORKER_HELP)."""
    if not app:
        raise click.UsageError(
            "name your queue: sitq worker module:queue (or set SITQ_APP, or app = "
            '"module:queue" under [tool.sitq] in pyproject.toml)'
        )
    configure_logging(options["log_level"], options["log_format"])
    queue = build_queue(app, options["backend"], from_command_line(ctx, "backend"))
    queues = [q.strip() for q in (options["queues"] or "").split(",") if q.strip()] or None
    try:
        worker = Worker(
            queue,
            worker_id=options["worker_id"],
            worker_type=options["worker_type"],
            max_workers=options["concurrency"],
            poll_interval=options["poll_interval"],
            max_tasks=options["max_tasks"],
            timeout=options["timeout"],
            max_retries=options["max_retries"],
            retry_delay=options["retry_delay"],
            queues=queues,
            graceful_shutdown=options["graceful_shutdown"],
            log_tasks=options["log_tasks"],
        )
    except SitqError as exc:
        raise click.ClickException(str(exc)) from None
    if options["log_format"] == "text":
        _banner(worker, app, queues)
    logger.info(
        "worker %s starting on %r",
        worker.worker_id,
        worker.backend,
        extra={"worker_id": worker.worker_id, "app": app, "queues": queues},
    )
    interrupted = False
    try:
        worker.run(options["duration"])
    except KeyboardInterrupt:
        interrupted = True
    except SitqError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        # the backend may hold a non-daemon thread (aiosqlite's): close it or exit would hang
        if isinstance(queue, SyncTaskQueue):
            queue.close()
        else:
            asyncio.run(queue.close())
    status = worker.get_status()
    metrics = worker.get_metrics()
    logger.info(
        "worker %s stopped%s: %d tasks (%d succeeded, %d failed, %d retried) in %s, %.1f tasks/s",
        worker.worker_id,
        " by Ctrl-C" if interrupted else "",
        status.tasks_processed,
        status.tasks_succeeded,
        status.tasks_failed - status.tasks_retried,
        status.tasks_retried,
        duration(status.uptime),
        metrics.tasks_per_second,
        extra={"worker_id": worker.worker_id, "metrics": metrics},
    )
    if interrupted:
        sys.exit(EXIT_INTERRUPTED)


def _banner(worker: Worker, app: str, queues: list[str] | None) -> None:
    plugins = ", ".join(p.name for p in worker.plugins.list_plugins() if p.distribution) or "-"
    out = console(stderr=True)
    out.print(f"[bold]sitq worker[/] {worker.worker_id}")
    rows = [
        ("app", app),
        ("backend", repr(worker.backend)),
        ("queues", ", ".join(queues) if queues else "all"),
        ("executor", f"{worker.worker_type}, {worker.max_workers} at once"),
        ("plugins", plugins),
    ]
    for name, value in rows:
        out.print(f"  [dim]{name:<9}[/] {escape(value)}")
    out.print(
        f"  [dim]Ctrl-C or SIGTERM stops gracefully (up to {worker.graceful_shutdown:g} s); "
        "a second one stops at once.[/]"
    )
