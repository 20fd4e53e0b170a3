"""The environment the tests give the subprocesses they start (Python scripts, workers,
pip): imported by conftest.py and by test modules alike."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


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
