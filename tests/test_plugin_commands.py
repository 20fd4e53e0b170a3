"""The ``sitq_commands`` hook: a plugin's click commands join ``sitq``; a name sitq already
has is refused, naming it; a plugin that fails to load leaves ``sitq -h`` working."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

import sitq
from sitq.cli import cli
from sitq.plugins import get_plugin_manager


@click.command("hello")
@click.argument("name")
def hello_command(name: str) -> None:
    """Say hello."""
    click.echo(f"hello {name}")


@click.command("status")
def status_command() -> None:
    """A second ``status``."""


class Adds:
    """A plugin adding the commands it is given."""

    def __init__(self, *commands: click.Command) -> None:
        self.commands = list(commands)

    @sitq.hookimpl
    def sitq_commands(self) -> list[click.Command]:
        """The commands."""
        return self.commands


class Broken:
    """A plugin whose command hook raises."""

    @sitq.hookimpl
    def sitq_commands(self) -> list[click.Command]:
        """Fails."""
        raise RuntimeError("cannot load")


@pytest.fixture
def registered() -> Iterator[list[object]]:
    """Plugins appended here are registered for the test, then removed."""
    plugins: list[object] = []
    yield plugins
    for plugin in plugins:
        get_plugin_manager().unregister(plugin)


def _register(registered: list[object], plugin: object) -> None:
    get_plugin_manager().register(plugin)
    registered.append(plugin)


def test_a_plugin_command_runs_and_is_listed(registered: list[object]) -> None:
    _register(registered, Adds(hello_command))
    assert CliRunner().invoke(cli, ["hello", "ada"]).output == "hello ada\n"
    assert "hello" in CliRunner().invoke(cli, ["--help"]).output


def test_a_name_sitq_has_is_refused(registered: list[object]) -> None:
    _register(registered, Adds(status_command))
    result = CliRunner().invoke(cli, ["nonexistent"])
    assert result.exit_code == 1
    assert "'status', which sitq already has" in result.output


def test_a_broken_plugin_leaves_help_working(registered: list[object]) -> None:
    _register(registered, Broken())
    assert CliRunner().invoke(cli, ["--help"]).exit_code == 0
    result = CliRunner().invoke(cli, ["nonexistent"])
    assert result.exit_code == 1 and "cannot load" in result.output
