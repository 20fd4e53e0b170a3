"""Plugins found through the ``sitq`` entry-point group, with real distributions installed by pip.

Each distribution below is built from source and installed with ``pip install --target`` into a
folder of its own (see ``conftest.install_dist``); a worker in a subprocess sees it only when
that folder is on its ``PYTHONPATH``. Running without the folder is running with the
distribution uninstalled.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sitq import hookimpl
from sitq.errors import PluginError
from sitq.plugins import ENV_ALLOWED_PLUGINS, ENV_DISABLE_AUTOLOAD, PluginManager
from sitq.registry import BackendType, SerializerType

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_memory]

PythonRun = Callable[..., subprocess.CompletedProcess[str]]

RECORDER = '''
"""Appends one line per lifecycle event to the file named by $RECORDER_LOG."""
import os

import sitq


def _log(*words):
    with open(os.environ["RECORDER_LOG"], "a") as f:
        f.write(" ".join(str(w) for w in words) + "\\n")


@sitq.hookimpl
def sitq_worker_started(worker):
    _log("worker_started", worker.worker_id)


@sitq.hookimpl
def sitq_task_succeeded(task, result, worker):
    _log("succeeded", task.id, result.value)


@sitq.hookimpl
def sitq_task_failed(task, error, retry_count, will_retry):
    _log("failed", task.id, type(error).__name__, retry_count, will_retry)


@sitq.hookimpl
def sitq_worker_stopped(worker):
    _log("worker_stopped", worker.worker_id)
'''

EXTRAS = '''
"""A third-party backend (scheme ``shelf://``) and serializer (``revjson``)."""
import json

import sitq
from sitq.registry import BackendType, SerializerType
from sitq_memory import MemoryBackend


class ShelfBackend(MemoryBackend):
    """The memory backend under another scheme, as a third-party backend would be."""

    url_schemes = ("shelf",)

    @classmethod
    def from_url(cls, url):
        return cls()


class ReversedJson:
    """JSON with its bytes reversed: data only, and recognisable in the store."""

    def dumps(self, obj):
        return json.dumps(obj).encode()[::-1]

    def loads(self, data):
        return json.loads(bytes(data)[::-1])


def triple(x):
    return 3 * x


@sitq.hookimpl
def sitq_backends():
    return [BackendType("shelf", load=ShelfBackend, distribution="sitq-extras")]


@sitq.hookimpl
def sitq_serializers():
    return [SerializerType("revjson", ReversedJson(), distribution="sitq-extras")]
'''

DUPLICATE = '''
"""Registers a second ``sqlite`` backend and a second ``json`` serializer."""
import sitq
from sitq.registry import BackendType
from sitq_memory import MemoryBackend


@sitq.hookimpl
def sitq_backends():
    return [BackendType("sqlite", load=MemoryBackend)]


@sitq.hookimpl
def sitq_serializers():
    return []
'''

FAULTY = '''
"""Every hook raises: a worker must log it and carry on."""
import sitq


@sitq.hookimpl
def sitq_worker_started(worker):
    raise RuntimeError("faulty plugin: worker_started")


@sitq.hookimpl
def sitq_task_started(task, worker):
    raise RuntimeError("faulty plugin: task_started")


@sitq.hookimpl
async def sitq_task_succeeded(task, result):
    raise RuntimeError("faulty plugin: task_succeeded")
'''

#: A worker in a fresh interpreter: enqueue ``add(i, i)`` for i in 0..4 (and one failing task),
#: run a worker until all finish, print the statuses and the loaded plugins as JSON.
WORKER_SCRIPT = """
import json, sys
from sitq import SyncTaskQueue, Worker
from sitq.plugins import get_plugin_manager

def add(a, b):
    return a + b

def fail():
    raise ValueError("no")

backend = sys.argv[1] if len(sys.argv) > 1 else "sqlite:///tasks.db"
if backend == "instance":
    from sitq_sqlite import SQLiteBackend
    backend = SQLiteBackend("tasks.db")
with SyncTaskQueue(backend) as queue:
    ids = [queue.enqueue(add, i, i) for i in range(5)] + [queue.enqueue(fail)]
    worker = Worker(queue, poll_interval=0.05)
    worker.start()
    results = [queue.get_result(i, timeout=60) for i in ids]
    worker.stop()
print(json.dumps({
    "ids": ids,
    "statuses": [r.status.value for r in results],
    "values": [r.value for r in results],
    "plugins": sorted(p.name for p in get_plugin_manager().list_plugins()),
}))
"""


@pytest.fixture(scope="module")
def recorder(install_dist: Callable[..., Path]) -> Path:
    """Where ``sitq-recorder`` is installed."""
    return install_dist(
        "sitq-recorder", {"sitq_recorder.py": RECORDER}, {"recorder": "sitq_recorder"}
    )


@pytest.fixture(scope="module")
def extras(install_dist: Callable[..., Path]) -> Path:
    """Where ``sitq-extras`` is installed."""
    return install_dist("sitq-extras", {"sitq_extras.py": EXTRAS}, {"extras": "sitq_extras"})


def run_worker(python_run: PythonRun, tmp_path: Path, *, path: list[Path], backend: str = "",
               **env: str) -> dict[str, Any]:  # fmt: skip
    """Run `WORKER_SCRIPT` in ``tmp_path``; return what it printed, checking every task ended."""
    script = tmp_path / "worker_script.py"
    script.write_text(WORKER_SCRIPT)
    argv = f"import sys; sys.argv = ['worker_script', {backend!r}]; " if backend else ""
    done = python_run(
        f"{argv}exec(open({str(script)!r}).read())",
        path=path,
        cwd=tmp_path,
        RECORDER_LOG=str(tmp_path / "recorder.log"),
        **env,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    assert report["statuses"] == ["succeeded"] * 5 + ["failed"]
    assert report["values"][:5] == [0, 2, 4, 6, 8]
    return report


def test_an_installed_plugin_is_loaded_at_worker_start_and_its_hooks_fire(
    recorder: Path, python_run: PythonRun, tmp_path: Path
) -> None:
    report = run_worker(python_run, tmp_path, path=[recorder])
    assert "recorder" in report["plugins"]
    lines = (tmp_path / "recorder.log").read_text().splitlines()
    assert lines[0].startswith("worker_started ")
    assert lines[-1].startswith("worker_stopped ")
    succeeded = sorted(line.split()[1:] for line in lines if line.startswith("succeeded"))
    assert succeeded == sorted([task_id, str(2 * i)] for i, task_id in enumerate(report["ids"][:5]))
    failed = [line.split() for line in lines if line.startswith("failed")]
    assert failed == [["failed", report["ids"][5], "ValueError", "1", "False"]]


def test_an_uninstalled_plugin_does_nothing(
    recorder: Path, python_run: PythonRun, tmp_path: Path
) -> None:
    report = run_worker(python_run, tmp_path, path=[])
    assert "recorder" not in report["plugins"]
    assert not (tmp_path / "recorder.log").exists()


def test_autoload_disabled_loads_no_plugin(
    recorder: Path, python_run: PythonRun, tmp_path: Path
) -> None:
    # with autoloading off, sitq-sqlite is not loaded either: the backend is passed as an object
    report = run_worker(
        python_run, tmp_path, path=[recorder], backend="instance", **{ENV_DISABLE_AUTOLOAD: "1"}
    )
    assert report["plugins"] == ["sitq.executors", "sitq.serializers"]
    assert not (tmp_path / "recorder.log").exists()


def test_allow_list_excluding_the_plugin(
    recorder: Path, python_run: PythonRun, tmp_path: Path
) -> None:
    report = run_worker(python_run, tmp_path, path=[recorder], **{ENV_ALLOWED_PLUGINS: "sqlite"})
    assert "recorder" not in report["plugins"] and "sqlite" in report["plugins"]
    assert not (tmp_path / "recorder.log").exists()


def test_allow_list_including_the_plugin(
    recorder: Path, python_run: PythonRun, tmp_path: Path
) -> None:
    report = run_worker(
        python_run, tmp_path, path=[recorder], **{ENV_ALLOWED_PLUGINS: "sqlite, recorder"}
    )
    assert {"recorder", "sqlite"} <= set(report["plugins"])
    assert (tmp_path / "recorder.log").read_text().count("succeeded") == 5


def test_a_failing_hook_never_breaks_the_worker(
    install_dist: Callable[..., Path], python_run: PythonRun, tmp_path: Path
) -> None:
    faulty = install_dist("sitq-faulty", {"sitq_faulty.py": FAULTY}, {"faulty": "sitq_faulty"})
    script = tmp_path / "worker_script.py"
    script.write_text(WORKER_SCRIPT)
    done = python_run(f"exec(open({str(script)!r}).read())", path=[faulty], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["statuses"] == ["succeeded"] * 5 + ["failed"]
    # each failure is logged, naming the hook and the plugin
    assert "sitq_task_succeeded of plugin 'faulty' raised; ignored" in done.stderr
    assert "faulty plugin: worker_started" in done.stderr


def test_a_plugin_registers_a_backend_scheme_and_a_serializer(
    extras: Path, python_run: PythonRun
) -> None:
    done = python_run(
        """
        import asyncio, json
        from sitq import TaskQueue, Worker
        from sitq.plugins import get_plugin_manager
        import sitq_extras

        async def main():
            async with TaskQueue("shelf://", serializer="revjson") as queue:
                task_id = await queue.enqueue(sitq_extras.triple, 14)
                record = await queue.backend.get_task(task_id)
                # a worker whose queue defaults to cloudpickle decodes what the record names
                worker = Worker(TaskQueue(queue.backend), poll_interval=0.05)
                serving = asyncio.create_task(worker.start())
                result = await queue.get_result(task_id, timeout=30)
                await worker.stop()
                await serving
            manager = get_plugin_manager()
            print(json.dumps({
                "backend": type(queue.backend).__name__,
                "serializer": record.serializer,
                "payload": json.loads(record.payload[::-1]),
                "value": result.value,
                "schemes": sorted(manager.backends),
                "serializers": sorted(manager.serializers),
            }))

        asyncio.run(main())
        """,
        path=[extras],
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["backend"] == "ShelfBackend"
    assert report["serializer"] == "revjson"
    assert report["payload"] == ["sitq_extras:triple", [14], {}]
    assert report["value"] == 42
    assert {"shelf", "sqlite", "memory"} <= set(report["schemes"])
    assert {"revjson", "cloudpickle", "pickle", "msgpack", "json"} <= set(report["serializers"])


def test_without_the_plugin_its_scheme_and_serializer_are_unknown(python_run: PythonRun) -> None:
    done = python_run(
        """
        from sitq import TaskQueue
        from sitq.errors import BackendNotFound, SerializerNotFound
        try:
            TaskQueue("shelf://")
        except BackendNotFound as exc:
            print(exc)
        try:
            TaskQueue("memory://", serializer="revjson")
        except SerializerNotFound as exc:
            print(exc)
        """
    )
    assert done.returncode == 0, done.stderr
    backend_error, serializer_error = done.stdout.splitlines()
    assert "'shelf://'" in backend_error and "Choose one of: " in backend_error
    assert "sqlite://" in backend_error
    assert "'revjson'" in serializer_error and "choose one of: " in serializer_error
    assert "cloudpickle" in serializer_error


def test_two_installed_plugins_registering_one_scheme_is_a_plugin_error(
    install_dist: Callable[..., Path], python_run: PythonRun
) -> None:
    dupe = install_dist("sitq-dupe", {"sitq_dupe.py": DUPLICATE}, {"dupe": "sitq_dupe"})
    done = python_run(
        """
        from sitq import TaskQueue
        from sitq.errors import PluginError
        try:
            TaskQueue("sqlite:///tasks.db")
        except PluginError as exc:
            print(type(exc).__name__, exc)
        """,
        path=[dupe],
    )
    assert done.returncode == 0, done.stderr
    message = done.stdout
    assert message.startswith("PluginError two plugins register the backend 'sqlite'")
    assert "'sqlite' (sitq-sqlite)" in message and "'dupe' (sitq-dupe)" in message
    assert "Uninstall one of them" in message and ENV_ALLOWED_PLUGINS in message


def test_two_distributions_with_one_plugin_name_is_a_plugin_error(
    install_dist: Callable[..., Path], python_run: PythonRun
) -> None:
    # a third-party distribution that calls its entry point "sqlite", like sitq-sqlite does
    clash = install_dist("sitq-clash", {"sitq_clash.py": RECORDER}, {"sqlite": "sitq_clash"})
    done = python_run("from sitq import TaskQueue\nTaskQueue('sqlite:///tasks.db')", path=[clash])
    assert done.returncode == 1
    assert "PluginError" in done.stderr
    assert "sitq-clash" in done.stderr and "sitq-sqlite" in done.stderr
    assert "'sqlite'" in done.stderr


class _Scheme:
    """An in-process plugin registering the ``x`` scheme and the ``x`` serializer."""

    def __init__(self, label: str) -> None:
        self.label = label

    @hookimpl
    def sitq_backends(self) -> list[BackendType]:
        from sitq_memory import MemoryBackend

        return [BackendType("x", load=MemoryBackend)]

    @hookimpl
    def sitq_serializers(self) -> list[SerializerType]:
        return [SerializerType("x", serializer=json)]  # type: ignore[arg-type]


def test_duplicate_registration_in_process_names_both_plugins() -> None:
    manager = PluginManager(autoload=False)
    manager.register(_Scheme("a"), name="first")
    manager.register(_Scheme("b"), name="second")
    with pytest.raises(PluginError, match=r"backend 'x': 'first' and 'second'"):
        manager.backends  # noqa: B018
    with pytest.raises(PluginError, match=r"serializer 'x': 'first' and 'second'"):
        manager.serializers  # noqa: B018
    with pytest.raises(PluginError):
        manager.backend_from_url("x://")


def test_a_registration_hook_returning_nonsense_is_a_plugin_error() -> None:
    class Wrong:
        @hookimpl
        def sitq_backends(self) -> list[object]:
            return ["sqlite"]

    class Raises:
        @hookimpl
        def sitq_serializers(self) -> list[object]:
            raise ImportError("no module named fancy_codec")

    manager = PluginManager(autoload=False, plugins=[])
    manager.register(Wrong(), name="wrong")
    manager.register(Raises(), name="raises")
    with pytest.raises(PluginError, match=r"sitq_backends hook of 'wrong' returned 'sqlite'"):
        manager.backends  # noqa: B018
    with pytest.raises(PluginError, match=r"sitq_serializers hook of 'raises' raised ImportError"):
        manager.serializers  # noqa: B018
