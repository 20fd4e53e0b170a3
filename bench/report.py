"""The bench's tables, as text or Markdown.

The headline has one row per workload of issue 12: sitq beside its peers from the same run and
the paired ratio to the peer to beat, with the targets met or MISSED. The detail tables show
every subject of each group: median rate, min-max over the rounds, CPU µs per task, ratios.
"""

from __future__ import annotations

import datetime
import os
import platform
import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from harness import Measured, fmt_ms, fmt_rate, fmt_us


@dataclass(frozen=True)
class Workload:
    """One row of the headline: sitq's subject ``ours`` and its ``peers``, the one to beat
    first (the ratio column is to it).

    :param kind: ``"rate"`` (tasks/s), ``"latency"`` (pickup and result) or ``"depth"``
        (each subject's rate relative to its first baseline: a deep backlog against a
        shallow one).
    """

    name: str
    ours: str
    peers: tuple[str, ...]
    kind: str = "rate"


@dataclass
class Table:
    """A titled table of text cells; as text, the ``aside`` column (if any) goes on a line of
    its own under each row, so that long cells do not stretch every row."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    aside: int | None = None


def machine() -> str:
    """Where and when this ran: cores, CPU model, Python, OS, SQLite, load, date."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            model = next(
                line.split(":", 1)[1].strip() for line in info if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    load = f", load {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{os.cpu_count()} cores ({model}), Python {sys.version.split()[0]}, "
        f"{platform.system()} {platform.release()}, SQLite {sqlite3.sqlite_version}{load}; {when}"
    )


def _rate_cell(m: Measured) -> str:
    if m.errors and not m.samples:
        return f"ERROR {m.errors[0]}"
    cpu = m.cpu_us
    return f"{fmt_rate(m.rate)}/s" + (f" ({fmt_us(cpu)})" if cpu is not None else "")


def _latency_cell(m: Measured) -> str:
    if m.errors and not m.samples:
        return f"ERROR {m.errors[0]}"

    def ms(q: float, pickup: bool) -> str:
        return fmt_ms(m.latency(q, pickup=pickup)).removesuffix(" ms")

    idle = "" if m.idle_cpu is None else f", idle CPU {m.idle_cpu:.1f}%"
    return f"{ms(0.5, True)} / {ms(0.5, False)} ms (p99 {ms(0.99, True)} / {ms(0.99, False)}){idle}"


def _depth_cell(m: Measured, measured: dict[str, Measured]) -> str:
    base = measured.get(m.scenario.baseline[0]) if m.scenario.baseline else None
    ratio = None if base is None else m.ratio_to(base)
    if ratio is None or base is None:
        return _rate_cell(m)
    return f"{ratio:.2f}x ({fmt_rate(m.rate)}/s vs {fmt_rate(base.rate)}/s)"


def _targets(m: Measured, measured: dict[str, Measured]) -> str:
    return "; ".join(v for t in m.scenario.targets if (v := t.check(m, measured)))


def headline(measured: dict[str, Measured], workloads: Sequence[Workload]) -> Table:
    """sitq beside its peers, one row per workload (rows whose subjects did not run are left
    out)."""
    table = Table(
        "sitq beside its peers, same run (CPU µs per task in brackets; ratio to the first peer)",
        ["workload", "sitq", "peers", "ratio", "targets"],
        aside=2,
    )
    for w in workloads:
        ours = measured.get(w.ours)
        if ours is None:
            continue
        peers = [measured[k] for k in w.peers if k in measured]
        if w.kind == "latency":
            cell = _latency_cell
            mine, theirs = cell(ours), [f"{p.scenario.name} {cell(p)}" for p in peers]
            ratio = "—"
        elif w.kind == "depth":
            mine = _depth_cell(ours, measured)
            theirs = [f"{p.scenario.name} {_depth_cell(p, measured)}" for p in peers]
            ratio = "—"
        else:
            mine = _rate_cell(ours)
            theirs = [f"{p.scenario.name} {_rate_cell(p)}" for p in peers]
            main = peers[0] if peers else None  # the peer to beat; the others are context
            value = None if main is None else ours.ratio_to(main)
            ratio = "—" if value is None or main is None else f"{value:.2f}x {main.scenario.name}"
        table.rows.append([w.name, mine, "; ".join(theirs), ratio, _targets(ours, measured)])
    return table


