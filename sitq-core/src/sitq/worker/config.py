"""`WorkerConfig`: every option of a worker, declared once and checked once.

Each field carries an `OptionInfo` in its metadata: its help text, how to check a value, and
whether (and under which name) the ``sitq worker`` command exposes it. That one declaration
drives `Worker`'s checks, the command's click options (``--lease-seconds``), their
environment variables (``SITQ_LEASE_SECONDS``) and the ``[tool.sitq]`` keys of
``pyproject.toml`` (``lease_seconds = 60``); see `cli_options`.

A value is refused with a `ConfigurationError` that names the option, what it must be, and
what it got: ``lease_seconds must be a number of seconds > 0 and finite, got nan``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import Field, dataclass, field, fields
from typing import Any

from ..plugins import PluginManager
from ..registry import Serializer, SerializerType
from ..signing import SecretKey
from ..validation import (
    check_callable,
    check_choice,
    check_count,
    check_flag,
    check_jitter,
    check_names,
    check_number,
    check_seconds,
    check_text,
)
from .capabilities import worker_types

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


def _anything(name: str, value: Any) -> Any:
    return value


_SECONDS = {"parse": _parse_number, "metavar": "SECONDS"}
_COUNT = {"parse": _parse_number, "metavar": "N"}
_NAMES = {"parse": _parse_names, "metavar": "NAMES"}
_FLAG = {"parse": _parse_flag, "flag": True}


@dataclass(frozen=True, kw_only=True)
class WorkerConfig:
    """Every option of a `Worker` (see `Worker` for what each does), checked when built.

    ``max_workers`` left out is resolved from ``worker_type`` (100 async, 8 thread, one
    process per CPU) and ``recovery_interval`` from ``lease_seconds`` (half of it).
    ``dataclasses.replace`` gives a checked copy.
    """

    worker_id: str | None = field(
        default=None,
        metadata=_info(
            "a name for this worker [default: host:pid:random]", check_text, metavar="NAME"
        ),
    )
    worker_type: str = field(
        default="async",
        metadata=_info(
            "one of async (coroutines on the loop, functions in threads), thread, process",
            lambda name, value: check_choice(name, value, worker_types()),
            short="-t",
            metavar="TYPE",
        ),
    )
    max_workers: int | None = field(
        default=None,
        metadata=_info(
            "tasks run at once [default: 100 async, 8 thread, one process per CPU]",
            _count(1),
            **_COUNT,
            setting="concurrency",
            short="-c",
        ),
    )
    queues: tuple[str, ...] | None = field(
        default=None,
        metadata=_info(
            "comma-separated queues to take tasks from [default: all]",
            _names("queue names", "; leave it out to take tasks from every queue"),
            **_NAMES,
            short="-q",
        ),
    )
    poll_interval: float = field(
        default=1.0,
        metadata=_info(
            "seconds between looks at an idle queue (enqueues in-process wake it at once)",
            _seconds(),
            **_SECONDS,
        ),
    )
    max_tasks: int | None = field(
        default=None,
        metadata=_info("stop after this many task attempts", _count(1), **_COUNT),
    )
    timeout: float | None = field(
        default=None,
        metadata=_info(
            "seconds a task may run (a task's own timeout wins)", _seconds(), **_SECONDS
        ),
    )
    max_retries: int = field(
        default=0,
        metadata=_info(
            "retries of a failing task (a task's own max_retries wins)",
            _count(0),
            **_COUNT,
        ),
    )
    retry_delay: float = field(
        default=1.0,
        metadata=_info("seconds before the first retry", _seconds(allow_zero=True), **_SECONDS),
    )
    retry_backoff: float = field(
        default=1.0,
        metadata=_info(
            "factor applied to the delay for each later retry (2: exponential)",
            lambda name, value: check_number(
                name,
                value,
                what="a finite number >= 1 (1 = constant delay, 2 = doubling)",
                at_least=1,
            ),
            parse=_parse_number,
            metavar="FACTOR",
        ),
    )
    max_retry_delay: float = field(
        default=3600.0,
        metadata=_info(
            "longest delay before a retry, in seconds", _seconds(allow_zero=True), **_SECONDS
        ),
    )
    retry_jitter: bool | float = field(
        default=False,
        metadata=_info(
            "randomize retry delays: true (from 0), false, or a fraction such as 0.2",
            check_jitter,
            parse=_parse_jitter,
            metavar="JITTER",
        ),
    )
    retry_failed: bool = field(
        default=True, metadata=_info("retry failing tasks at all", check_flag, **_FLAG)
    )
    continue_on_error: bool = field(
        default=True, metadata=_info("keep going after a task fails for good", check_flag, **_FLAG)
    )
    on_error: Callable[[str, BaseException, int], Any] | None = field(
        default=None,
        metadata=_info(
            "called as on_error(task_id, error, retry_count)", check_callable, cli=False
        ),
    )
    on_success: Callable[[str, Any], Any] | None = field(
        default=None,
        metadata=_info("called as on_success(task_id, value)", check_callable, cli=False),
    )
    serializer: str | Serializer | SerializerType | None = field(
        default=None,
        metadata=_info(
            "registered serializer that encodes results [default: the task's]", _anything
        ),
    )
    deserializer: str | Serializer | SerializerType | None = field(
        default=None,
        metadata=_info(
            "registered serializer that decodes payloads [default: the task's]", _anything
        ),
    )
    max_memory_mb: float | None = field(
        default=None,
        metadata=_info(
            "take no new task while the worker uses more resident memory (MiB) than this",
            lambda name, value: check_number(name, value, what="a number of MiB > 0", above=0),
            parse=_parse_number,
            metavar="MIB",
        ),
    )
    max_cpu_percent: float | None = field(
        default=None,
        metadata=_info(
            "take no new task above this share of the machine's CPU (100 = all cores)",
            lambda name, value: check_number(
                name, value, what="a share of the machine's CPU in (0, 100]", above=0, at_most=100
            ),
            parse=_parse_number,
            metavar="PERCENT",
        ),
    )
    graceful_shutdown: float = field(
        default=30.0,
        metadata=_info(
            "seconds running tasks get to finish when stopping",
            _seconds(allow_zero=True),
            **_SECONDS,
        ),
    )
    lease_seconds: float = field(
        default=30.0,
        metadata=_info(
            "seconds a claim holds before another worker may recover the task",
            _seconds(),
            **_SECONDS,
        ),
    )
    recovery_interval: float | None = field(
        default=None,
        metadata=_info(
            "seconds between passes recovering tasks of dead workers [default: lease / 2]",
            _seconds(),
            **_SECONDS,
        ),
    )
    max_attempts: int = field(
        default=5,
        metadata=_info(
            "attempts after which a task whose worker keeps dying goes dead",
            _count(1),
            **_COUNT,
        ),
    )
    result_ttl: float | None = field(
        default=None,
        metadata=_info(
            "seconds a finished task keeps its payload and result [default: until purged]",
            _seconds(),
            **_SECONDS,
        ),
    )
    secret_key: SecretKey | None = field(
        default=None,
        metadata=_info("key that payload signatures are checked with", _anything, cli=False),
    )
    allowed_functions: tuple[str, ...] | None = field(
        default=None,
        metadata=_info(
            "comma-separated 'module:name' patterns of the functions tasks may call",
            _names("'module:name' patterns"),
            **_NAMES,
        ),
    )
    logger: logging.Logger | None = field(
        default=None, metadata=_info("the logger to use", _anything, cli=False)
    )
    log_level: int = field(
        default=logging.INFO,
        metadata=_info("level of the worker's own log lines", _count(0), cli=False),
    )
    log_tasks: bool = field(
        default=False,
        metadata=_info(
            "log the start and end of every task (costs throughput)", check_flag, **_FLAG
        ),
    )
    log_errors: bool = field(
        default=True, metadata=_info("log failures with their tracebacks", check_flag, **_FLAG)
    )
    log_performance: bool = field(
        default=False,
        metadata=_info("log throughput every performance_interval seconds", check_flag, **_FLAG),
    )
    performance_interval: float = field(
        default=60.0, metadata=_info("seconds between throughput log lines", _seconds(), **_SECONDS)
    )
    plugins: PluginManager | None = field(
        default=None, metadata=_info("plugin manager [default: the queue's]", _anything, cli=False)
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None or f.default is not None:  # None only where it is the default
                object.__setattr__(self, f.name, option_info(f).check(f.name, value))
        if self.max_workers is None:
            default = {"async": 100, "thread": 8}.get(self.worker_type, os.cpu_count() or 1)
            object.__setattr__(self, "max_workers", default)
        if self.recovery_interval is None:
            object.__setattr__(self, "recovery_interval", self.lease_seconds / 2)

    @property
    def concurrency(self) -> int:
        """``max_workers``, resolved (never None)."""
        assert self.max_workers is not None
        return self.max_workers

    @property
    def recovery_every(self) -> float:
        """``recovery_interval``, resolved (never None)."""
        assert self.recovery_interval is not None
        return self.recovery_interval


def option_info(f: Field[Any]) -> OptionInfo:
    """The `OptionInfo` of one `WorkerConfig` field."""
    info = f.metadata["sitq"]
    assert isinstance(info, OptionInfo)
    return info


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


__all__ = ["CliOption", "OptionInfo", "WorkerConfig", "cli_options", "config_from_options"]
