"""Where the ``sitq`` command's settings come from.

Each setting is looked up, first match wins:

1. the command line (``sitq worker -c 4``);
2. its environment variable (``SITQ_CONCURRENCY=4``);
3. the ``[tool.sitq]`` table of the nearest ``pyproject.toml`` (``concurrency = 4``), found in
   the current folder or the closest parent folder that has one;
4. the built-in default.

Keys in ``[tool.sitq]`` may be written with ``_`` or ``-``; an unknown key or a value of the
wrong type is an error naming the file, the key and what is expected.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigurationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

#: The table of ``pyproject.toml`` read by the ``sitq`` command.
TOOL_TABLE = "sitq"


@dataclass(frozen=True)
class Setting:
    """One configurable setting of the ``sitq`` command.

    ``name`` is the key in ``[tool.sitq]``; ``env`` its environment variable; ``param`` the
    name of the command-line parameter it feeds; ``commands`` the commands that use it.
    """

    name: str
    kind: type
    commands: tuple[str, ...]
    help: str
    param: str = ""

    @property
    def env(self) -> str:
        """The environment variable, ``SITQ_`` + the upper-cased name."""
        return "SITQ_" + self.name.upper()

    @property
    def param_name(self) -> str:
        """The click parameter name this setting provides a default for."""
        return self.param or self.name


_READERS = ("worker", "status", "inspect", "failed", "retry", "cancel", "purge")

#: Every setting, in the order the docs list them.
SETTINGS: tuple[Setting, ...] = (
    Setting("app", str, _READERS, "the queue to use, as 'module:attribute'"),
    Setting("backend_url", str, _READERS, "the backend URL (overrides the app's)", param="backend"),
    Setting("concurrency", int, ("worker",), "tasks run at once"),
    Setting("worker_type", str, ("worker",), "async, thread or process"),
    Setting("queues", list, ("worker",), "queues to take tasks from (default: all)"),
    Setting("max_tasks", int, ("worker",), "stop after this many task attempts"),
    Setting("duration", float, ("worker",), "stop after this many seconds"),
    Setting("graceful_shutdown", float, ("worker",), "seconds to let running tasks finish"),
    Setting("poll_interval", float, ("worker",), "seconds between looks at an idle queue"),
    Setting("timeout", float, ("worker",), "seconds a task may run"),
    Setting("max_retries", int, ("worker",), "retries of a failing task"),
    Setting("retry_delay", float, ("worker",), "seconds before the first retry"),
    Setting("log_level", str, ("worker",), "DEBUG, INFO, WARNING or ERROR"),
    Setting("log_format", str, ("worker",), "text or json"),
    Setting("log_tasks", bool, ("worker",), "log the start and end of every task"),
)

SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}


def find_pyproject(start: Path | None = None) -> Path | None:
    """The ``pyproject.toml`` in ``start`` (default: the current folder) or its closest parent."""
    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        path = candidate / "pyproject.toml"
        if path.is_file():
            return path
    return None


def read_tool_table(path: Path) -> dict[str, Any]:
    """The validated ``[tool.sitq]`` table of ``path`` (empty if it has none).

    Keys are normalized to ``_``; lists of queues may also be written as one comma-separated
    string. Raises `ConfigurationError` naming the file and the key.
    """
    try:
        with path.open("rb") as f:
            document = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from None
    table = document.get("tool", {}).get(TOOL_TABLE, {})
    if not isinstance(table, dict):
        raise ConfigurationError(f"{path}: [tool.{TOOL_TABLE}] must be a table")
    return {key.replace("-", "_"): _check(path, key, value) for key, value in table.items()}


def _check(path: Path, key: str, value: Any) -> Any:
    setting = SETTINGS_BY_NAME.get(key.replace("-", "_"))
    where = f"{path}: [tool.{TOOL_TABLE}] {key}"
    if setting is None:
        raise ConfigurationError(
            f"{where} is not a sitq setting; choose one of: {', '.join(SETTINGS_BY_NAME)}"
        )
    kind = setting.kind
    if kind is list:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigurationError(f'{where} must be a list of names, e.g. ["emails", "default"]')
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if (kind is not bool and isinstance(value, bool)) or not isinstance(value, kind):
        raise ConfigurationError(f"{where} must be a {kind.__name__}, got {value!r}")
    return value


def default_map(table: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Turn a ``[tool.sitq]`` table into click's ``default_map``: command → parameter → value."""
    defaults: dict[str, dict[str, Any]] = {}
    for key, value in table.items():
        setting = SETTINGS_BY_NAME[key]
        if setting.kind is list:
            value = ",".join(value)
        for command in setting.commands:
            defaults.setdefault(command, {})[setting.param_name] = value
    return defaults


def load_defaults(start: Path | None = None) -> tuple[Path | None, dict[str, dict[str, Any]]]:
    """Find the nearest ``pyproject.toml`` and return it with its click ``default_map``."""
    path = find_pyproject(start)
    if path is None:
        return None, {}
    return path, default_map(read_tool_table(path))


def env_value(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of setting ``name``'s environment variable, if set and not empty."""
    env = os.environ if environ is None else environ
    return env.get(SETTINGS_BY_NAME[name].env) or None
