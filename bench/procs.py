"""Running the workers that live in their own process (`child.py`), and their CPU time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
CHILD = os.path.join(HERE, "child.py")


def child_env() -> dict[str, str]:
    """The environment of worker processes: the bench folder importable (``workloads`` is
    found by the worker's own pool processes too)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (HERE, env.get("PYTHONPATH", "")) if p)
    return env


def _command(args: list[str]) -> list[str]:
    return [sys.executable, CHILD, *args]


def run_child(args: list[str], *, timeout: float) -> dict[str, Any]:
    """Run ``child.py args`` to the end; return the JSON report it prints last."""
    done = subprocess.run(
        _command(args),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=child_env(),
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
        env=child_env(),
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


@contextmanager
def start_process(command: Sequence[str]) -> Iterator[subprocess.Popen[bytes]]:
    """Start a peer's worker command (output discarded); SIGTERM, then SIGKILL, on exit."""
    proc = subprocess.Popen(
        list(command),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=child_env(),
        cwd=HERE,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def tree_cpu_seconds(pid: int | None = None) -> float:
    """CPU seconds used so far by a process and every descendant: those alive, and those
    already ended and waited for (their time is in their parent's ``children_*``)."""
    total = 0.0
    root = psutil.Process(pid)
    for proc in [root, *root.children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def idle_cpu_percent(pid: int, seconds: float) -> float:
    """CPU % of one core that process ``pid`` and its descendants use over ``seconds``."""
    before = tree_cpu_seconds(pid)
    time.sleep(seconds)
    return (tree_cpu_seconds(pid) - before) / seconds * 100
