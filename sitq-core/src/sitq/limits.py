"""Resource limits of a worker: `ResourceLimits`, measured with psutil.

* ``max_memory_mb``: while the worker process's resident memory (RSS) is above it, the worker
  claims no new task; running tasks go on, and claiming resumes once memory is back under the
  limit. That is all it can do for async and thread workers: nothing stops a running thread
  or coroutine from outside. A process worker also bounds each running task: a child process
  going over the limit is killed and replaced, and its task fails with
  `sitq.errors.ResourceLimitExceeded` (see `sitq.processes`).
* ``max_cpu_percent``: while the CPU time used by the worker process and its child processes,
  over the last sampling window, is above this share of the machine (100 = every core busy),
  the worker claims no new task. This throttles a worker to roughly that share on average.

The checks run only before claiming, at most once per ``interval`` seconds; a worker without
limits never calls them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import psutil

from .validation import check_number


@dataclass(frozen=True)
class Usage:
    """One measurement: resident memory in MiB and CPU as a share of the machine (0-100)."""

    memory_mb: float
    cpu_percent: float


class ResourceLimits:
    """Decides whether a worker may claim more tasks, given its memory and CPU limits.

    :param max_memory_mb: resident memory of the worker process, in MiB, above which it stops
        claiming (None: no limit).
    :param max_cpu_percent: share of the machine's CPU (0-100], used by the worker process and
        its children, above which it stops claiming (None: no limit).
    :param interval: seconds between measurements; also the CPU sampling window.
    """

    def __init__(
        self,
        max_memory_mb: float | None = None,
        max_cpu_percent: float | None = None,
        *,
        interval: float = 0.25,
    ) -> None:
        if max_memory_mb is not None:
            check_number("max_memory_mb", max_memory_mb, what="a number of MiB > 0", above=0)
        if max_cpu_percent is not None:
            check_number(
                "max_cpu_percent",
                max_cpu_percent,
                what="a share of the machine's CPU in (0, 100]",
                above=0,
                at_most=100,
            )
        self.max_memory_mb = None if max_memory_mb is None else float(max_memory_mb)
        self.max_cpu_percent = None if max_cpu_percent is None else float(max_cpu_percent)
        self.interval = interval
        self._process = psutil.Process(os.getpid())
        self._cpus = psutil.cpu_count() or 1
        self._cpu_seen: dict[int, tuple[psutil.Process, float]] = {}
        self._sampled_at: float | None = None
        self._usage = Usage(0.0, 0.0)
        self._reason: str | None = None

    @property
    def active(self) -> bool:
        """True if any limit is set."""
        return self.max_memory_mb is not None or self.max_cpu_percent is not None

    def usage(self) -> Usage:
        """The latest measurement (taken now if the last one is older than ``interval``)."""
        now = time.monotonic()
        if self._sampled_at is None or now - self._sampled_at >= self.interval:
            self._usage = self._measure(now)
        return self._usage

    def over_limit(self) -> str | None:
        """Why the worker must not claim now (a sentence naming the limit), or None."""
        if not self.active:
            return None
        usage = self.usage()
        if self.max_memory_mb is not None and usage.memory_mb > self.max_memory_mb:
            return f"memory {usage.memory_mb:.0f} MiB is above max_memory_mb={self.max_memory_mb:g}"
        if self.max_cpu_percent is not None and usage.cpu_percent > self.max_cpu_percent:
            return f"CPU {usage.cpu_percent:.1f}% is above max_cpu_percent={self.max_cpu_percent:g}"
        return None

    def _measure(self, now: float) -> Usage:
        memory = 0.0
        if self.max_memory_mb is not None:
            try:
                memory = float(self._process.memory_info().rss) / 2**20
            except psutil.Error:
                memory = 0.0
        cpu = 0.0
        if self.max_cpu_percent is not None:
            cpu = self._cpu_percent(now)
        self._sampled_at = now
        return Usage(memory, cpu)

    def _cpu_percent(self, now: float) -> float:
        """CPU seconds used by this process and its children since the last sample, as a
        share of the machine over that time."""
        try:
            processes = [self._process, *self._process.children(recursive=True)]
        except psutil.Error:
            processes = [self._process]
        used = 0.0
        seen: dict[int, tuple[psutil.Process, float]] = {}
        for proc in processes:
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            total = times.user + times.system
            previous = self._cpu_seen.get(proc.pid)
            if previous is not None and previous[0] == proc:
                used += max(0.0, total - previous[1])
            elif self._sampled_at is not None:
                used += total  # a child that appeared since the last sample
            seen[proc.pid] = (proc, total)
        self._cpu_seen = seen
        if self._sampled_at is None:
            return 0.0
        elapsed = now - self._sampled_at
        if elapsed <= 0:
            return self._usage.cpu_percent
        return 100.0 * used / (elapsed * self._cpus)
