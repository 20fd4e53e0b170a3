"""Conformance tests across processes: claims are atomic when several processes share a store.

The kit opens the store again in other processes with ``from_url(backend.url)``, so the test
runs for a backend that ``make_backend`` built with ``from_url`` (its class importable by
module and name) on a store other processes can reach; it is skipped, saying why, for one
built without a URL or on a store private to this process (``memory://``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from ...backend import Backend, Capability
from ...task import TaskStatus
from ..clock import FakeClock
from .support import KitBase, backend_test, enqueue

#: Claiming processes started, and tasks they share out.
PROCESSES = 3
TASKS = 240
#: Bound, in seconds, on each process's whole run.
PROCESS_TIMEOUT = 120.0


def start_claimer(backend: Backend, worker_id: str) -> subprocess.Popen[str]:
    """A `sitq.conformance.claimer` process on ``backend``'s store, seeing this sys.path."""
    cls = type(backend)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    command = [sys.executable, "-m", "sitq.conformance.claimer", cls.__module__,
               cls.__qualname__, str(backend.url), worker_id]  # fmt: skip
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip


def report(process: subprocess.Popen[str], line: str, key: str) -> object:
    """The value of ``key`` in one JSON line a claimer printed (failing with its stderr)."""
    if not line.strip():
        _, err = process.communicate(timeout=PROCESS_TIMEOUT)
        raise AssertionError(f"a claiming process failed (exit {process.returncode}):\n{err}")
    return json.loads(line)[key]


def run_claimers(backend: Backend) -> list[list[str]] | None:
    """Start the claimers; once every one has opened the store and seen its pending tasks,
    let them claim at the same moment. Their claimed ids, or None if a process saw none of
    the pending tasks (the store is not shared with other processes)."""
    processes = [start_claimer(backend, f"process-{i}") for i in range(PROCESSES)]
    try:
        assert all(p.stdout and p.stdin for p in processes)
        seen = [report(p, p.stdout.readline(), "pending") for p in processes]  # type: ignore[union-attr]
        order = "go\n" if all(seen) else "stop\n"
        for p in processes:
            p.stdin.write(order)  # type: ignore[union-attr]
            p.stdin.flush()  # type: ignore[union-attr]
        if order != "go\n":
            return None
        claimed = []
        for p in processes:
            out, err = p.communicate(timeout=PROCESS_TIMEOUT)
            assert p.returncode == 0, f"a claiming process failed:\n{err}"
            ids = report(p, out.strip().splitlines()[-1] if out.strip() else "", "claimed")
            claimed.append([str(i) for i in ids])  # type: ignore[attr-defined]
        return claimed
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.communicate()


class CrossProcessClaimTests(KitBase):
    """Claims across processes: processes sharing the store never claim one task twice."""

    @backend_test
    async def test_processes_never_claim_one_task_twice(self, b: Backend, clock: FakeClock) -> None:
        """Several processes opening from_url(backend.url) and claiming at once share out
        the pending tasks: each claimed by exactly one."""
        if b.url is None:
            pytest.skip(
                f"{type(b).__name__} was built without a URL: return "
                f"{type(b).__name__}.from_url(...) from make_backend so that other processes "
                "can open the same store"
            )
        if "<locals>" in type(b).__qualname__:
            pytest.skip(f"{type(b).__qualname__} is defined in a function: other processes "
                        "cannot import it")  # fmt: skip
        ids = await enqueue(b, TASKS)
        claimed = await asyncio.to_thread(run_claimers, b)
        if claimed is None:
            assert not b.supports(Capability.CROSS_PROCESS_WAKEUPS), (
                f"{type(b).__name__} declares Capability.CROSS_PROCESS_WAKEUPS, yet another "
                f"process opening {b!r} sees none of its pending tasks"
            )
            pytest.skip(f"{b!r} is not shared with other processes: another process opening "
                        "its URL sees none of its pending tasks")  # fmt: skip
        every = [task_id for mine in claimed for task_id in mine]
        twice = sorted({task_id for task_id in every if every.count(task_id) > 1})
        assert not twice, (
            f"claims are not atomic across processes: {len(twice)} task(s) claimed by two "
            f"processes, e.g. {twice[:3]} (Backend.claim: no task is ever returned to two "
            "claimers while its lease holds)"
        )
        assert sorted(every) == sorted(ids), "the processes did not claim every pending task"
        assert (await b.counts())[TaskStatus.SUCCEEDED] == TASKS
