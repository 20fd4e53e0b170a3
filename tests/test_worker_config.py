"""Bad configuration is rejected when the Worker is built, with a message naming the fix."""

from __future__ import annotations

import dataclasses
import inspect
import math
from pathlib import Path
from typing import Any

import pytest

from sitq import SQLiteBackend, SyncTaskQueue, Worker
from sitq.errors import ConfigurationError
from sitq.worker import WorkerConfig
from sitq.worker.settings import cli_options

pytestmark = [pytest.mark.needs_sqlite]


@pytest.fixture
def store(tmp_path: Path) -> SQLiteBackend:
    """A backend that is never connected (construction does no I/O)."""
    return SQLiteBackend(tmp_path / "q.db")


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"worker_type": "fiber"}, "choose one of: async, process, thread"),
        ({"max_workers": 0}, "max_workers must be an int >= 1"),
        ({"max_workers": -2}, "max_workers must be an int >= 1"),
        ({"max_workers": 2.5}, "max_workers must be an int >= 1"),
        ({"max_workers": True}, "max_workers must be an int >= 1"),
        ({"timeout": -1}, "timeout must be a number of seconds > 0"),
        ({"timeout": 0}, "timeout must be a number of seconds > 0"),
        ({"poll_interval": -0.5}, "poll_interval must be a number of seconds > 0"),
        ({"graceful_shutdown": -1}, "graceful_shutdown must be a number of seconds >= 0"),
        ({"lease_seconds": 0}, "lease_seconds must be a number of seconds > 0"),
        ({"lease_seconds": math.nan}, "lease_seconds must be a number of seconds > 0 and finite"),
        ({"max_tasks": 0}, "max_tasks must be an int >= 1"),
        ({"retry_delay": -1}, "retry_delay must be a number of seconds >= 0"),
        ({"on_error": "print"}, "on_error must be callable"),
        ({"on_success": 3}, "on_success must be callable"),
        ({"max_memory_mb": 0}, "max_memory_mb must be a number of MiB > 0"),
        ({"max_memory_mb": -5}, "max_memory_mb must be a number of MiB > 0"),
        ({"max_cpu_percent": 0}, "max_cpu_percent must be a share"),
        ({"max_cpu_percent": 150}, "max_cpu_percent must be a share"),
        ({"queues": []}, "queues must be a list of queue names"),
        ({"queues": ["emails", ""]}, "queues must be a list of queue names"),
        ({"serializer": object()}, "has no dumps()/loads()"),
    ],
)
def test_bad_settings_are_rejected(
    store: SQLiteBackend, kwargs: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        Worker(store, **kwargs)
    assert fragment in str(info.value)


def test_what_a_worker_is_built_from(store: SQLiteBackend) -> None:
    with pytest.raises(ConfigurationError, match="Worker needs a TaskQueue"):
        Worker("sqlite:///tasks.db")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="not both"):
        Worker(store, backend=store)
    with pytest.raises(ConfigurationError, match="Worker needs a TaskQueue"):
        Worker()


def test_good_settings_are_kept(store: SQLiteBackend) -> None:
    worker = Worker(
        store,
        worker_id="w1",
        worker_type="thread",
        max_workers=3,
        poll_interval=0.5,
        max_tasks=10,
        timeout=2,
        graceful_shutdown=0,
        queues="emails",
        max_memory_mb=512,
        max_cpu_percent=75,
    )
    assert (worker.worker_id, worker.worker_type, worker.max_workers) == ("w1", "thread", 3)
    assert worker.queues == ("emails",) and worker.graceful_shutdown == 0.0
    assert worker.limits.max_memory_mb == 512 and worker.limits.max_cpu_percent == 75
    assert Worker(store, worker_type="process").max_workers >= 1  # one per CPU by default
    assert "w1" in repr(worker)


def test_run_rejects_a_negative_duration(tmp_path: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    with pytest.raises(ConfigurationError, match="duration"):
        Worker(queue).run(duration=-1)
    queue.close()


#: Every numeric option, with what its error message says it must be.
NUMBERS = {
    "max_workers": "max_workers must be an int >= 1",
    "max_concurrency": "max_concurrency must be an int >= 1",
    "poll_interval": "poll_interval must be a number of seconds > 0 and finite",
    "max_tasks": "max_tasks must be an int >= 1",
    "timeout": "timeout must be a number of seconds > 0 and finite",
    "max_retries": "max_retries must be an int >= 0",
    "retry_delay": "retry_delay must be a number of seconds >= 0 and finite",
    "retry_backoff": "retry_backoff must be a finite number >= 1",
    "max_retry_delay": "max_retry_delay must be a number of seconds >= 0 and finite",
    "retry_jitter": "retry_jitter must be True (full jitter), False, or a fraction in [0, 1]",
    "max_memory_mb": "max_memory_mb must be a number of MiB > 0",
    "max_cpu_percent": "max_cpu_percent must be a share of the machine's CPU in (0, 100]",
    "graceful_shutdown": "graceful_shutdown must be a number of seconds >= 0 and finite",
    "lease_seconds": "lease_seconds must be a number of seconds > 0 and finite",
    "recovery_interval": "recovery_interval must be a number of seconds > 0 and finite",
    "max_attempts": "max_attempts must be an int >= 1",
    "result_ttl": "result_ttl must be a number of seconds > 0 and finite",
    "retention": "retention must be a number of seconds >= 0",
    "failed_retention": "failed_retention must be a number of seconds >= 0",
    "prune_interval": "prune_interval must be a number of seconds > 0 and finite",
    "log_level": "log_level must be an int >= 0",
    "performance_interval": "performance_interval must be a number of seconds > 0 and finite",
}

#: A value out of range for each numeric option.
OUT_OF_RANGE = {
    "max_workers": 0,
    "max_concurrency": 0,
    "poll_interval": 0,
    "max_tasks": 0,
    "timeout": 0,
    "max_retries": -1,
    "retry_delay": -0.5,
    "retry_backoff": 0.5,
    "max_retry_delay": -1,
    "retry_jitter": 1.5,
    "max_memory_mb": 0,
    "max_cpu_percent": 100.5,
    "graceful_shutdown": -1,
    "lease_seconds": -1,
    "recovery_interval": 0,
    "max_attempts": 0,
    "result_ttl": -3,
    "retention": -1,
    "failed_retention": -0.5,
    "prune_interval": 0,
    "log_level": -1,
    "performance_interval": 0,
}


@pytest.mark.parametrize("option", sorted(NUMBERS))
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "5", None, "range"])
def test_every_numeric_option_refuses_bad_values(option: str, bad: Any) -> None:
    """NaN, infinities, text and out-of-range values are refused, naming option and range."""
    if bad is None:
        if WorkerConfig.__dataclass_fields__[option].default is None:
            return  # None is the default of optional options
        if option in ("retention", "failed_retention"):
            return  # None turns retention off (tested in test_retention.py)
        value: Any = None
    elif bad == "range":
        value = OUT_OF_RANGE[option]
    else:
        value = bad
    with pytest.raises(ConfigurationError) as info:
        WorkerConfig(**{option: value})
    assert NUMBERS[option] in str(info.value)
    assert f"got {value!r}" in str(info.value)


