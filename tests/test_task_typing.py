"""Declared tasks are typed: ``mypy --strict`` accepts `typing/pass_tasks.py` and rejects each
marked line of `typing/fail_tasks.py` (``# E: code``) with that error code, and no other line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MARKER = re.compile(r"#\s*E:\s*([\w-]+)")
ERROR = re.compile(r"^[^:]+:(\d+): error: .*\[([\w-]+)\]$")


def run_mypy(path: Path, cache_dir: Path) -> tuple[str, int]:
    stdout, stderr, status = mypy_api.run(
        [
            "--strict",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(cache_dir),
            "--no-error-summary",
            "--show-error-codes",
            str(path),
        ]
    )
    return stdout + stderr, status


def test_declared_tasks_type_check(tmp_path_factory: pytest.TempPathFactory) -> None:
    output, status = run_mypy(HERE / "typing" / "pass_tasks.py", tmp_path_factory.mktemp("mypy"))
    assert status == 0, output


def test_misused_declared_tasks_are_rejected(tmp_path_factory: pytest.TempPathFactory) -> None:
    path = HERE / "typing" / "fail_tasks.py"
    expected: dict[int, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        marker = MARKER.search(line)
        if marker:
            expected[number] = marker.group(1)
    assert len(expected) >= 10
    output, status = run_mypy(path, tmp_path_factory.mktemp("mypy"))
    assert status == 1, output
    found: dict[int, set[str]] = {}
    for line in output.splitlines():
        error = ERROR.match(line)
        if error:
            found.setdefault(int(error.group(1)), set()).add(error.group(2))
    missing = {n: code for n, code in expected.items() if code not in found.get(n, set())}
    unexpected = {n: codes for n, codes in found.items() if n not in expected}
    assert not missing, f"no error with the marked code on lines {missing}:\n{output}"
    assert not unexpected, f"errors on unmarked lines {unexpected}:\n{output}"