def details(measured: dict[str, Measured], groups: Sequence[tuple[str, str]]) -> list[Table]:
    """Every subject, one table per group."""
    tables = []
    for group, title in groups:
        rows = [m for m in measured.values() if m.scenario.group == group]
        if not rows:
            continue
        if group.startswith("latency"):
            table = Table(
                title,
                ["subject", "pickup p50", "p99", "result p50", "p99", "idle CPU", "targets"],
            )
            for m in rows:
                idle = m.idle_cpu
                error = f"ERROR {m.errors[0]}" if m.errors and not m.samples else ""
                table.rows.append([
                    m.scenario.label,
                    fmt_ms(m.latency(0.5, pickup=True)),
                    fmt_ms(m.latency(0.99, pickup=True)),
                    fmt_ms(m.latency(0.5)),
                    fmt_ms(m.latency(0.99)),
                    "—" if idle is None else f"{idle:.1f}%",
                    error or _targets(m, measured),
                ])  # fmt: skip
        else:
            table = Table(title, ["subject", "tasks/s", "min-max", "CPU/task", "ratios; targets"])
            for m in rows:
                rates = m.rates
                spread = f"{fmt_rate(min(rates))}-{fmt_rate(max(rates))}" if rates else ""
                notes = []
                for key in m.scenario.baseline:
                    other = measured.get(key)
                    ratio = None if other is None else m.ratio_to(other)
                    if other is not None and ratio is not None:
                        cpu = m.ratio_to(other, cpu=True)
                        by_cpu = "" if cpu is None else f" (CPU time: {cpu:.2f}x)"
                        notes.append(f"{ratio:.2f}x{by_cpu} {other.scenario.label}")
                if targets := _targets(m, measured):
                    notes.append(targets)
                if m.statements is not None:
                    notes.append(f"{m.statements:,.0f} statements")
                if m.errors and not m.samples:
                    notes.append(f"ERROR {m.errors[0]}")
                table.rows.append(
                    [m.scenario.label, fmt_rate(m.rate), spread, fmt_us(m.cpu_us), "; ".join(notes)]
                )
        tables.append(table)
    return tables


def as_text(tables: Sequence[Table]) -> str:
    """Aligned columns; the last column runs free, the ``aside`` one goes under its row."""
    out: list[str] = []
    for table in tables:
        rows = [table.columns, *table.rows]
        shown = [[c for i, c in enumerate(row) if i != table.aside] for row in rows]
        widths = [max(len(row[i]) for row in shown) for i in range(len(shown[0]))]
        out += ["", f"## {table.title}"]
        for number, (row, cells) in enumerate(zip(rows, shown, strict=True)):
            padded = [c if i == len(cells) - 1 else c.ljust(widths[i]) for i, c in enumerate(cells)]
            out.append("  ".join(padded).rstrip())
            if number and table.aside is not None and row[table.aside]:
                out.append(f"    {table.columns[table.aside]}: {row[table.aside]}")
    return "\n".join(out)


def as_markdown(tables: Sequence[Table]) -> str:
    """GitHub-flavoured Markdown tables."""
    out: list[str] = []
    for table in tables:
        out += ["", f"### {table.title}", ""]
        out.append("| " + " | ".join(table.columns) + " |")
        out.append("|" + "---|" * len(table.columns))
        for row in table.rows:
            out.append("| " + " | ".join(c.replace("|", "\\|") or " " for c in row) + " |")
    return "\n".join(out)
