"""`Fleet`: worker processes in groups, each group standing in for one machine.

Every process runs `pg_worker.py` with a pool of its own; the processes of a group share an
``application_name`` (``<tag>-g<group>``), so a test can kill one machine's connections, and
worker ids ``g<group>-<n>``. Tasks (`pg_tasks.record`) log every run to files in ``log_dir``.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
from pg_support import PG_URL

TESTS = Path(__file__).parent


class Fleet:
    """Worker processes for ``prefix``, ``per_group`` in each of ``groups`` groups."""

    def __init__(
        self,
        prefix: str,
        log_dir: Path,
        *,
        groups: int,
        per_group: int,
        lease: float = 30.0,
        max_workers: int = 50,
        poll: float = 1.0,
    ) -> None:
        self.prefix = prefix
        self.tag = f"sitq-fleet-{prefix}"
        self.log_dir = log_dir
        self.groups = groups
        self.per_group = per_group
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
            "SITQ_TEST_RUN_LOG_DIR": str(log_dir),
            "SITQ_TEST_LEASE": str(lease),
            "SITQ_TEST_MAX_WORKERS": str(max_workers),
            "SITQ_TEST_POLL": str(poll),
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.spawned = 0
        self.sigkills = 0

    def url(self, group: int) -> str:
        """The backend URL of the machines in ``group``."""
        return (
            f"{PG_URL}?table_prefix={self.prefix}&application_name={self.tag}-g{group}"
            "&pool_max_size=4"
        )

    def spawn(self, group: int) -> str:
        """Start one more worker process in ``group``; its worker id."""
        worker_id = f"g{group}-{self.spawned}"
        self.spawned += 1
        self.procs[worker_id] = subprocess.Popen(
            [sys.executable, str(TESTS / "pg_worker.py"), self.url(group), worker_id],
            env=self.env,
            stdout=subprocess.PIPE,
        )
        return worker_id

    def start(self) -> None:
        """Start every process and wait (up to 60 s) until each has imported sitq."""
        for group in range(self.groups):
            for _ in range(self.per_group):
                self.spawn(group)
        for worker_id, proc in self.procs.items():
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.strip() == b"ready", f"worker {worker_id} did not start: {line!r}"

    def sigkill_one(self) -> None:
        """SIGKILL a random live worker and start a replacement in its group."""
        live = [w for w, p in self.procs.items() if p.poll() is None]
        victim = random.choice(live)
        proc = self.procs.pop(victim)
        proc.kill()
        proc.wait(10)
        self.sigkills += 1
        self.spawn(int(victim[1 : victim.index("-")]))

    def stop(self) -> list[int]:
        """SIGTERM every process (a graceful stop), then SIGKILL stragglers; exit codes."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        codes = []
        for proc in self.procs.values():
            try:
                codes.append(proc.wait(max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait(10))
            if proc.stdout is not None:
                proc.stdout.close()
        return codes

    async def terminate_connections(self) -> int:
        """pg_terminate_backend every connection of one random group; how many."""
        group = random.randrange(self.groups)
        conn = await asyncpg.connect(PG_URL)
        try:
            rows = await conn.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = $1",
                f"{self.tag}-g{group}",
            )
            return len(rows)
        finally:
            await conn.close()


async def wait_until_all_succeeded(queue: object, total: int, timeout: float) -> None:
    """Poll the counts until ``total`` tasks succeeded; fail after ``timeout`` seconds."""
    from sitq import TaskStatus

    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        counts = await queue.counts()  # type: ignore[attr-defined]
        if counts[TaskStatus.SUCCEEDED] >= total:
            return
        assert asyncio.get_running_loop().time() < deadline, f"not done in {timeout} s: {counts}"
        await asyncio.sleep(0.2)
