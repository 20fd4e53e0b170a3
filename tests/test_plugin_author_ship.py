"""The "Ship it" files of the plugin guides, copied verbatim, build, install and pass their
tests.

Each file a guide ships is a fenced block marked ``<!-- docs-test: ship=PATH -->`` (beside
``file=NAME`` for a block the page's own examples also use). The test writes them into an
empty folder, pip-installs that project into a fresh virtual environment (``pip install
".[test]"``, as the guide says) and runs the project's tests there with pytest: the backend
guide's conformance kit against the installed ``scratch://`` plugin, the hook guide's test of
the installed ``audit`` plugin. Offline and quick: the environment sees this one's packages
(sitq from this checkout, pytest, hypothesis, hatchling) through a ``.pth`` file, so pip
builds and installs only the guide's project (``--no-index --no-build-isolation``).
"""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from subprocess_env import clean_environment

pytestmark = [pytest.mark.needs_memory]

ROOT = Path(__file__).resolve().parents[1]
GUIDES = ROOT / "docs" / "guides"
#: The guides with a "Ship it" section → the import package each ships.
SHIPPING = {"backend-plugin.md": "sitq_scratch", "hook-plugin.md": "sitq_audit"}
#: The guides → the distribution each ships.
DISTRIBUTIONS = {"backend-plugin.md": "sitq-scratch", "hook-plugin.md": "sitq-audit"}
SHIPPED = re.compile(
    r"^<!-- docs-test: [^\n]*?\bship=(\S+)[^\n]*-->\n```[^\n]*\n(.*?)^```\s*$",
    re.DOTALL | re.MULTILINE,
)
#: Bound on one pip install or one run of a guide's tests.
STEP_TIMEOUT = 240


def shipped_files(guide: str) -> dict[str, str]:
    """The files ``guide`` ships: path in the project → the block's text, verbatim."""
    return dict(SHIPPED.findall((GUIDES / guide).read_text()))


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``command`` with no ``SITQ_*`` settings nor ``PYTHONPATH``; fail with its output."""
    env = clean_environment(COLUMNS="200")  # `sitq plugins` prints a table: no wrapped names
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=STEP_TIMEOUT, stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a new virtual environment that sees this environment's packages
    (after its own, through a ``.pth`` file) and installs into its own site-packages."""
    venv = tmp_path_factory.mktemp("ship") / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=venv.parent)
    python = venv / "bin" / "python"
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                  cwd=venv.parent).stdout.strip()  # fmt: skip
    ours = sysconfig.get_paths()["purelib"]
    (Path(purelib) / "outer-env.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    return python


def test_each_guide_ships_a_build_system_a_src_layout_and_tests() -> None:
    for guide, package in SHIPPING.items():
        files = shipped_files(guide)
        assert "[build-system]" in files.get("pyproject.toml", ""), f"{guide}: no [build-system]"
        assert f"src/{package}/__init__.py" in files, f"{guide} ships no src/{package}"
        assert any(name.startswith("tests/test_") for name in files), f"{guide} ships no test"


@pytest.mark.parametrize("guide", sorted(SHIPPING))
def test_shipped_files_install_and_pass_their_tests(
    guide: str, venv_python: Path, tmp_path: Path
) -> None:
    project = tmp_path / Path(guide).stem
    for name, text in shipped_files(guide).items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    pip = [str(venv_python), "-m", "pip", "install", "--no-index", "--no-build-isolation",
           "--disable-pip-version-check", "--quiet", ".[test]"]  # fmt: skip
    run(pip, cwd=project)
    package = SHIPPING[guide]
    where = run([str(venv_python), "-c", f"import {package}; print({package}.__file__)"],
                cwd=tmp_path).stdout.strip()  # fmt: skip
    assert Path(where).is_relative_to(venv_python.parents[1]), f"{package} is not installed"
    listed = run([str(venv_python), "-m", "sitq", "plugins"], cwd=tmp_path).stdout
    assert DISTRIBUTIONS[guide] in listed, f"`sitq plugins` does not list it:\n{listed}"
    tests = run([str(venv_python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                cwd=project)  # fmt: skip
    assert " passed" in tests.stdout and "failed" not in tests.stdout, tests.stdout
