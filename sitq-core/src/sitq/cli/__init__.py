"""The ``sitq`` command: run workers, look at and fix the queue, list plugins, try a demo.

Built on click; every command takes ``-h``. Settings come from the command line, then
``SITQ_*`` environment variables, then ``[tool.sitq]`` in the nearest ``pyproject.toml``
(see `sitq.config`).
"""

from __future__ import annotations

import click

from .. import __version__
from ..config import load_defaults
from ..errors import ConfigurationError, PluginError
from ..plugins import get_plugin_manager
from .control import (
    cancel_command,
    prune_command,
    purge_command,
    retry_command,
    vacuum_command,
)
from .demo import demo_command
from .limits import limits_command, pause_command, resume_command
from .monitor import failed_command, inspect_command, status_command
from .plugins import plugins_command
from .schedules import scheduler_command, schedules_command
from .tasks import tasks_command
from .worker import worker_command
from .workflows import workflows_command


class SitqGroup(click.Group):
    """The ``sitq`` group: the built-in commands, then those plugins add (``sitq_commands``),
    loaded only when a command name is looked up or listed."""

    def _plugin_commands(self) -> dict[str, click.Command]:
        try:
            commands = get_plugin_manager().commands
        except PluginError as exc:
            raise click.ClickException(str(exc)) from None
        for name in commands:
            if name in self.commands:
                raise click.ClickException(
                    f"a plugin adds the command {name!r}, which sitq already has; uninstall "
                    "it, or leave it out with SITQ_PLUGINS (see `sitq plugins`)"
                )
        return commands

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """A built-in command, else a plugin's."""
        return super().get_command(ctx, cmd_name) or self._plugin_commands().get(cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command's name, built-in and from plugins, sorted. A plugin that fails to
        load leaves ``sitq -h`` working: `sitq plugins` (and using its command) says why."""
        try:
            added = self._plugin_commands()
        except click.ClickException:
            added = {}
        return sorted({*super().list_commands(ctx), *added})


@click.group(
    cls=SitqGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
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
    limits_command,
    pause_command,
    resume_command,
    workflows_command,
    demo_command,
):
    cli.add_command(_command)


def main() -> None:
    """Entry point of the ``sitq`` script and of ``python -m sitq``."""
    cli(prog_name="sitq")


__all__ = ["cli", "main"]
