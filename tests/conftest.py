"""Fixtures shared by the cross-package tests.

* Every test runs without the ``SITQ_*`` settings of the shell that started pytest, so a
  developer's ``SITQ_BACKEND_URL`` never changes what a test means (switches of the test
  suite itself, ``SITQ_TEST_*``, ``SITQ_SOAK*`` and ``SITQ_PG_SLOW``, are kept).
* `python_run` runs a Python snippet in a fresh interpreter (real processes, real imports, a
  fresh plugin manager), with chosen folders on ``PYTHONPATH``.
* `install_dist` builds a sitq plugin distribution from source and installs it with pip into a
  folder of its own (``pip install --target``), never into the environment running the tests:
  a subprocess sees it only when that folder is put on its ``PYTHONPATH``.
* Plugin markers: a module that uses a plugin distribution says so with
  ``pytestmark = [pytest.mark.needs_sqlite, ...]`` (the nox sessions select with ``-m``). A
  module whose plugin is not installed is not collected (it could not even be imported), and
  one that imports a plugin it does not mark fails the run with the line to add.
* Hypothesis profiles: ``default``, quick enough for every run, and ``soak``, the full-size
  fuzzing that ``pytest -m slow`` (or ``SITQ_SOAK=1``) loads; ``--hypothesis-profile`` wins.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, settings
from run_options import slow_requested
from subprocess_env import clean_environment

#: Bound on any one subprocess a test starts (a hang fails the test, never the run).
SUBPROCESS_TIMEOUT = 120

#: The marker a test module puts on itself for each plugin distribution it uses → the package.
PLUGIN_MARKERS = {
    "needs_sqlite": "sitq_sqlite",
    "needs_memory": "sitq_memory",
    "needs_postgres": "sitq_postgres",
    "needs_prometheus": "sitq_prometheus",
    "needs_otel": "sitq_otel",
    "needs_web": "sitq_web",
}
TESTS = Path(__file__).resolve().parent

settings.register_profile(
    "default", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "soak", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def pytest_configure(config: pytest.Config) -> None:
    """Load the hypothesis profile before any test module builds its settings."""
    if not config.getoption("hypothesis_profile", None):
        settings.load_profile("soak" if slow_requested(config) else "default")


def declared_needs(path: Path) -> set[str]:
    """The plugin markers in a module's ``pytestmark``, read from its source without importing
    it (a module cannot be imported when its plugin is missing)."""
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "pytestmark" for target in node.targets
        ):
            return {
                sub.attr
                for sub in ast.walk(node.value)
                if isinstance(sub, ast.Attribute) and sub.attr in PLUGIN_MARKERS
            }
    return set()


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave out the modules marked for a plugin that is not installed here."""
    if collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    missing = [
        marker
        for marker in declared_needs(collection_path)
        if importlib.util.find_spec(PLUGIN_MARKERS[marker]) is None
    ]
    return True if missing else None


def plugins_used(module: ModuleType, seen: set[str] | None = None) -> set[str]:
    """The plugin packages whose objects ``module`` imported, directly or through the helper
    modules of ``tests/`` it imported them from."""
    seen = set() if seen is None else seen
    seen.add(module.__name__)
    used: set[str] = set()
    for value in vars(module).values():
        origin = (
            value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", None)
        )
        if not isinstance(origin, str):
            continue
        package = origin.partition(".")[0]
        if package in PLUGIN_MARKERS.values():
            used.add(package)
        helper = sys.modules.get(origin)
        if origin not in seen and helper is not None and is_test_helper(helper):
            used |= plugins_used(helper, seen)
    return used


def is_test_helper(module: ModuleType) -> bool:
    """True for a module of this folder (a test module or a helper one)."""
    file = getattr(module, "__file__", None)
    return file is not None and Path(file).resolve().parent == TESTS


def unmarked_line(module_name: str, missing: list[str]) -> str:
    """One line of the error: the module, the plugins it uses unmarked, the line to add."""
    distributions = ", ".join("sitq-" + marker.removeprefix("needs_") for marker in missing)
    marks = ", ".join(f"pytest.mark.{marker}" for marker in missing)
    return f"  tests/{module_name}.py uses {distributions}: add pytestmark = [{marks}]"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Fail the run when a module uses a plugin it does not mark (the nox session of the core
    alone, or of another plugin, would then run it without that plugin)."""
    problems: dict[str, list[str]] = {}
    for item in items:
        module = getattr(item, "module", None)
        if module is None or not is_test_helper(module) or module.__name__ in problems:
            continue
        marked = {mark.name for mark in item.iter_markers() if mark.name in PLUGIN_MARKERS}
        packages = {package: marker for marker, package in PLUGIN_MARKERS.items()}
        missing = sorted(packages[p] for p in plugins_used(module) if packages[p] not in marked)
        problems[module.__name__] = missing
    unmarked = {name: missing for name, missing in problems.items() if missing}
    if unmarked:
        lines = [unmarked_line(name, missing) for name, missing in sorted(unmarked.items())]
        raise pytest.UsageError("test modules use plugins they do not mark:\n" + "\n".join(lines))


#: ``SITQ_*`` variables that steer the test suite rather than sitq.
TEST_SWITCHES = ("SITQ_TEST_", "SITQ_SOAK", "SITQ_PG_SLOW")


@pytest.fixture(autouse=True)
def _no_sitq_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Hide the ``SITQ_*`` settings of the calling shell from each test."""
    for name in list(os.environ):
        if name.startswith("SITQ_") and not name.startswith(TEST_SWITCHES):
            monkeypatch.delenv(name)
    yield


PythonRun = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def python_run(tmp_path: Path) -> PythonRun:
    """``python_run(code, path=[...], cwd=..., **env)``: run ``code`` (dedented) in a new
    interpreter and return the completed process (stdout and stderr as text)."""

    def run(
        code: str,
        *,
        path: Iterable[Path | str] = (),
        cwd: Path | None = None,
        timeout: float = SUBPROCESS_TIMEOUT,
        **env: str,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            cwd=cwd or tmp_path,
            env=clean_environment(path, **env),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    return run


def build_and_install(
    root: Path, name: str, modules: dict[str, str], entry_points: dict[str, str]
) -> Path:
    """Write a distribution ``name`` holding ``modules`` (file name → source) with
    ``entry_points`` in the ``sitq`` group, install it with pip into a folder of its own and
    return that folder."""
    project = root / f"{name}-src"
    project.mkdir(parents=True)
    for filename, source in modules.items():
        (project / filename).write_text(textwrap.dedent(source))
    eps = "\n".join(f'{key} = "{value}"' for key, value in entry_points.items())
    include = ", ".join(f'"{filename}"' for filename in modules)
    (project / "pyproject.toml").write_text(
        f'[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
        f'[project]\nname = "{name}"\nversion = "0.0.1"\ndependencies = ["sitq-core"]\n\n'
        f"[project.entry-points.sitq]\n{eps}\n\n"
        f"[tool.hatch.build.targets.wheel]\ninclude = [{include}]\n"
    )
    target = root / f"{name}-installed"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--target", str(target), str(project)],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, f"pip could not install {name}:\n{done.stdout}\n{done.stderr}"
    return target


@pytest.fixture(scope="session")
def install_dist(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``install_dist(name, modules, entry_points)`` → the folder it was installed into
    (see `build_and_install`)."""

    def install(name: str, modules: dict[str, str], entry_points: dict[str, str]) -> Path:
        return build_and_install(tmp_path_factory.mktemp("dists"), name, modules, entry_points)

    return install
