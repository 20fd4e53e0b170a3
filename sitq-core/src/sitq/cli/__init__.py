"""The ``sitq`` command: run workers, look at and fix the queue, list plugins, try a demo.

Built on click; every command takes ``-h``. Settings come from the command line, then
``SITQ_*`` environment variables, then ``[tool.sitq]`` in the nearest ``pyproject.toml``
(see `sitq.config`).
"""

from __future__ import annotations

import click

from .. import __version__
from ..config import load_defaults
from ..errors import ConfigurationError
from .control import (
    cancel_command,
    prune_command,
    purge_command,
    retry_command,
    vacuum_command,
)
from .demo import demo_command
from .monitor import failed_command, inspect_command, status_command
from .plugins import plugins_command
from .schedules import scheduler_command, schedules_command
from .tasks import tasks_command
from .worker import worker_command
from .workflows import workflows_command


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="sitq")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """sitq: a task queue for Python, on one SQLite file by default.

    \b
    Try it:              sitq demo
    Run a worker:        sitq worker myapp.tasks:queue
    Look at the queue:   sitq status · sitq failed · sitq inspect TASK_ID · sitq workflows
    """
    try:
        _, defaults = load_defaults()
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    ctx.default_map = defaults


for _command in (
    worker_command,
    status_command,
    inspect_command,
    failed_command,
    retry_command,
    cancel_command,
    purge_command,
    prune_command,
    vacuum_command,
    plugins_command,
    tasks_command,
    schedules_command,
    scheduler_command,
    workflows_command,
    demo_command,
):
    cli.add_command(_command)


def main() -> None:
    """Entry point of the ``sitq`` script and of ``python -m sitq``."""
    cli(prog_name="sitq")


__all__ = ["cli", "main"]
