"""``sitq plugins``: what the plugin manager found, and where it came from."""

from __future__ import annotations

import os

import click
from rich.table import Table

from ..errors import PluginError
from ..plugins import ENV_ALLOWED_PLUGINS, ENV_DISABLE_AUTOLOAD, get_plugin_manager
from .output import console, json_option, print_json


@click.command("plugins")
@json_option
def plugins_command(as_json: bool) -> None:
    """List the installed plugins, their distributions, versions and hooks.

    Plugins are distributions with an entry point in the "sitq" group.
    SITQ_DISABLE_PLUGIN_AUTOLOAD=1 loads none; SITQ_PLUGINS=name1,name2 loads only those.
    """
    try:
        pm = get_plugin_manager()
        infos = pm.list_plugins()
        backends = pm.backends
        serializers = pm.serializers
    except PluginError as exc:
        raise click.ClickException(str(exc)) from None
    autoload = not os.environ.get(ENV_DISABLE_AUTOLOAD)
    allowed = os.environ.get(ENV_ALLOWED_PLUGINS) or None
    if as_json:
        print_json(
            {
                "autoload": autoload,
                "allowed": allowed.split(",") if allowed else None,
                "plugins": [
                    {
                        "name": p.name,
                        "distribution": p.distribution,
                        "version": p.version,
                        "hooks": list(p.hooks),
                    }
                    for p in infos
                ],
                "backends": {s: b.distribution for s, b in sorted(backends.items())},
                "serializers": {
                    n: {"carries_code": s.carries_code, "distribution": s.distribution}
                    for n, s in sorted(serializers.items())
                },
            }
        )
        return
    out = console()
    table = Table(title="sitq plugins", title_justify="left")
    table.add_column("plugin", style="bold")
    table.add_column("distribution")
    table.add_column("version")
    table.add_column("hooks")
    for p in infos:
        table.add_row(p.name, p.distribution or "-", p.version or "-", ", ".join(p.hooks))
    out.print(table)
    out.print(f"backends:    {', '.join(f'{s}://' for s in sorted(backends)) or 'none'}")
    out.print(f"serializers: {', '.join(sorted(serializers))}")
    if not autoload:
        out.print(f"[yellow]{ENV_DISABLE_AUTOLOAD} is set: no plugin was loaded.[/]")
    elif allowed:
        out.print(f"[yellow]{ENV_ALLOWED_PLUGINS}={allowed}: only these were loaded.[/]")
