"""Where the ``sitq`` command's settings come from.

Each setting is looked up, first match wins:

1. the command line (``sitq worker -c 4``);
2. its environment variable (``SITQ_CONCURRENCY=4``);
3. the ``[tool.sitq]`` table of the nearest ``pyproject.toml`` (``concurrency = 4``), found in
   the current folder or the closest parent folder that has one;
4. the built-in default.

Keys in ``[tool.sitq]`` may be written with ``_`` or ``-``; an unknown key or a value of the
wrong type is an error naming the file, the key and what is expected.

The worker's settings are not declared here: each is a field of `sitq.worker.WorkerConfig`
whose metadata says how the command exposes it (`sitq.worker.settings.cli_options`); this
module adds the others (``app``, ``backend_url``, ``duration``, ``log_level``,
``log_format``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigurationError
from .validation import check_choice, check_seconds, check_text
from .worker.settings import cli_options

#: The ``--log-level`` choices of ``sitq worker``.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: The ``--log-format`` choices of ``sitq worker``.
LOG_FORMATS = ("text", "json")

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
    name of the command-line parameter it feeds; ``commands`` the commands that use it;
    ``read(key, value)`` checks a ``[tool.sitq]`` value (errors name ``key``).
    """

    name: str
    commands: tuple[str, ...]
    help: str
    read: Callable[[str, Any], Any]
    param: str = ""

    @property
    def env(self) -> str:
        """The environment variable, ``SITQ_`` + the upper-cased name."""
        return "SITQ_" + self.name.upper()

    @property
    def param_name(self) -> str:
        """The click parameter name this setting provides a default for."""
        return self.param or self.name


def _text(where: str, value: Any) -> str:
    return check_text(where, value)


def _one_of(*choices: str) -> Callable[[str, Any], Any]:
    return lambda where, value: check_choice(where, value, choices)


def _log_level(where: str, value: Any) -> str:
    return check_choice(where, value.upper() if isinstance(value, str) else value, LOG_LEVELS)


_READERS = (
    "worker", "status", "inspect", "failed", "retry", "cancel", "purge", "prune", "vacuum",
)  # fmt: skip
#: Worker settings that ``sitq prune`` reads too.
_PRUNE_SETTINGS = ("retention", "failed_retention")

#: Every setting, in the order the docs list them: the worker's come from the fields of
#: `sitq.worker.WorkerConfig` (see `sitq.worker.settings.cli_options`).
SETTINGS: tuple[Setting, ...] = (
    Setting("app", _READERS, "the queue to use, as 'module:attribute'", _text),
    Setting(
        "backend_url", _READERS, "the backend URL (overrides the app's)", _text, param="backend"
    ),
    *(
        Setting(
            o.name,
            ("worker", "prune") if o.name in _PRUNE_SETTINGS else ("worker",),
            o.info.help,
            o.read,
        )
        for o in cli_options()
    ),
    Setting(
        "duration",
        ("worker",),
        "stop after this many seconds",
        lambda where, value: check_seconds(where, value, allow_zero=True),
    ),
    Setting("log_level", ("worker",), "DEBUG, INFO, WARNING or ERROR", _log_level),
    Setting("log_format", ("worker",), "text or json", _one_of(*LOG_FORMATS)),
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

    Keys are normalized to ``_``; lists of names may also be written as one comma-separated
    string. Each value is checked by the rule of its setting (for the worker's, the rule of
    its `WorkerConfig` field). Raises `ConfigurationError` naming the file and the key.
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
    if setting is None:
        raise ConfigurationError(
            f"{path}: [tool.{TOOL_TABLE}] {key} is not a sitq setting; choose one of: "
            f"{', '.join(SETTINGS_BY_NAME)}"
        )
    try:
        return setting.read(key, value)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{path}: [tool.{TOOL_TABLE}] {exc}") from None


def default_map(table: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Turn a ``[tool.sitq]`` table into click's ``default_map``: command → parameter → value."""
    defaults: dict[str, dict[str, Any]] = {}
    for key, value in table.items():
        setting = SETTINGS_BY_NAME[key]
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
