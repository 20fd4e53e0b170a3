"""Measurement plumbing shared by every bench module: scenarios, rounds, medians, paired
ratios and targets (`report` draws the tables).

A `Scenario` is one measured subject (``"sitq-sqlite enqueue_many"``) with a function that runs
it once and returns a `Sample` (operations and seconds, or latencies). `run_rounds` runs every
scenario once per round, in the same order each round, so slow phases of a shared machine hit
every subject alike; the report keeps the median of the rounds.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

#: Seconds between latency samples: the worker is idle when each task arrives.
IDLE_GAP = 0.1


@dataclass
class Sample:
    """One run of a scenario: ``ops`` operations in ``seconds``, or latencies in seconds.

    ``pickups``: enqueue → the task starts; ``latencies``: enqueue → its result is available.
    ``cpu_seconds``: CPU time over the same span, when the subject measures it: this
    process's when all the work is in it, the worker's process tree's (psutil) when a worker
    runs in other processes; other work on a shared machine moves it much less than the wall
    clock. ``idle_cpu_percent``: CPU % of one core an idle worker's process tree used over a
    few seconds (latency subjects). ``statements``: the store statements the subject issued
    over the same span, when it counts them (`statements.counting`). ``round``: which round
    it is from (set by `run_rounds`).
    """

    ops: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    pickups: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0
    idle_cpu_percent: float | None = None
    statements: int | None = None
    round: int = 0

    @property
    def rate(self) -> float:
        """Operations per second."""
        return self.ops / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us_per_op(self) -> float | None:
        """CPU microseconds per operation (None if not measured)."""
        return self.cpu_seconds / self.ops * 1e6 if self.cpu_seconds > 0 and self.ops else None

    @property
    def cpu_rate(self) -> float:
        """Operations per CPU second (0 if not measured)."""
        return self.ops / self.cpu_seconds if self.cpu_seconds > 0 else 0.0


class Clock:
    """Wall and CPU time from its start: ``Clock()`` … ``clock.sample(n)``."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def sample(self, ops: int) -> Sample:
        """``ops`` operations done since the clock started."""
        return Sample(
            ops, time.perf_counter() - self.wall, cpu_seconds=time.process_time() - self.cpu
        )


@dataclass(frozen=True)
class Target:
    """A goal for one subject: a rate, a ratio to another subject of the same run, or a
    latency quantile, checked against the medians of the run.

    :param kind: ``"rate"`` (ops/s at least), ``"ratio"`` (paired ratio to ``baseline`` at
        least), ``"pickup"`` or ``"result"`` (that latency's ``q`` quantile at most, seconds).
    """

    kind: str
    value: float
    baseline: str = ""
    q: float = 0.5

    def check(self, mine: Measured, measured: dict[str, Measured]) -> str | None:
        """``"≥ 1.00x SqliteHuey NORMAL: met"``, or None when the run has nothing to check."""
        if self.kind == "rate":
            got, goal = mine.rate, f"≥ {fmt_rate(self.value)}/s"
            ok = got is not None and got >= self.value
        elif self.kind == "ratio":
            other = measured.get(self.baseline)
            got = None if other is None else mine.ratio_to(other)
            goal = f"≥ {self.value:.2f}x {other.scenario.name if other else self.baseline}"
            ok = got is not None and got >= self.value
        else:
            got = mine.latency(self.q, pickup=self.kind == "pickup")
            goal = f"{self.kind} p{round(self.q * 100)} ≤ {self.value * 1e3:g} ms"
            ok = got is not None and got <= self.value
        if got is None:
            return None
        return f"{goal}: {'met' if ok else 'MISSED'}"


@dataclass
class Scenario:
    """A measured subject.

    :param key: short unique id, used for ratios (``"raw.claim1"``).
    :param group: the table section it is printed in (``"enqueue"``, ``"process"``, …).
    :param label: what the row shows.
    :param run: runs the subject once in a fresh temporary folder and returns a `Sample`.
    :param baseline: keys of the scenarios this one is compared to (same run), if any.
    :param targets: what the project aims for (issue 12), printed met/MISSED beside the row.
    :param short: the name in the headline table (default: ``label``).
    :param needs: the service it runs on besides this machine (``"postgres"``, ``"redis"``):
        without it the subject is skipped, with a line saying why.
    """

    key: str
    group: str
    label: str
    run: Callable[[str], Sample]
    baseline: tuple[str, ...] = ()
    targets: tuple[Target, ...] = ()
    short: str = ""
    needs: str = ""

    @property
    def name(self) -> str:
        """The short name, or the label."""
        return self.short or self.label


