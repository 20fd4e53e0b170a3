"""``sitq tasks APP``: the tasks an app declares, with their names and default options."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from ..task import function_name
from ..tasks import DeclaredTask
from .app import load_app
from .output import console, json_option, print_json


def task_json(task: DeclaredTask[Any, Any]) -> dict[str, Any]:
    """One declared task as JSON-ready data."""
    return {
        "name": task.name,
        "function": function_name(task.function),
        "options": task.task_options.as_dict(),
    }


@click.command("tasks")
@click.argument("app", envvar="SITQ_APP")
@json_option
def tasks_command(app: str, as_json: bool) -> None:
    """List the tasks APP (module:queue) declares: name, function and default options.

    Tasks come from @queue.task and from blueprints registered with queue.register(...).
    """
    declared = [task_json(task) for task in load_app(app).tasks.values()]
    if as_json:
        print_json(declared)
        return
    out = console()
    if not declared:
        out.print(f"{app} declares no tasks (declare them with @queue.task).")
        return
    table = Table(title=f"tasks of {app}", title_justify="left")
    for column in ("name", "function", "queue", "priority", "max_retries", "timeout", "eta"):
        table.add_column(column, style="bold" if column == "name" else None)
    for task in declared:
        options = task["options"]
        table.add_row(
            task["name"],
            task["function"],
            *(
                "-" if options[key] is None else str(options[key])
                for key in ("queue", "priority", "max_retries", "timeout", "eta")
            ),
        )
    out.print(table)
