"""Fixtures shared by the cross-package tests.

* Every test runs without the ``SITQ_*`` settings of the shell that started pytest, so a
  developer's ``SITQ_BACKEND_URL`` never changes what a test means (switches of the test
  suite itself, ``SITQ_TEST_*``, ``SITQ_SOAK*`` and ``SITQ_PG_SLOW``, are kept).
* `python_run` runs a Python snippet in a fresh interpreter (real processes, real imports, a
  fresh plugin manager), with chosen folders on ``PYTHONPATH``.
* `install_dist` builds a sitq plugin distribution from source and installs it with pip into a
  folder of its own (``pip install --target``), never into the environment running the tests:
  a subprocess sees it only when that folder is put on its ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

#: Bound on any one subprocess a test starts (a hang fails the test, never the run).
SUBPROCESS_TIMEOUT = 120


#: ``SITQ_*`` variables that steer the test suite rather than sitq.
TEST_SWITCHES = ("SITQ_TEST_", "SITQ_SOAK", "SITQ_PG_SLOW")


@pytest.fixture(autouse=True)
def _no_sitq_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Hide the ``SITQ_*`` settings of the calling shell from each test."""
    for name in list(os.environ):
        if name.startswith("SITQ_") and not name.startswith(TEST_SWITCHES):
            monkeypatch.delenv(name)
    yield


def clean_environment(path: Iterable[Path | str] = (), **extra: str) -> dict[str, str]:
    """The environment for a subprocess: no ``SITQ_*`` variables, ``path`` as its
    ``PYTHONPATH``, and ``extra`` set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITQ_")}
    env.pop("PYTHONPATH", None)
    folders = [str(p) for p in path]
    if folders:
        env["PYTHONPATH"] = os.pathsep.join(folders)
    env.update(extra)
    return env


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
