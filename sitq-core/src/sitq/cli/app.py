"""Finding the user's queue: app locators (``module:attribute``) and backend URLs."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import click

from ..backend import Backend
from ..errors import SitqError
from ..queue import DEFAULT_BACKEND_URL, TaskQueue
from ..registry import SerializerType
from ..sync import SyncTaskQueue

F = TypeVar("F", bound=Callable[..., Any])

#: Attributes tried, in order, when a locator names only a module.
DEFAULT_ATTRIBUTES = ("queue", "app")


class AppError(click.ClickException):
    """The app locator could not be turned into a queue (exit code 1)."""


def load_app(locator: str) -> TaskQueue | SyncTaskQueue:
    """Import ``module.path:attribute`` and return the queue it names.

    The attribute may be a `TaskQueue`, a `SyncTaskQueue`, a `Backend` (wrapped in a
    `TaskQueue`) or a function returning one of those (called with no arguments). Without
    ``:attribute`` the module's ``queue`` (or ``app``) is used. The current folder is put on
    ``sys.path`` first, as Celery does, so ``sitq worker tasks:queue`` finds ``./tasks.py``.
    """
    module_name, _, attribute = locator.partition(":")
    if not module_name or locator.count(":") > 1:
        raise AppError(f"app {locator!r} should look like 'package.module:queue'")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except SitqError as exc:  # e.g. TaskQueue() at import time, with no backend installed
        raise AppError(f"importing {module_name!r} (app {locator!r}) failed: {exc}") from None
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise AppError(
                f"cannot import {module_name!r} (app {locator!r}): {exc}. Run sitq from the "
                f"folder that contains it (now {cwd}), or fix the name."
            ) from None
        raise
    names = [attribute] if attribute else list(DEFAULT_ATTRIBUTES)
    for name in names:
        obj: Any = module
        try:
            for part in name.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        return _as_queue(obj, locator)
    found = [n for n, v in vars(module).items() if _is_queue(v)]
    hint = f" It has: {', '.join(found)}." if found else " It defines no queue."
    wanted = names[0] if attribute else " or ".join(repr(n) for n in names)
    raise AppError(f"module {module_name!r} has no attribute {wanted}.{hint}")


def _is_queue(obj: Any) -> bool:
    return isinstance(obj, (TaskQueue, SyncTaskQueue, Backend))


def _as_queue(obj: Any, locator: str) -> TaskQueue | SyncTaskQueue:
    if not _is_queue(obj) and callable(obj) and not isinstance(obj, type):
        try:
            obj = obj()
        except SitqError as exc:
            raise AppError(f"app {locator!r}: {exc}") from None
    if isinstance(obj, Backend):
        return TaskQueue(obj)
    if isinstance(obj, (TaskQueue, SyncTaskQueue)):
        return obj
    raise AppError(
        f"app {locator!r} is a {type(obj).__name__}, not a TaskQueue, SyncTaskQueue, Backend "
        "or a function returning one"
    )


def sqlite_path(url: str) -> Path | None:
    """The file a ``sqlite://`` URL names (None for other schemes and ``:memory:``)."""
    parts = urlsplit(url)
    if parts.scheme.split("+", 1)[0].lower() != "sqlite" or parts.netloc:
        return None
    path = unquote(parts.path)[1:]
    return Path(path) if path else None


def build_queue(
    app: str | None, backend: str | None, backend_from_command_line: bool
) -> TaskQueue | SyncTaskQueue:
    """The queue a command works on.

    With an app, its queue (``--backend`` given on the command line replaces its backend);
    otherwise a `TaskQueue` on ``backend`` (default ``$SITQ_BACKEND_URL`` or
    ``sqlite:///sitq.db``).
    """
    try:
        if app:
            queue = load_app(app)
            if backend and backend_from_command_line:
                base = queue.async_queue if isinstance(queue, SyncTaskQueue) else queue
                codec = base.codec
                serializer = SerializerType(codec.name, codec.serializer, codec.carries_code)
                return TaskQueue(backend, serializer=serializer, plugins=base.plugins)
            return queue
        return TaskQueue(backend or DEFAULT_BACKEND_URL)
    except SitqError as exc:
        raise click.ClickException(str(exc)) from None


@asynccontextmanager
async def reading(
    app: str | None, backend: str | None, backend_from_command_line: bool
) -> AsyncIterator[TaskQueue]:
    """Open the queue for a read or control command; close it afterwards.

    Refuses to create a SQLite file that does not exist: reading it would only show an empty
    queue, and a typo in the path would go unnoticed.
    """
    if not app:
        url = backend or DEFAULT_BACKEND_URL
        path = sqlite_path(url)
        if path is not None and not path.exists():
            raise click.ClickException(
                f"no task database at {path.resolve()} ({url}). Pass --app module:queue or "
                "--backend URL (or set SITQ_APP / SITQ_BACKEND_URL), or run from the folder "
                "where your workers run."
            )
    queue = build_queue(app, backend, backend_from_command_line)
    aqueue = queue.async_queue if isinstance(queue, SyncTaskQueue) else queue
    try:
        await aqueue.connect()
    except SitqError as exc:
        raise click.ClickException(f"cannot open {aqueue.backend!r}: {exc}") from None
    try:
        yield aqueue
    finally:
        await aqueue.close()


def queue_options(function: F) -> F:
    """The ``--app`` and ``--backend`` options of the commands that read or change tasks."""
    function = click.option(
        "--backend",
        "-b",
        metavar="URL",
        envvar="SITQ_BACKEND_URL",
        show_envvar=True,
        help="Backend URL, e.g. sqlite:///sitq.db (default: the app's, else sqlite:///sitq.db).",
    )(function)
    function = click.option(
        "--app",
        "-A",
        metavar="MODULE:QUEUE",
        envvar="SITQ_APP",
        show_envvar=True,
        help="Your queue, to decode payloads with its serializer and plugins.",
    )(function)
    return function


def from_command_line(ctx: click.Context, name: str) -> bool:
    """True if parameter ``name`` was given on the command line (not env, config or default)."""
    return ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