@dataclass
class Measured:
    """Every sample of one scenario over the rounds."""

    scenario: Scenario
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        """Median ops/s over the rounds (None if no round measured a rate)."""
        rates = [s.rate for s in self.samples if s.ops]
        return statistics.median(rates) if rates else None

    @property
    def rates(self) -> list[float]:
        """Ops/s of each round."""
        return [s.rate for s in self.samples if s.ops]

    def ratio_to(self, other: Measured, *, cpu: bool = False) -> float | None:
        """Median over the rounds both measured of this rate / ``other``'s rate in the same
        round (paired, so a slow phase of the machine cancels out); None if none paired."""
        theirs = {s.round: s for s in other.samples if s.ops}
        ratios = []
        for mine in self.samples:
            base = theirs.get(mine.round)
            if not mine.ops or base is None:
                continue
            a, b = (mine.cpu_rate, base.cpu_rate) if cpu else (mine.rate, base.rate)
            if a and b:
                ratios.append(a / b)
        return statistics.median(ratios) if ratios else None

    @property
    def cpu_us(self) -> float | None:
        """Median CPU µs per operation over the rounds that measured it."""
        values = [v for s in self.samples if (v := s.cpu_us_per_op) is not None]
        return statistics.median(values) if values else None

    @property
    def statements(self) -> float | None:
        """Median store statements per round over the rounds that counted them."""
        values = [s.statements for s in self.samples if s.statements is not None]
        return statistics.median(values) if values else None

    @property
    def idle_cpu(self) -> float | None:
        """Median idle CPU % of the worker over the rounds that measured it."""
        values = [s.idle_cpu_percent for s in self.samples if s.idle_cpu_percent is not None]
        return statistics.median(values) if values else None

    def latency(self, q: float, *, pickup: bool = False) -> float | None:
        """Median over the rounds of each round's ``q`` quantile (0.5 is p50) of the result
        latencies (or of the pickup latencies)."""
        series = [s.pickups if pickup else s.latencies for s in self.samples]
        per_round = [quantile(values, q) for values in series if values]
        return statistics.median(per_round) if per_round else None


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


@contextmanager
def scratch_dir() -> Iterator[str]:
    """A temporary folder, removed afterwards."""
    path = tempfile.mkdtemp(prefix="sitq-bench-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def lazy(target: str, **kwargs: Any) -> Callable[[str], Sample]:
    """The subject ``"module:function"`` called with ``kwargs``, imported when it first runs:
    listing the subjects (``--list``) needs none of the peers installed."""
    module_name, _, name = target.partition(":")

    def run(folder: str) -> Sample:
        function = getattr(importlib.import_module(module_name), name)
        return function(folder, **kwargs)  # type: ignore[no-any-return]

    return run


_TEMPLATES: dict[str, str] = {}


def from_template(key: str, folder: str, build: Callable[[str], None]) -> None:
    """Copy into ``folder`` the files that ``build(template_folder)`` wrote the first time
    ``key`` was asked for in this run: a deep backlog is filled once per run, not per round."""
    template = _TEMPLATES.get(key)
    if template is None:
        template = tempfile.mkdtemp(prefix="sitq-bench-template-")
        atexit.register(shutil.rmtree, template, ignore_errors=True)
        build(template)
        _TEMPLATES[key] = template
    for name in os.listdir(template):
        shutil.copy2(os.path.join(template, name), folder)


def run_rounds(
    scenarios: Sequence[Scenario],
    rounds: int,
    *,
    progress: Callable[[str], None] = lambda line: None,
) -> dict[str, Measured]:
    """Run every scenario once per round (interleaved); return the samples by key."""
    measured = {s.key: Measured(s) for s in scenarios}
    for round_no in range(1, rounds + 1):
        for scenario in scenarios:
            gc.collect()
            began = time.perf_counter()
            with scratch_dir() as folder:
                try:
                    sample = scenario.run(folder)
                except Exception as exc:  # one broken subject must not hide the others
                    measured[scenario.key].errors.append(f"{type(exc).__name__}: {exc}")
                    progress(f"round {round_no} {scenario.label}: FAILED {exc!r}")
                    continue
            sample.round = round_no
            measured[scenario.key].samples.append(sample)
            took = time.perf_counter() - began
            shown = f"{sample.rate:,.0f}/s" if sample.ops else _latency_text(sample.latencies)
            progress(f"round {round_no} {scenario.label}: {shown} ({took:.1f} s)")
    return measured


def _latency_text(latencies: list[float]) -> str:
    if not latencies:
        return "-"
    return f"p50 {quantile(latencies, 0.5) * 1e3:.2f} ms"


def fmt_rate(rate: float | None) -> str:
    """12345.6 → ``12.3k``."""
    if rate is None:
        return "—"
    if rate >= 1e6:
        return f"{rate / 1e6:.2f}M"
    if rate >= 1e3:
        return f"{rate / 1e3:.1f}k"
    return f"{rate:.0f}"


def fmt_ms(seconds: float | None) -> str:
    """Seconds as milliseconds."""
    if seconds is None:
        return "—"
    return f"{seconds * 1e3:.1f} ms" if seconds >= 0.01 else f"{seconds * 1e3:.2f} ms"


def fmt_us(us: float | None) -> str:
    """CPU microseconds per operation."""
    return "—" if us is None else f"{us:,.0f} µs"
