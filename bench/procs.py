"""Running the workers that live in their own process (`child.py`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "child.py")


def _command(args: list[str]) -> list[str]:
    return [sys.executable, CHILD, *args]


def run_child(args: list[str], *, timeout: float) -> dict[str, Any]:
    """Run ``child.py args`` to the end; return the JSON report it prints last."""
    done = subprocess.run(
        _command(args), capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"child {args[0]} exited {done.returncode}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@contextmanager
def start_child(args: list[str], *, ready_timeout: float = 60.0) -> Iterator[subprocess.Popen[str]]:
    """Start ``child.py args``, wait for its ``ready`` line, stop it (stdin closed) on exit."""
    proc = subprocess.Popen(
        _command(args),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(ready_timeout)
        if not line or line[0].strip() != "ready":
            proc.kill()
            _, err = proc.communicate(timeout=10)
            raise RuntimeError(f"child {args[0]} did not start: {err[-2000:]}")
        yield proc
        proc.stdin.close()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
