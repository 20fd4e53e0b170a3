"""The ``sitq`` entry point of sitq-web: adds ``sitq web`` through the ``sitq_commands`` hook."""

from __future__ import annotations

import click

import sitq


@sitq.hookimpl
def sitq_commands() -> list[click.Command]:
    """``sitq web``."""
    from .cli import web_command  # the app's imports wait until the command is used

    return [web_command]
