"""How `WorkerConfig`'s fields appear as settings of the ``sitq`` command.

A field whose `OptionInfo` says ``cli=True`` becomes a `CliOption`: a ``sitq worker`` flag
(``--lease-seconds``), an environment variable (``SITQ_LEASE_SECONDS``) and a ``[tool.sitq]``
key (``lease_seconds``), all read with the field's own check.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from .config import OptionInfo, WorkerConfig, option_info


@dataclass(frozen=True)
class CliOption:
    """A worker option as the ``sitq worker`` command, ``SITQ_*`` and ``[tool.sitq]`` see it.

    ``name`` is the setting (``concurrency``), ``field`` the `WorkerConfig` field it sets
    (``max_workers``).
    """

    name: str
    field: str
    info: OptionInfo
    default: Any

    @property
    def env(self) -> str:
        """The environment variable, ``SITQ_`` + the upper-cased name."""
        return "SITQ_" + self.name.upper()

    @property
    def flags(self) -> tuple[str, ...]:
        """The command-line flags, e.g. ``("-c", "--concurrency")``."""
        long = "--" + self.name.replace("_", "-")
        if self.info.flag:
            long += "/--no-" + self.name.replace("_", "-")
        return (self.info.short, long) if self.info.short else (long,)

    def read(self, name: str, value: Any) -> Any:
        """``value`` (text from the command line or environment, or a ``[tool.sitq]`` value)
        checked; errors name ``name``."""
        if isinstance(value, str) and (self.info.parse is not str):
            value = self.info.parse(value)
        return self.info.check(name, value)


def cli_options() -> tuple[CliOption, ...]:
    """The worker options the ``sitq worker`` command exposes, in declaration order."""
    return tuple(
        CliOption(option_info(f).setting or f.name, f.name, option_info(f), f.default)
        for f in fields(WorkerConfig)
        if option_info(f).cli
    )


def config_from_options(options: dict[str, Any]) -> dict[str, Any]:
    """``WorkerConfig`` keyword arguments from ``{setting name: value}`` (None values left
    out, so the defaults apply)."""
    return {o.field: options[o.name] for o in cli_options() if options.get(o.name) is not None}


__all__ = ["CliOption", "cli_options", "config_from_options"]