def test_every_numeric_option_is_covered() -> None:
    numeric = {
        f.name
        for f in dataclasses.fields(WorkerConfig)
        if any(t in str(f.type) for t in ("int", "float")) and "Callable" not in str(f.type)
    }
    assert numeric == set(NUMBERS) == set(OUT_OF_RANGE)


@pytest.mark.parametrize(
    ("option", "value", "fragment"),
    [
        ("worker_id", "", "worker_id must be a non-empty string"),
        ("worker_id", 3, "worker_id must be a non-empty string"),
        ("worker_type", "", "worker_type must be a non-empty string"),
        ("queues", 5, "queues must be a list of queue names, got 5"),
        ("allowed_functions", [""], "allowed_functions must be a list of 'module:name'"),
        ("retry_failed", "yes", "retry_failed must be a bool"),
        ("continue_on_error", 1, "continue_on_error must be a bool"),
        ("log_tasks", None, "log_tasks must be a bool"),
        ("log_errors", "no", "log_errors must be a bool"),
        ("log_performance", 0, "log_performance must be a bool"),
        ("max_workers", True, "max_workers must be an int >= 1, got True"),
        ("max_workers", 2.0, "max_workers must be an int >= 1, got 2.0"),
        ("lease_seconds", True, "lease_seconds must be a number of seconds > 0"),
        ("on_error", "print", "on_error must be callable"),
    ],
)
def test_other_options_refuse_bad_types(option: str, value: Any, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        WorkerConfig(**{option: value})
    assert fragment in str(info.value)


def test_the_config_resolves_defaults_and_is_kept() -> None:
    config = WorkerConfig(worker_type="thread", lease_seconds=10, queues=("a",))
    assert config.max_workers == 8 and config.recovery_interval == 5.0
    assert WorkerConfig().max_workers == 100
    assert dataclasses.replace(config, poll_interval=2).poll_interval == 2.0
    with pytest.raises(ConfigurationError, match="poll_interval"):
        dataclasses.replace(config, poll_interval=math.nan)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.lease_seconds = 1  # type: ignore[misc]


def test_worker_keeps_its_config(store: SQLiteBackend) -> None:
    worker = Worker(store, lease_seconds=12, max_retries=2, retry_backoff=2, queues=["q"])
    assert isinstance(worker.config, WorkerConfig)
    assert worker.config.lease_seconds == worker.lease_seconds == 12.0
    assert worker.recovery_interval == 6.0 and worker.queues == ("q",)
    assert worker.retry_policy.max_retries == 2 and worker.retry_policy.retry_backoff == 2
    worker.poll_interval = 0.25  # replaces the config with a checked copy
    assert worker.config.poll_interval == 0.25
    with pytest.raises(ConfigurationError, match="poll_interval"):
        worker.poll_interval = -1


def test_worker_arguments_are_the_config_fields() -> None:
    """Worker's keyword arguments and their defaults are exactly WorkerConfig's fields."""
    parameters = inspect.signature(Worker).parameters
    options = {n: p.default for n, p in parameters.items() if n not in ("queue", "backend")}
    fields = {f.name: f.default for f in dataclasses.fields(WorkerConfig)}
    assert options == fields


def test_every_cli_option_has_a_flag_and_an_env_name() -> None:
    names = {o.name: o for o in cli_options()}
    for wanted in (
        "concurrency",
        "worker_type",
        "queues",
        "lease_seconds",
        "max_attempts",
        "retry_backoff",
        "max_memory_mb",
        "max_cpu_percent",
        "result_ttl",
        "graceful_shutdown",
        "log_tasks",
    ):
        assert wanted in names
    assert names["concurrency"].field == "max_workers"
    assert names["concurrency"].flags == ("-c", "--concurrency")
    assert names["lease_seconds"].env == "SITQ_LEASE_SECONDS"
    assert names["log_tasks"].flags == ("--log-tasks/--no-log-tasks",)
    assert not {"on_error", "on_success", "logger", "plugins", "secret_key"} & set(names)
