"""Measurement plumbing shared by every bench module: scenarios, rounds, medians, the table.

A `Scenario` is one measured subject (``"sitq-sqlite enqueue_many"``) with a function that runs
it once and returns a `Sample` (operations and seconds, or latencies). `run_rounds` runs every
scenario once per round, in the same order each round, so slow phases of a shared machine hit
every subject alike; the report keeps the median of the rounds.
"""

from __future__ import annotations

import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

#: Seconds between latency samples: the worker is idle when each task arrives.
IDLE_GAP = 0.1


@dataclass
class Sample:
    """One run of a scenario: ``ops`` operations in ``seconds``, or latencies in seconds.

    ``pickups``: enqueue → the task starts; ``latencies``: enqueue → its result is available.
    ``cpu_seconds``: this process's CPU time over the same span, when the subject measures it
    (all its work in this process): other work on a shared machine moves it much less than
    the wall clock. ``round``: which round it is from (set by `run_rounds`).
    """

    ops: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    pickups: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0
    round: int = 0

    @property
    def rate(self) -> float:
        """Operations per second."""
        return self.ops / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_rate(self) -> float:
        """Operations per CPU second of this process (0 if not measured)."""
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


@dataclass
class Scenario:
    """A measured subject.

    :param key: short unique id, used for ratios (``"raw.claim1"``).
    :param group: the table section it is printed in (``"enqueue"``, ``"process"``, …).
    :param label: what the row shows.
    :param run: runs the subject once in a fresh temporary folder and returns a `Sample`.
    :param baseline: key of the scenario this one is compared to (same run), if any.
    :param target: ops/s the project aims for, if any.
    """

    key: str
    group: str
    label: str
    run: Callable[[str], Sample]
    baseline: tuple[str, ...] = ()
    target: float | None = None


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
    return "—" if seconds is None else f"{seconds * 1e3:.2f} ms"


def render(measured: dict[str, Measured], groups: Sequence[tuple[str, str]]) -> str:
    """The result table: per group, each subject's median rate, spread, ratios and target."""
    lines: list[str] = []
    for group, title in groups:
        rows = [m for m in measured.values() if m.scenario.group == group]
        if not rows:
            continue
        lines.append("")
        lines.append(f"## {title}")
        if group == "latency":
            lines.append(
                f"{'subject':<52} {'pickup p50':>11} {'result p50':>11} {'result p90':>11}"
            )
            for m in rows:
                err = f"  ERROR {m.errors[0]}" if m.errors and not m.samples else ""
                lines.append(
                    f"{m.scenario.label:<52} {fmt_ms(m.latency(0.5, pickup=True)):>11} "
                    f"{fmt_ms(m.latency(0.5)):>11} {fmt_ms(m.latency(0.9)):>11}{err}"
                )
            continue
        lines.append(f"{'subject':<52} {'ops/s':>8} {'min-max':>15}  {'ratios / target'}")
        for m in rows:
            rates = m.rates
            spread = f"{fmt_rate(min(rates))}-{fmt_rate(max(rates))}" if rates else ""
            notes = []
            for base in m.scenario.baseline:
                other = measured.get(base)
                ratio = None if other is None else m.ratio_to(other)
                if other is not None and ratio is not None:
                    cpu = m.ratio_to(other, cpu=True)
                    by_cpu = "" if cpu is None else f" (CPU time: {cpu:.2f}x)"
                    notes.append(f"{ratio:.2f}x{by_cpu} {other.scenario.label}")
            if m.scenario.target is not None and m.rate is not None:
                verdict = "met" if m.rate >= m.scenario.target else "MISSED"
                notes.append(f"target {fmt_rate(m.scenario.target)}: {verdict}")
            if m.errors and not m.samples:
                notes.append(f"ERROR {m.errors[0]}")
            lines.append(
                f"{m.scenario.label:<52} {fmt_rate(m.rate):>8} {spread:>15}  {'; '.join(notes)}"
            )
    return "\n".join(lines)


def machine_line() -> str:
    """One line about where this ran."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load {load:.2f}, "
        f"sqlite {__import__('sqlite3').sqlite_version}"
    )
