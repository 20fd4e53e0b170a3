"""How a `WorkerConfig` option is declared: `OptionInfo`, and the checks and parsers it uses.

An `OptionInfo` sits in each field's metadata (built with `_info`); the helpers here turn
command-line or environment text into values (``_parse_*``) and build the checks of common
kinds of value (``_seconds``, ``_count``, ``_names``). `option_info` reads a field's back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import Field, dataclass
from typing import Any

from ..retention import parse_duration
from ..validation import check_count, check_names, check_seconds

#: Checks one value of an option, given the name to report: returns it normalized or raises.
Check = Callable[[str, Any], Any]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _parse_flag(text: str) -> bool | str:
    word = text.strip().lower()
    return True if word in _TRUE else False if word in _FALSE else text


def _parse_number(text: str) -> Any:
    """An int or float from ``text``; the text itself if it is neither (the check refuses it)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _parse_jitter(text: str) -> Any:
    flag = _parse_flag(text)
    return flag if isinstance(flag, bool) else _parse_number(text)


def _parse_names(text: str) -> tuple[str, ...] | str:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    return names or text


@dataclass(frozen=True)
class OptionInfo:
    """What a `WorkerConfig` field declares besides its type and default.

    :param help: one line for ``--help`` and the docs.
    :param check: checks and normalizes a value (never called with None).
    :param parse: turns command-line or environment text into a value for ``check``.
    :param cli: True if ``sitq worker``, ``SITQ_*`` and ``[tool.sitq]`` expose it.
    :param setting: its name there (default: the field's), e.g. ``concurrency``.
    :param short: a short flag, e.g. ``-c``.
    :param flag: True for an on/off option (``--log-tasks/--no-log-tasks``).
    :param metavar: what ``--help`` shows as its value, e.g. ``SECONDS``.
    """

    help: str
    check: Check
    parse: Callable[[str], Any] = str
    cli: bool = True
    setting: str = ""
    short: str = ""
    flag: bool = False
    metavar: str = "TEXT"


def _info(help: str, check: Check, **info: Any) -> dict[str, OptionInfo]:
    return {"sitq": OptionInfo(help, check, **info)}


def _seconds(*, allow_zero: bool = False) -> Check:
    return lambda name, value: check_seconds(name, value, allow_zero=allow_zero)


def _count(minimum: int) -> Check:
    return lambda name, value: check_count(name, value, minimum=minimum)


def _names(what: str, hint: str = "") -> Check:
    return lambda name, value: check_names(name, value, what=what, hint=hint)


def _registered_worker_type(text: str) -> str:
    """A ``worker_type`` read by the ``sitq`` command, which serves the process-wide plugins:
    checked against their executors there, so a typo names the file or flag it came from.
    (`Worker` checks it against its own plugin manager, which may register more.)"""
    from ..plugins import get_plugin_manager  # not at import: plugins.py is heavier

    get_plugin_manager().executor_class(text)
    return text


def _anything(name: str, value: Any) -> Any:
    return value


_SECONDS = {"parse": _parse_number, "metavar": "SECONDS"}
_COUNT = {"parse": _parse_number, "metavar": "N"}
_NAMES = {"parse": _parse_names, "metavar": "NAMES"}
_FLAG = {"parse": _parse_flag, "flag": True}
_RETENTION = {"parse": parse_duration, "metavar": "DURATION"}


def option_info(f: Field[Any]) -> OptionInfo:
    """The `OptionInfo` of one `WorkerConfig` field."""
    info = f.metadata["sitq"]
    assert isinstance(info, OptionInfo)
    return info


__all__ = ["Check", "OptionInfo", "option_info"]
