"""Benchmark sitq against the stdlib sqlite3 floor and Huey, in one run; print the table.

    python bench/run.py [--quick] [--rounds 3] [--only sqlite] [--list]

Every subject runs once per round, rounds interleaved; the table shows medians with the
min-max spread, and ratios to baselines measured in the same run. See bench/README.md.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
import time
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import baseline_huey
import baseline_sqlite
import declared_subjects as dq
import sitq_subjects as sq
from harness import Scenario, machine_line, render, run_rounds

GROUPS = (
    ("enqueue", "Enqueue (tasks/s)"),
    ("process", "Processing no-op tasks, one worker, queue filled first (tasks/s)"),
    ("latency", "Idle latency, one task at a time (enqueue → start / → get_result)"),
)

#: Where the project wants to be (see bench/README.md).
TARGET_SQLITE_PROCESS = 20_000
TARGET_ENQUEUE_MANY = 200_000
TARGET_MEMORY_PROCESS = 100_000


@dataclass(frozen=True)
class Sizes:
    """How many operations each kind of subject runs per round."""

    enqueue: int  # single enqueues (sitq, raw sqlite3)
    enqueue_slow: int  # single enqueues of SqliteHuey with synchronous=FULL
    enqueue_many: int
    process: int
    process_slow: int  # SqliteHuey processing
    latency: int  # samples per round
    latency_slow: int  # samples per round when the worker polls (another process)


FULL = Sizes(10_000, 3_000, 100_000, 20_000, 6_000, 50, 20)
QUICK = Sizes(3_000, 1_000, 30_000, 6_000, 2_000, 20, 8)


def scenarios(n: Sizes) -> list[Scenario]:
    """Every subject, in the order each round runs them."""
    p = functools.partial
    raw1, rawn = "raw.insert1", "raw.insertN"
    claim1, claim100 = "raw.claim1", "raw.claim100"
    hs, hsn, hm = "huey.sqlite.enq", "huey.sqlite-normal.enq", "huey.memory.enq"
    hps, hpsn, hpm = "huey.sqlite.proc", "huey.sqlite-normal.proc", "huey.memory.proc"
    return [
        # enqueue
        Scenario(raw1, "enqueue", "sqlite3: INSERT + commit per row",
                 p(baseline_sqlite.enqueue_each, n=n.enqueue)),
        Scenario(rawn, "enqueue", "sqlite3: executemany in one transaction",
                 p(baseline_sqlite.enqueue_batch, n=n.enqueue_many)),
        Scenario(hs, "enqueue", "SqliteHuey (defaults: synchronous=FULL)",
                 p(baseline_huey.enqueue, kind="sqlite", n=n.enqueue_slow)),
        Scenario(hsn, "enqueue", "SqliteHuey (synchronous=NORMAL)",
                 p(baseline_huey.enqueue, kind="sqlite-normal", n=n.enqueue)),
        Scenario(hm, "enqueue", "MemoryHuey",
                 p(baseline_huey.enqueue, kind="memory", n=n.enqueue)),
        Scenario("sitq.sqlite.enq", "enqueue", "sitq-sqlite: await enqueue, one by one",
                 p(sq.enqueue_single, kind="sqlite", n=n.enqueue), (raw1, hsn)),
        Scenario("sitq.sqlite.enq.declared", "enqueue",
                 "sitq-sqlite: await task.enqueue(), declared",
                 p(dq.enqueue_single, kind="sqlite", n=n.enqueue), ("sitq.sqlite.enq",)),
        Scenario("sitq.sqlite.enq_conc", "enqueue",
                 f"sitq-sqlite: enqueue, {sq.CONCURRENT} concurrent coroutines",
                 p(sq.enqueue_concurrent, kind="sqlite", n=n.enqueue), (raw1, hsn)),
        Scenario("sitq.sqlite.enq_sync", "enqueue", "sitq-sqlite: SyncTaskQueue.enqueue",
                 p(sq.enqueue_sync, kind="sqlite", n=n.enqueue), (raw1, hsn)),
        Scenario("sitq.sqlite.enq_sync.declared", "enqueue",
                 "sitq-sqlite: task.enqueue(), declared, sync",
                 p(dq.enqueue_sync, kind="sqlite", n=n.enqueue), ("sitq.sqlite.enq_sync",)),
        Scenario("sitq.sqlite.enq_many", "enqueue",
                 f"sitq-sqlite: enqueue_many, batches of {sq.ENQUEUE_BATCH}",
                 p(sq.enqueue_many, kind="sqlite", n=n.enqueue_many), (rawn,),
                 TARGET_ENQUEUE_MANY),
        Scenario("sitq.memory.enq", "enqueue", "sitq-memory: await enqueue, one by one",
                 p(sq.enqueue_single, kind="memory", n=n.enqueue), (hm,)),
        Scenario("sitq.memory.enq.declared", "enqueue",
                 "sitq-memory: await task.enqueue(), declared",
                 p(dq.enqueue_single, kind="memory", n=n.enqueue), ("sitq.memory.enq",)),
        Scenario("sitq.memory.enq_many", "enqueue",
                 f"sitq-memory: enqueue_many, batches of {sq.ENQUEUE_BATCH}",
                 p(sq.enqueue_many, kind="memory", n=n.enqueue_many), (hm,)),
        # processing
        Scenario(claim1, "process", "sqlite3: claim 1 row + mark done, loop",
                 p(baseline_sqlite.process_each, n=n.process)),
        Scenario(claim100, "process", "sqlite3: claim 100 rows + mark done, loop",
                 p(baseline_sqlite.process_batched, n=n.process)),
        Scenario(hps, "process", "SqliteHuey defaults, consumer process",
                 p(baseline_huey.process_sqlite, kind="sqlite", n=n.process_slow)),
        Scenario(hpsn, "process", "SqliteHuey synchronous=NORMAL, consumer process",
                 p(baseline_huey.process_sqlite, kind="sqlite-normal", n=n.process)),
        Scenario(hpm, "process", "MemoryHuey, consumer thread in-process",
                 p(baseline_huey.process_memory, n=n.process)),
        Scenario(
            "sitq.sqlite.backend", "process", "sitq-sqlite backend alone: claim 100 + finish 100",
            p(sq.process_backend, kind="sqlite", n=n.process), (claim100,),
        ),
        Scenario(
            "sitq.sqlite.async.inline", "process", "sitq-sqlite: async no-op, worker in-process",
            p(sq.process_inline, kind="sqlite", fn="async", n=n.process),
            (claim1, claim100, hpsn), TARGET_SQLITE_PROCESS,
        ),
        Scenario(
            "sitq.sqlite.async.inline.declared", "process",
            "sitq-sqlite: declared async no-op, in-process",
            p(dq.process_inline, kind="sqlite", n=n.process), ("sitq.sqlite.async.inline",),
        ),
        Scenario(
            "sitq.sqlite.async.child", "process", "sitq-sqlite: async no-op, worker process",
            p(sq.process_child, fn="async", n=n.process),
            (claim1, claim100, hpsn), TARGET_SQLITE_PROCESS,
        ),
        Scenario(
            "sitq.sqlite.sync.inline", "process", "sitq-sqlite: sync no-op, worker in-process",
            p(sq.process_inline, kind="sqlite", fn="sync", n=n.process), (claim1, hpsn),
        ),
        Scenario(
            "sitq.sqlite.sync.child", "process", "sitq-sqlite: sync no-op, worker process",
            p(sq.process_child, fn="sync", n=n.process), (claim1, hpsn),
        ),
        Scenario(
            "sitq.memory.backend", "process", "sitq-memory backend alone: claim 100 + finish 100",
            p(sq.process_backend, kind="memory", n=n.process), (hpm,),
        ),
        Scenario(
            "sitq.memory.async.inline", "process", "sitq-memory: async no-op, worker in-process",
            p(sq.process_inline, kind="memory", fn="async", n=n.process), (hpm,),
            TARGET_MEMORY_PROCESS,
        ),
        Scenario(
            "sitq.memory.async.inline.declared", "process",
            "sitq-memory: declared async no-op, in-process",
            p(dq.process_inline, kind="memory", n=n.process), ("sitq.memory.async.inline",),
        ),
        Scenario(
            "sitq.memory.sync.inline", "process", "sitq-memory: sync no-op, worker in-process",
            p(sq.process_inline, kind="memory", fn="sync", n=n.process), (hpm,),
        ),
        # latency
        Scenario("sitq.sqlite.lat.inline", "latency", "sitq-sqlite, worker in-process",
                 p(sq.latency_inline, kind="sqlite", samples=n.latency)),
        Scenario("sitq.memory.lat.inline", "latency", "sitq-memory, worker in-process",
                 p(sq.latency_inline, kind="memory", samples=n.latency)),
        Scenario("sitq.sqlite.lat.child", "latency", "sitq-sqlite, worker process (defaults)",
                 p(sq.latency_child, samples=n.latency_slow)),
        Scenario("huey.sqlite.lat", "latency", "SqliteHuey, consumer process (defaults)",
                 p(baseline_huey.latency_sqlite, kind="sqlite", samples=n.latency_slow)),
    ]  # fmt: skip


#: The entry points the bench loads: the backends only (see bench/README.md).
BACKEND_PLUGINS = "sqlite,memory,postgres"


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the rounds, print the table."""
    # the queue as `pip install sitq-core sitq-sqlite` gives it: hook plugins of the dev
    # environment (sitq-prometheus, sitq-otel) would add their per-task hooks to every subject
    os.environ.setdefault("SITQ_PLUGINS", BACKEND_PLUGINS)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer operations per subject")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument(
        "--only", action="append", default=[], metavar="TEXT",
        help="run only subjects whose key or label contains TEXT (repeatable)",
    )  # fmt: skip
    parser.add_argument("--list", action="store_true", help="list the subjects and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")

    logging.disable(logging.WARNING)  # lost-lease warnings etc. would be noise here
    chosen = scenarios(QUICK if args.quick else FULL)
    if args.only:
        chosen = [
            s for s in chosen if any(t in s.key or t.lower() in s.label.lower() for t in args.only)
        ]
    if args.list:
        for s in chosen:
            print(f"{s.key:<34} {s.label}")
        return 0
    if not chosen:
        parser.error("--only matched no subject (see --list)")

    began = time.perf_counter()

    def progress(line: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - began:6.1f} s] {line}", file=sys.stderr, flush=True)

    measured = run_rounds(chosen, args.rounds, progress=progress)
    mode = "quick" if args.quick else "full"
    print(f"sitq bench ({mode}, median of {args.rounds} interleaved rounds; {machine_line()})")
    print(render(measured, GROUPS))
    print(f"\n(total {time.perf_counter() - began:.0f} s)")
    failed = [m for m in measured.values() if m.errors]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
