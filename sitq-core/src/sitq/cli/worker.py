"""``sitq worker``: run a worker in the foreground until it is told to stop.

Its worker options are not declared here: one click option is made for each
`sitq.worker.WorkerConfig` field that its metadata exposes (flag, help, check), with its
``SITQ_*`` environment variable; ``[tool.sitq]`` defaults reach them through `sitq.config`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.markup import escape

from ..config import LOG_FORMATS, LOG_LEVELS
from ..errors import ConfigurationError, SitqError
from ..logs import configure_logging
from ..sync import SyncTaskQueue
from ..worker import Worker
from ..worker.settings import CliOption, cli_options, config_from_options
from .app import build_queue, from_command_line
from .output import console, duration

#: Exit code after Ctrl-C (SIGINT), as shells report a process ended by it.
EXIT_INTERRUPTED = 130

logger = logging.getLogger("sitq.cli")

F = TypeVar("F", bound=Callable[..., Any])

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


class SettingType(click.ParamType):  # type: ignore[type-arg]
    """Reads a worker option from the command line, the environment or ``[tool.sitq]`` with
    the check its `WorkerConfig` field declares (a bad value is a usage error, exit 2)."""

    def __init__(self, option: CliOption) -> None:
        self.option = option
        self.name = option.name

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """The checked value."""
        try:
            return self.option.read(self.option.name, value)
        except ConfigurationError as exc:
            self.fail(str(exc), param, ctx)


def worker_options(command: F) -> F:
    """Add one click option per worker option that `WorkerConfig` exposes to the command
    line (``--lease-seconds``, ``SITQ_LEASE_SECONDS``)."""
    for option in reversed(cli_options()):
        help_text = option.info.help[0].upper() + option.info.help[1:] + "."
        if option.info.flag:
            help_text = help_text.replace("[default: ", "[")
        command = click.option(
            *option.flags,
            option.name,
            type=None if option.info.flag else SettingType(option),
            metavar=None if option.info.flag else option.info.metavar,
            default=option.default,
            show_default=option.default is not None,
            envvar=option.env,
            show_envvar=True,
            help=help_text,
        )(command)
    return command


@click.command("worker", help=WORKER_HELP)
@click.argument("app", required=False, envvar="SITQ_APP")
@worker_options
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    envvar="SITQ_DURATION",
    show_envvar=True,
    help="Stop after this many seconds.",
)
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
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="INFO",
    show_default=True,
    envvar="SITQ_LOG_LEVEL",
    show_envvar=True,
)
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default="text",
    show_default=True,
    envvar="SITQ_LOG_FORMAT",
    show_envvar=True,
    help="json: one object per line with task_id, function, attempt, duration.",
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
    queues = list(options["queues"]) if options["queues"] else None
    try:
        worker = Worker(queue, **config_from_options(options))
    except ConfigurationError as exc:  # an option the worker refuses (an unknown worker type)
        raise click.UsageError(str(exc)) from None
    except SitqError as exc:
        raise click.ClickException(str(exc)) from None
    if options["log_format"] == "text":
        _banner(worker, app, queues)
    logger.info(
        "worker %s starting on %r, serving %s",
        worker.worker_id,
        worker.backend,
        served_tasks(worker),
        extra={
            "worker_id": worker.worker_id,
            "app": app,
            "queues": queues,
            "tasks": sorted(worker.queue.tasks),
        },
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


#: What the banner and the start line say when the app declares no task.
NONE_DECLARED = "none declared: any importable function"


def served_tasks(worker: Worker) -> str:
    """The names of the tasks ``worker``'s app declares (``@queue.task``), sorted, or
    `NONE_DECLARED` (then any function tasks name runs, within ``--allowed-functions``)."""
    names = sorted(worker.queue.tasks)
    if not names:
        allowed = worker.config.allowed_functions
        if allowed == ("declared",):
            return "none declared: nothing can run (--allowed-functions declared)"
        if allowed:
            return f"none declared: functions matching {', '.join(allowed)}"
        return NONE_DECLARED
    return ", ".join(names)


def fired_schedules(worker: Worker) -> str:
    """What the banner says of the app's periodic schedules and whether this worker fires
    them (`sitq.scheduler`)."""
    names = sorted(worker.queue.schedules)
    if not names:
        return "none"
    fired = "fired here" if worker.scheduler else "not fired here (--no-scheduler)"
    return f"{', '.join(names)} ({fired})"


def _banner(worker: Worker, app: str, queues: list[str] | None) -> None:
    plugins = ", ".join(p.name for p in worker.plugins.list_plugins() if p.distribution) or "-"
    out = console(stderr=True)
    out.print(f"[bold]sitq worker[/] {worker.worker_id}")
    rows = [
        ("app", app),
        ("backend", repr(worker.backend)),
        ("queues", ", ".join(queues) if queues else "all"),
        ("tasks", served_tasks(worker)),
        ("schedules", fired_schedules(worker)),
        ("executor", f"{worker.worker_type}, {worker.max_workers} at once"),
        ("plugins", plugins),
    ]
    for name, value in rows:
        out.print(f"  [dim]{name:<10}[/] {escape(value)}")
    out.print(
        f"  [dim]Ctrl-C or SIGTERM stops gracefully (up to {worker.graceful_shutdown:g} s); "
        "a second one stops at once.[/]"
    )
