"""`WorkerConfig`: every option of a worker, declared once and checked once.

Each field carries an `OptionInfo` (see ``options.py``) in its metadata: its help text, how
to check a value, and whether (and under which name) the ``sitq worker`` command exposes it.
That one declaration drives `Worker`'s checks, the command's click options
(``--lease-seconds``), their environment variables (``SITQ_LEASE_SECONDS``) and the
``[tool.sitq]`` keys of ``pyproject.toml`` (``lease_seconds = 60``); see ``settings.py``.

A value is refused with a `ConfigurationError` that names the option, what it must be, and
what it got: ``lease_seconds must be a number of seconds > 0 and finite, got nan``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import ConfigurationError
from ..limits import ResourceLimits
from ..plugins import PluginManager
from ..registry import Serializer, SerializerType
from ..retention import (
    DEFAULT_FAILED_RETENTION,
    DEFAULT_RETENTION,
    check_retention,
)
from ..retry import RetryPolicy
from ..signing import SecretKey
from ..validation import (
    check_callable,
    check_flag,
    check_jitter,
    check_number,
    check_text,
)
from .options import (
    _COUNT,
    _FLAG,
    _NAMES,
    _RETENTION,
    _SECONDS,
    OptionInfo,
    _anything,
    _count,
    _info,
    _names,
    _parse_jitter,
    _parse_number,
    _registered_worker_type,
    _seconds,
    option_info,
)


@dataclass(frozen=True, kw_only=True)
class WorkerConfig:
    """Every option of a `Worker`, checked when built: ``Worker(queue, **options)`` builds
    one and keeps it as ``worker.config``.

    ``max_workers`` left out is resolved from ``worker_type`` and ``recovery_interval`` from
    ``lease_seconds``; ``dataclasses.replace`` gives a checked copy. A bad value raises
    `ConfigurationError` naming the option and its range; NaN and infinities are refused.

    :param worker_id: a name for this worker (default: ``host:pid:random``).
    :param worker_type: ``"async"`` (coroutines on the loop, functions in threads),
        ``"thread"`` (every function in a thread) or ``"process"`` (CPU-bound work in child
        processes that never touch the database; see `sitq.processes`).
    :param max_workers: tasks run at once (default: 100 async, 8 threads, one process per CPU).
    :param max_concurrency: the sitq 0.x name of ``max_workers``: given, it becomes
        ``max_workers`` (and reads back as None); giving both is a `ConfigurationError`.
    :param poll_interval: seconds between looks at the queue when idle. Enqueues and retries
        in this process wake the worker at once.
    :param max_tasks: stop after exactly this many task attempts (a retry is a new attempt;
        a declined task is not one).
    :param timeout: seconds a task may run (a task's own ``timeout`` wins). On timeout the task
        fails with `TaskTimeout` (and is retried if retries are left). A coroutine is
        cancelled; a child process is killed and replaced (there the timeout counts from the
        function's start, not the child's startup); a thread cannot be stopped: its slot goes
        to a fresh thread at once, while the function runs on unseen until it returns.
    :param max_retries: retries of a failing task (a task's own ``max_retries`` wins).
    :param retry_delay: seconds before the first retry; ``retry_backoff`` multiplies it for each
        later retry (2: exponential), up to ``max_retry_delay``; ``retry_jitter`` randomizes
        it (True: anywhere from 0; a fraction such as 0.2: up to 20 % shorter). See
        `sitq.retry.RetryPolicy`.
    :param retry_failed: False turns every retry off.
    :param continue_on_error: False stops the worker after a task fails for good.
    :param scheduler: fire the queue's periodic schedules (`sitq.scheduler`) in this worker;
        any number of workers may, each fire is stored once.
    :param on_error: ``on_error(task_id, error, retry_count)`` after each failed attempt:
        ``error`` is the exception, ``retry_count`` the attempt number (1 on first failure).
    :param on_success: ``on_success(task_id, value)`` after each success, with the returned
        value. Both run on the worker's event loop once the outcome is stored (a coroutine
        function is awaited); one that raises is logged on ``sitq.plugins`` and ignored, so it
        can neither stop the worker nor lose the task. They are registered as a plugin of this
        worker only.
    :param queues: names of the queues to take tasks from (default: all).
    :param serializer: a registered serializer name, or any object with ``dumps``/``loads``
        (such as the ``pickle`` module), that encodes results (default: the serializer named in
        the task record). Readers decode results with the serializer named in the record, so
        it must write what that one reads: a worker built from a queue checks this against
        the queue's serializer at construction, and stores the results of tasks whose own
        serializer cannot read it with that serializer instead (logging a warning).
    :param deserializer: the same kinds of value; decodes task payloads instead of the
        serializer named in the task record (checked against a queue's serializer at
        construction). Needed when tasks were written with a serializer object that is not
        registered in this process.
    :param max_memory_mb: resident memory (MiB). A process worker bounds each running task
        with it: a child process going over it is killed and replaced, and its task fails
        with `ResourceLimitExceeded` naming the limit (see `sitq.processes`). Async and
        thread workers run tasks in their own process, where nothing can stop a running
        thread or coroutine: for them it only means taking no new task while the worker
        process is over it (so does a process worker, for its own memory; see
        `sitq.limits`).
    :param max_cpu_percent: while the worker and its children use more than this share of the
        machine's CPU (100 = all cores), it takes no new task.
    :param graceful_shutdown: seconds `stop` waits for running tasks before cancelling them and
        handing them back to the queue (pending again, attempt not counted).
    :param recovery_interval: seconds between recovery passes (default: half of
        ``lease_seconds``).
    :param lease_seconds: how long a claim holds before another worker may recover the task;
        extended every ``lease_seconds / 3`` from the claim on, by a heartbeat thread that a
        task blocking the event loop cannot starve (see `sitq.heartbeat`). A cancelled task,
        or one whose lease was lost, is stopped at the next heartbeat.
    :param max_attempts: attempts after which a task whose worker keeps dying goes ``dead``.
        Attempts are counted when a task is claimed, so a task that kills its worker runs
        at most this many times.
    :param result_ttl: seconds a finished task keeps its payload and result. After that
        (checked on recovery passes, at least once a minute) they are dropped and a
        tombstone stays, so ``get_result`` raises `ResultExpired` rather than `TaskNotFound`.
        None (the default) keeps them until purged.
    :param retention: how long succeeded and cancelled tasks are kept after they finish, in
        seconds or as a `timedelta` (``7d`` in settings); older ones are deleted by the
        workers, a batch at a time, every ``prune_interval`` (see `sitq.retention`). Default
        7 days; None or 0 keeps them until purged.
    :param failed_retention: the same for failed and dead tasks; default 30 days.
    :param prune_interval: seconds between pruning passes (default 60).
    :param secret_key: the key payload signatures are checked with and results signed with
        (see `sitq.signing`); default: the queue's (``TaskQueue(secret_key=...)`` or
        ``$SITQ_SECRET_KEY``). Unsigned or badly signed payloads go dead undecoded.
    :param allowed_functions: ``module:name`` patterns of the functions tasks may call, e.g.
        ``["myapp.tasks:*"]`` (see `sitq.payload.FunctionAllowList`), or ``"declared"``: the
        queue's declared tasks only (``@queue.task``); a task calling anything else goes dead
        unrun, and its module is never imported. With a data-only
        ``deserializer`` ("msgpack" or "json"), the setting for queues that untrusted
        parties write to.
    :param logger: the logger to use (default ``sitq.worker``); never configured by sitq.
    :param log_level: the level of the worker's own informational lines (default INFO).
    :param log_tasks: log each task's start and end at ``log_level``.
    :param log_errors: log failures with their tracebacks.
    :param log_performance: log throughput every ``performance_interval`` seconds (default 60).
    :param plugins: a `PluginManager` (default: the queue's).
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
            "async (coroutines on the loop, functions in threads), thread, process, or one a "
            "plugin registers",
            check_text,
            parse=_registered_worker_type,
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
    max_concurrency: int | None = field(
        default=None,
        metadata=_info("sitq 0.x name of max_workers", _count(1), **_COUNT, cli=False),
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
    scheduler: bool = field(
        default=True,
        metadata=_info("fire the app's periodic schedules in this worker", check_flag, **_FLAG),
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
    retention: float | None = field(
        default=DEFAULT_RETENTION,
        metadata=_info(
            "how long succeeded and cancelled tasks are kept (90s, 12h, 7d; 0: forever) "
            "[default: 7d]",
            check_retention,
            **_RETENTION,
        ),
    )
    failed_retention: float | None = field(
        default=DEFAULT_FAILED_RETENTION,
        metadata=_info(
            "how long failed and dead tasks are kept (0: forever) [default: 30d]",
            check_retention,
            **_RETENTION,
        ),
    )
    prune_interval: float = field(
        default=60.0,
        metadata=_info("seconds between passes deleting old tasks", _seconds(), **_SECONDS),
    )
    secret_key: SecretKey | None = field(
        default=None,
        metadata=_info("key that payload signatures are checked with", _anything, cli=False),
    )
    allowed_functions: tuple[str, ...] | None = field(
        default=None,
        metadata=_info(
            "comma-separated 'module:name' patterns of the functions tasks may call, or "
            "'declared' for the app's declared tasks only",
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
        if self.max_concurrency is not None:
            if self.max_workers is not None:
                raise ConfigurationError(
                    f"max_workers={self.max_workers} and max_concurrency="
                    f"{self.max_concurrency} name one option (max_concurrency is its sitq 0.x "
                    "name); give only max_workers"
                )
            object.__setattr__(self, "max_workers", self.max_concurrency)
            object.__setattr__(self, "max_concurrency", None)
        if self.max_workers is None:
            default = {"async": 100, "thread": 8}.get(self.worker_type, os.cpu_count() or 1)
            object.__setattr__(self, "max_workers", default)
        if self.recovery_interval is None:
            object.__setattr__(self, "recovery_interval", self.lease_seconds / 2)

    def retry_policy(self) -> RetryPolicy:
        """The `RetryPolicy` these options describe."""
        return RetryPolicy(
            max_retries=self.max_retries,
            retry_delay=self.retry_delay,
            retry_backoff=self.retry_backoff,
            max_retry_delay=self.max_retry_delay,
            retry_jitter=self.retry_jitter,
            retry_failed=self.retry_failed,
        )

    def resource_limits(self) -> ResourceLimits:
        """The `ResourceLimits` these options describe."""
        return ResourceLimits(self.max_memory_mb, self.max_cpu_percent)

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


__all__ = ["OptionInfo", "WorkerConfig", "option_info"]
