"""The ``sitq`` meta-distribution: ``pip install ./sitq`` into a fresh venv brings sitq-core and
sitq-sqlite from their sibling folders, and the default imports work (about 15 s: a venv, and
pip builds the two distributions)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Bound on each step: creating the venv, installing, importing.
STEP_TIMEOUT = 180


def run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done


def test_pip_install_sitq_brings_the_core_and_the_sqlite_default(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    python = venv / ("Scripts" if sys.platform == "win32" else "bin") / "python"
    run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", ROOT / "sitq")
    done = run(
        python,
        "-c",
        "from importlib.metadata import version\n"
        "from sitq import SQLiteBackend, TaskQueue\n"
        "print(version('sitq'), version('sitq-core'), version('sitq-sqlite'))",
    )
    from sitq import __version__

    assert done.stdout.split() == [__version__] * 3
