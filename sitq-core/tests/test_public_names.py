"""The public surface: what ``import sitq`` offers, where every name of sitq 0.1 lives now, and
the two test helpers (`sitq.testing` for users' tests, `sitq.conformance` for backends)."""

from __future__ import annotations

import importlib
import re

import pytest

import sitq
import sitq.conformance
import sitq.testing

#: What ``sitq.__all__`` held in sitq 0.1, written out here (not read from the code) so that
#: every one of those names is checked, whatever the code's own list says.
NAMES_OF_0_1 = [
    "Backend",
    "BackendNotFound",
    "BackendType",
    "ConfigurationError",
    "EventLoopMisuse",
    "MemoryBackend",
    "NoCurrentTask",
    "Outcome",
    "PayloadError",
    "PluginError",
    "PluginManager",
    "PostgresBackend",
    "QueueClosed",
    "Result",
    "ResultExpired",
    "ResultTimeout",
    "SQLiteBackend",
    "SerializationError",
    "Serializer",
    "SerializerNotFound",
    "SerializerType",
    "SignatureError",
    "SitqError",
    "SyncTaskQueue",
    "Task",
    "TaskContext",
    "TaskNotFound",
    "TaskQueue",
    "TaskRecord",
    "TaskStatus",
    "TaskTimeout",
    "Worker",
    "WorkerMetrics",
    "WorkerStateError",
    "WorkerStatus",
    "current_task",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
]

#: What a task-queue user writes.
USER_NAMES = {
    "Blueprint",
    "MemoryBackend",
    "PostgresBackend",
    "Result",
    "SQLiteBackend",
    "SitqError",
    "SyncBlueprint",
    "SyncTaskQueue",
    "Task",
    "TaskContext",
    "TaskQueue",
    "TaskStatus",
    "Worker",
    "WorkerConfig",
    "WorkerMetrics",
    "WorkerStatus",
    "current_task",
    "hookimpl",
    # workflows: what a canvas is written with
    "ParentFailed",
    "chain",
    "chord",
    "group",
}

MOVED = [name for name in NAMES_OF_0_1 if name not in USER_NAMES]
WHERE = re.compile(r"^sitq\.(\w+) moved: from (sitq\.\w+) import (\w+)$")


def test_sitq_exports_what_a_task_queue_user_writes() -> None:
    assert set(sitq.__all__) == USER_NAMES
    for name in sitq.__all__:
        assert getattr(sitq, name) is not None


def test_star_import_gives_the_user_names_only() -> None:
    namespace: dict[str, object] = {}
    exec("from sitq import *", namespace)
    assert {n for n in namespace if not n.startswith("__")} == USER_NAMES


@pytest.mark.parametrize("name", MOVED)
def test_a_moved_name_says_where_it_lives_now(name: str) -> None:
    home = importlib.import_module(_home(name))
    assert getattr(home, name) is not None
    assert not hasattr(sitq, name)


@pytest.mark.parametrize("name", MOVED)
def test_importing_a_moved_name_from_sitq_says_where_it_lives_now(name: str) -> None:
    with pytest.raises(ImportError) as caught:
        exec(f"from sitq import {name}", {})
    assert str(caught.value) == f"sitq.{name} moved: from {_home(name)} import {name}"


def test_moved_names_live_in_the_modules_of_their_kind() -> None:
    homes = {name: _home(name) for name in MOVED}
    assert {homes[n] for n in ("Backend", "Outcome", "TaskRecord")} == {"sitq.backend"}
    assert {homes[n] for n in ("PluginManager", "get_plugin_manager")} == {"sitq.plugins"}
    assert {homes[n] for n in ("BackendType", "Serializer", "SerializerType")} == {"sitq.registry"}
    assert homes["hookspec"] == "sitq.hookspecs"
    errors = {n for n in MOVED if n.endswith(("Error", "NotFound", "Closed", "Misuse"))}
    errors |= {"NoCurrentTask", "ResultExpired", "ResultTimeout", "TaskTimeout"}
    assert {homes[n] for n in errors} == {"sitq.errors"}
    assert len(errors) + 9 == len(MOVED)


def test_the_user_test_helpers_are_sitq_testing() -> None:
    from sitq.testing import SitqTestQueue, SitqTestWorker

    assert sitq.testing.__all__ == ["SitqTestQueue", "SitqTestWorker"]
    assert issubclass(SitqTestQueue, sitq.SyncTaskQueue)
    assert issubclass(SitqTestWorker, sitq.Worker)


def test_the_conformance_kit_is_sitq_conformance() -> None:
    from sitq.conformance import BackendConformance, FakeClock, make_record

    assert BackendConformance.__module__ == "sitq.conformance.suite"
    assert callable(FakeClock) and callable(make_record)


def test_backends_written_against_0_1_still_import_the_kit_from_sitq_testing() -> None:
    from sitq.testing import BackendConformance

    assert BackendConformance is sitq.conformance.BackendConformance
    for name in sitq.conformance.__all__:
        assert getattr(sitq.testing, name) is getattr(sitq.conformance, name)
        assert name not in sitq.testing.__all__


def test_an_unknown_name_of_sitq_testing_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match=r"'sitq\.testing' has no attribute 'Nothing'"):
        sitq.testing.Nothing  # noqa: B018
    assert not hasattr(sitq.testing, "__wrapped__")


def _home(name: str) -> str:
    """The module that the AttributeError for ``sitq.<name>`` names (checking its wording)."""
    with pytest.raises(AttributeError) as caught:
        getattr(sitq, name)
    found = WHERE.match(str(caught.value))
    assert found is not None, str(caught.value)
    assert found.group(1) == found.group(3) == name
    return found.group(2)
