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
import tempfile
from typing import Any

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


class Claimer:
    """One `sitq.conformance.claimer` process on ``backend``'s store, seeing this sys.path."""

    def __init__(self, backend: Backend, worker_id: str) -> None:
        cls = type(backend)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        command = [sys.executable, "-m", "sitq.conformance.claimer", cls.__module__,
                   cls.__qualname__, str(backend.url), worker_id]  # fmt: skip
        # a file, not a pipe, so that a chatty process never blocks; closed by `stop`
        self.errors = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.errors, text=True, env=env)  # fmt: skip

    def pending_seen(self) -> int:
        """How many pending tasks the process saw once it opened the store."""
        assert self.process.stdout is not None
        return int(self.reported(self.process.stdout.readline(), "pending"))

    def tell(self, order: str) -> None:
        """Send ``order`` ("go" or "stop")."""
        assert self.process.stdin is not None
        self.process.stdin.write(order + "\n")
        self.process.stdin.flush()

    def claimed(self) -> list[str]:
        """The ids the process claimed, once it has exited."""
        out, _ = self.process.communicate(timeout=PROCESS_TIMEOUT)
        lines = out.strip().splitlines() if self.process.returncode == 0 else []
        return [str(task_id) for task_id in self.reported(lines[-1] if lines else "", "claimed")]

    def reported(self, line: str, key: str) -> Any:
        """The value of ``key`` in a JSON line the process printed; fails, with what the
        process wrote to stderr, if it printed none."""
        if not line.strip():
            self.process.wait(PROCESS_TIMEOUT)
            self.errors.seek(0)
            raise AssertionError(
                f"a claiming process failed (exit {self.process.returncode}):\n{self.errors.read()}"
            )
        return json.loads(line)[key]

    def stop(self) -> None:
        """Kill the process if it still runs; release its files."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()
        self.errors.close()


def run_claimers(backend: Backend) -> list[list[str]] | None:
    """Start the claimers; once every one has opened the store and seen its pending tasks,
    let them claim at the same moment. Their claimed ids, or None if a process saw none of
    the pending tasks (the store is not shared with other processes)."""
    claimers = [Claimer(backend, f"process-{i}") for i in range(PROCESSES)]
    try:
        shared = all([claimer.pending_seen() for claimer in claimers])
        for claimer in claimers:
            claimer.tell("go" if shared else "stop")
        return [claimer.claimed() for claimer in claimers] if shared else None
    finally:
        for claimer in claimers:
            claimer.stop()


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
