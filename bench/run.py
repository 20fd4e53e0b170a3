"""Benchmark sitq against its peers (Huey, Celery, Dramatiq, procrastinate, the stdlib floors)
in one run; print the table.

    python bench/run.py [--quick] [--rounds 3] [--only sqlite] [--list] [--markdown PATH]

Every subject runs once per round, rounds interleaved; the tables show medians with the
min-max spread, CPU µs per task, and ratios to peers measured in the same run. See
bench/README.md.
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

import baseline_pool
import baseline_redis
import baseline_sqlite
import declared_subjects as dq
import limits_subjects as lq
import pg_subjects as pg
import sitq_subjects as sq
import workflow_subjects as wf
from harness import Scenario, Target, lazy, run_rounds
from report import Workload, as_markdown, as_text, details, headline, machine

GROUPS = (
    ("enqueue", "Enqueue, SQLite and memory (tasks/s; CPU of the bench process)"),
    ("remote", "One enqueue at a time from plain code, on a server (tasks/s; CPU of the bench "
               "process, not the server's)"),
    ("pool", "~1 ms CPU tasks, process pool of 2, queue filled first (tasks/s; CPU of the "
             "whole process tree per task, the work itself included)"),
    ("process", "Processing no-op tasks, one worker, queue filled first (tasks/s; CPU of the "
                "bench process, or of the worker's process tree)"),
    ("backlog", "SQLite drain from a deep backlog, worker in the bench process (tasks/s)"),
    ("postgres", "PostgreSQL drain, one worker process, queue filled first (tasks/s)"),
    ("limits", "Flow control: drain with limits stored but never binding, and binding (20 "
               "tenants x 2), vs none; one worker process, queue filled first (tasks/s)"),
    ("latency", "Idle latency, worker in the bench process, one task at a time"),
    ("latency-remote", "Idle latency, worker in another process, one task at a time "
                       "(idle CPU: % of a core the idle worker's process tree uses)"),
    ("workflows", f"Workflows: a chord of {wf.CHORD_MEMBERS:,} no-ops + a callback, worker in "
                  "the bench process (tasks/s; statements sent to the store)"),
)  # fmt: skip

#: Where the project wants to be (issue 12, bench/README.md).
TARGET_SQLITE_PROCESS = 25_000
TARGET_ENQUEUE_MANY = 200_000
TARGET_MEMORY_PROCESS = 100_000
TARGET_PG_SYNC_ENQUEUE = 3_000
POOL_WORKERS = 2
#: Tasks a process pool runs before the timing starts (its processes started and warm).
POOL_WARM = 10


@dataclass(frozen=True)
class Sizes:
    """How many operations each kind of subject runs per round."""

    enqueue: int  # single enqueues (sitq, raw sqlite3)
    enqueue_slow: int  # single enqueues of SqliteHuey with synchronous=FULL
    enqueue_remote: int  # single enqueues to a server (PostgreSQL, Redis)
    enqueue_many: int
    process: int
    process_slow: int  # SqliteHuey processing
    pool: int  # ~1 ms CPU tasks through a process pool
    backlog: int  # pending tasks of the deep backlog row
    backlog_run: int  # tasks run from each backlog (and the depth of the shallow one)
    pg_process: int  # sitq-postgres drain
    pg_process_slow: int  # procrastinate drain
    latency: int  # samples per round, worker in the bench process
    latency_remote: int  # samples per round, worker in another process
    idle_seconds: float  # how long the idle worker's CPU is measured


FULL = Sizes(10_000, 3_000, 3_000, 100_000, 20_000, 6_000, 3_000, 1_000_000, 10_000,
             10_000, 1_000, 50, 100, 3.0)  # fmt: skip
QUICK = Sizes(2_000, 300, 500, 20_000, 4_000, 200, 600, 100_000, 5_000,
              2_000, 100, 8, 8, 1.0)  # fmt: skip

#: Subjects `--quick` leaves out to stay under two minutes: SqliteHuey's default-settings
#: latency (its consumer polls: ~110 ms a sample, the slowest subject, and not a peer the
#: speed targets are set against; the full run keeps it).
QUICK_LEAVES_OUT = frozenset({"huey.sqlite.lat"})
#: Keys (and key prefixes) `--quick` also leaves out unless `--only` asks for them: rows no
#: target of the headline reads, the binding limits (for information) and the chord runs
#: (about 35 s a round with Celery's chord; `--only workflows` runs them).
QUICK_ON_REQUEST = ("limits.sqlite.binding", "limits.pg.binding", "workflows.")


def count(n: int) -> str:
    """1000000 → ``1M``, 200000 → ``200k``."""
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k"


def scenarios(n: Sizes) -> list[Scenario]:
    """Every subject, in the order each round runs them."""
    p = functools.partial
    raw1, rawn = "raw.insert1", "raw.insertN"
    claim1, claim100 = "raw.claim1", "raw.claim100"
    hs, hsn, hm = "huey.sqlite.enq", "huey.sqlite-normal.enq", "huey.memory.enq"
    hps, hpsn, hpm = "huey.sqlite.proc", "huey.sqlite-normal.proc", "huey.memory.proc"
    deep, shallow = count(n.backlog), count(n.backlog_run)
    return [
        # enqueue
        Scenario(raw1, "enqueue", "sqlite3: INSERT + commit per row",
                 p(baseline_sqlite.enqueue_each, n=n.enqueue), short="raw sqlite3 insert+commit"),
        Scenario(rawn, "enqueue", "sqlite3: executemany in one transaction",
                 p(baseline_sqlite.enqueue_batch, n=n.enqueue_many), short="raw executemany"),
        Scenario(hs, "enqueue", "SqliteHuey (defaults: synchronous=FULL)",
                 lazy("baseline_huey:enqueue", kind="sqlite", n=n.enqueue_slow)),
        Scenario(hsn, "enqueue", "SqliteHuey (synchronous=NORMAL)",
                 lazy("baseline_huey:enqueue", kind="sqlite-normal", n=n.enqueue),
                 short="Huey NORMAL"),
        Scenario(hm, "enqueue", "MemoryHuey",
                 lazy("baseline_huey:enqueue", kind="memory", n=n.enqueue)),
        Scenario("sitq.sqlite.enq", "enqueue", "sitq-sqlite: await enqueue, one by one",
                 p(sq.enqueue_single, kind="sqlite", n=n.enqueue), (raw1, hsn)),
        Scenario("sitq.sqlite.enq.declared", "enqueue",
                 "sitq-sqlite: await task.enqueue(), declared",
                 p(dq.enqueue_single, kind="sqlite", n=n.enqueue), ("sitq.sqlite.enq",)),
        Scenario("sitq.sqlite.enq_conc", "enqueue",
                 f"sitq-sqlite: enqueue, {sq.CONCURRENT} concurrent coroutines",
                 p(sq.enqueue_concurrent, kind="sqlite", n=n.enqueue), (raw1, hsn)),
        Scenario("sitq.sqlite.enq_sync", "enqueue", "sitq-sqlite: SyncTaskQueue.enqueue",
                 p(sq.enqueue_sync, kind="sqlite", n=n.enqueue), (raw1, hsn),
                 (Target("ratio", 1.0, hsn),)),
        Scenario("sitq.sqlite.enq_sync.declared", "enqueue",
                 "sitq-sqlite: task.enqueue(), declared, sync",
                 p(dq.enqueue_sync, kind="sqlite", n=n.enqueue), ("sitq.sqlite.enq_sync",)),
        Scenario("sitq.sqlite.enq_many", "enqueue",
                 f"sitq-sqlite: enqueue_many, batches of {sq.ENQUEUE_BATCH}",
                 p(sq.enqueue_many, kind="sqlite", n=n.enqueue_many), (rawn,),
                 (Target("rate", TARGET_ENQUEUE_MANY),)),
        Scenario("sitq.memory.enq", "enqueue", "sitq-memory: await enqueue, one by one",
                 p(sq.enqueue_single, kind="memory", n=n.enqueue), (hm,)),
        Scenario("sitq.memory.enq.declared", "enqueue",
                 "sitq-memory: await task.enqueue(), declared",
                 p(dq.enqueue_single, kind="memory", n=n.enqueue), ("sitq.memory.enq",)),
        Scenario("sitq.memory.enq_many", "enqueue",
                 f"sitq-memory: enqueue_many, batches of {sq.ENQUEUE_BATCH}",
                 p(sq.enqueue_many, kind="memory", n=n.enqueue_many), (hm,)),
        # one enqueue at a time on a server
        Scenario("celery.enq", "remote", "Celery on Redis: noop.delay()",
                 p(baseline_redis.celery_enqueue, n=n.enqueue_remote),
                 short="Celery on Redis", needs="redis"),
        Scenario("dramatiq.enq", "remote", "Dramatiq on Redis: actor.send()",
                 p(baseline_redis.dramatiq_enqueue, n=n.enqueue_remote),
                 short="Dramatiq on Redis", needs="redis"),
        Scenario("pg.raw_insert", "remote", "asyncpg: INSERT + commit per row (sitq's table)",
                 p(pg.raw_insert_each, n=n.enqueue_remote), short="raw asyncpg insert+commit",
                 needs="postgres"),
        Scenario("pg.enq_sync", "remote", "sitq-postgres: SyncTaskQueue.enqueue",
                 p(pg.enqueue_sync, n=n.enqueue_remote),
                 ("celery.enq", "dramatiq.enq", "pg.raw_insert"),
                 (Target("rate", TARGET_PG_SYNC_ENQUEUE),), needs="postgres"),
        # process pools
        Scenario("pool.map", "pool", f"ProcessPoolExecutor({POOL_WORKERS}).map",
                 p(baseline_pool.pool_map, n=n.pool, workers=POOL_WORKERS, warm=POOL_WARM),
                 short="ProcessPoolExecutor.map"),
        Scenario("huey.pool", "pool",
                 f"SqliteHuey NORMAL, consumer -k process -w {POOL_WORKERS}",
                 lazy("baseline_huey:process_pool", kind="sqlite-normal", n=n.pool,
                   workers=POOL_WORKERS, warm=POOL_WARM), short="Huey -k process"),
        Scenario("sitq.pool", "pool",
                 f'sitq-sqlite: worker_type="process", {POOL_WORKERS} processes',
                 p(sq.process_pool, n=n.pool, workers=POOL_WORKERS, warm=POOL_WARM),
                 ("huey.pool", "pool.map"),
                 (Target("ratio", 1.0, "huey.pool"), Target("ratio", 0.9, "pool.map"))),
        # processing
        Scenario(claim1, "process", "sqlite3: claim 1 row + mark done, loop",
                 p(baseline_sqlite.process_each, n=n.process)),
        Scenario(claim100, "process", "sqlite3: claim 100 rows + mark done, loop",
                 p(baseline_sqlite.process_batched, n=n.process), short="raw sqlite3, 100 a claim"),
        Scenario(hps, "process", "SqliteHuey defaults, consumer process",
                 lazy("baseline_huey:process_sqlite", kind="sqlite", n=n.process_slow)),
        Scenario(hpsn, "process", "SqliteHuey synchronous=NORMAL, consumer process",
                 lazy("baseline_huey:process_sqlite", kind="sqlite-normal", n=n.process),
                 short="Huey NORMAL"),
        Scenario(hpm, "process", "MemoryHuey, consumer thread in-process",
                 lazy("baseline_huey:process_memory", n=n.process), short="MemoryHuey"),
        Scenario(
            "sitq.sqlite.backend", "process", "sitq-sqlite backend alone: claim 100 + finish 100",
            p(sq.process_backend, kind="sqlite", n=n.process), (claim100,),
        ),
        Scenario(
            "sitq.sqlite.async.inline", "process", "sitq-sqlite: async no-op, worker in-process",
            p(sq.process_inline, kind="sqlite", fn="async", n=n.process), (claim1, claim100, hpsn),
        ),
        Scenario(
            "sitq.sqlite.async.inline.declared", "process",
            "sitq-sqlite: declared async no-op, in-process",
            p(dq.process_inline, kind="sqlite", n=n.process), ("sitq.sqlite.async.inline",),
        ),
        Scenario(
            "sitq.sqlite.async.child", "process", "sitq-sqlite: async no-op, worker process",
            p(sq.process_child, fn="async", n=n.process), (claim1, claim100, hpsn),
            (Target("rate", TARGET_SQLITE_PROCESS), Target("ratio", 2.3, hpsn)),
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
            (Target("ratio", 1.0, hpm), Target("rate", TARGET_MEMORY_PROCESS)),
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
        # deep backlogs
        Scenario("raw.backlog.shallow", "backlog",
                 f"sqlite3: claim 100 + mark done, {shallow} of {shallow} pending",
                 p(baseline_sqlite.process_backlog, n=n.backlog_run, depth=n.backlog_run),
                 short=f"raw sqlite3, {shallow} pending"),
        Scenario("raw.backlog.deep", "backlog",
                 f"sqlite3: claim 100 + mark done, {shallow} of {deep} pending",
                 p(baseline_sqlite.process_backlog, n=n.backlog_run, depth=n.backlog),
                 ("raw.backlog.shallow",), short="raw sqlite3, same statements"),
        Scenario("sitq.backlog.shallow", "backlog",
                 f"sitq-sqlite: async no-op, {shallow} of {shallow} pending",
                 p(sq.process_backlog, depth=n.backlog_run, n=n.backlog_run),
                 short=f"{shallow} pending"),
        Scenario("sitq.backlog.deep", "backlog",
                 f"sitq-sqlite: async no-op, {shallow} of {deep} pending",
                 p(sq.process_backlog, depth=n.backlog, n=n.backlog_run),
                 ("sitq.backlog.shallow",), (Target("ratio", 0.9, "sitq.backlog.shallow"),)),
        # PostgreSQL drain
        Scenario("procrastinate.drain", "postgres", "procrastinate, 1 worker process",
                 p(pg.procrastinate_drain, n=n.pg_process_slow), short="procrastinate",
                 needs="postgres"),
        Scenario("pg.drain", "postgres", "sitq-postgres: async no-op, worker process",
                 p(pg.drain, n=n.pg_process), ("procrastinate.drain",), needs="postgres"),
        # flow control
        *lq.scenarios(sqlite_n=n.process, pg_n=n.pg_process),
        # latency
        Scenario("sitq.sqlite.lat.inline", "latency", "sitq-sqlite, worker in-process",
                 p(sq.latency_inline, kind="sqlite", samples=n.latency)),
        Scenario("sitq.memory.lat.inline", "latency", "sitq-memory, worker in-process",
                 p(sq.latency_inline, kind="memory", samples=n.latency)),
        Scenario("sitq.sqlite.lat.child", "latency-remote",
                 "sitq-sqlite, worker process (defaults)",
                 p(sq.latency_child, samples=n.latency_remote, idle_seconds=n.idle_seconds),
                 targets=(Target("pickup", 0.005), Target("pickup", 0.020, q=0.99),
                          Target("result", 0.010))),
        Scenario("huey.sqlite.lat", "latency-remote", "SqliteHuey, consumer process (defaults)",
                 lazy("baseline_huey:latency_sqlite", kind="sqlite", samples=n.latency_remote,
                   idle_seconds=n.idle_seconds), short="SqliteHuey"),
        Scenario("celery.lat", "latency-remote", "Celery on Redis, worker process (prefork, 1)",
                 p(baseline_redis.celery_latency, samples=n.latency_remote,
                   idle_seconds=n.idle_seconds), short="Celery", needs="redis"),
        Scenario("pg.lat", "latency-remote", "sitq-postgres, worker process (defaults)",
                 p(pg.latency, samples=n.latency_remote, idle_seconds=n.idle_seconds),
                 short="sitq-postgres", needs="postgres"),
        # workflows
        *workflow_scenarios(),
    ]  # fmt: skip


def workflow_scenarios() -> list[Scenario]:
    """The chord's subjects (`workflow_subjects`), on SQLite and on PostgreSQL."""
    p = functools.partial
    rows = []
    for kind, needs in (("sqlite", ""), ("postgres", "postgres")):
        key, name = f"workflows.{kind}", f"sitq-{kind}"
        rows += [
            Scenario(f"{key}.enq", "workflows", f"{name}: enqueue the chord",
                     p(wf.chord_enqueue, kind=kind), needs=needs),
            Scenario(f"{key}.plain", "workflows", f"{name}: run {wf.CHORD_MEMBERS + 1:,} "
                     "no-ops, no workflow", p(wf.plain_run, kind=kind), needs=needs),
            Scenario(f"{key}.join", "workflows", f"{name}: run the chord until the "
                     "callback's result", p(wf.chord_join, kind=kind),
                     (f"{key}.plain", "workflows.celery"), needs=needs),
        ]  # fmt: skip
    label = (
        f"Celery on Redis: a chord of {wf.CELERY_CHORD_MEMBERS:,}, worker process, until the "
        "callback's result"
    )
    rows.append(Scenario("workflows.celery", "workflows", label, wf.celery_chord, needs="redis"))
    return rows


def workloads(n: Sizes) -> list[Workload]:
    """The headline: issue 12's table, then the rows sitq already led."""
    return [
        Workload("one SyncTaskQueue.enqueue at a time, SQLite", "sitq.sqlite.enq_sync",
                 ("huey.sqlite-normal.enq", "raw.insert1")),
        Workload("the same on PostgreSQL", "pg.enq_sync", ("celery.enq", "dramatiq.enq")),
        Workload("~1 ms CPU tasks, process pool of 2", "sitq.pool", ("huey.pool", "pool.map")),
        Workload("memory backend drain, in process", "sitq.memory.async.inline",
                 ("huey.memory.proc",)),
        Workload("idle pickup / result p50, SQLite worker in another process",
                 "sitq.sqlite.lat.child", ("celery.lat", "pg.lat", "huey.sqlite.lat"), "latency"),
        Workload(f"SQLite drain at {count(n.backlog)} pending vs {count(n.backlog_run)}",
                 "sitq.backlog.deep", ("raw.backlog.deep",), "depth"),
        Workload("SQLite drain, one worker process", "sitq.sqlite.async.child",
                 ("huey.sqlite-normal.proc", "raw.claim100")),
        Workload("enqueue_many, SQLite", "sitq.sqlite.enq_many", ("raw.insertN",)),
        Workload("PostgreSQL drain, one worker process", "pg.drain", ("procrastinate.drain",)),
        Workload("SQLite drain, limits stored but not binding vs none", "limits.sqlite.idle",
                 ("limits.sqlite.none",)),
        Workload("the same on PostgreSQL", "limits.pg.idle", ("limits.pg.none",)),
    ]  # fmt: skip


#: The entry points the bench loads: the backends only (see bench/README.md).
BACKEND_PLUGINS = "sqlite,memory,postgres"


def unavailable(chosen: list[Scenario]) -> dict[str, str]:
    """Why each service some chosen subject needs cannot be used here, by service."""
    checks = {"postgres": pg.problem, "redis": baseline_redis.problem}
    needed = {s.needs for s in chosen if s.needs}
    return {need: why for need in sorted(needed) if (why := checks[need]())}


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the rounds, print the tables."""
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
    parser.add_argument(
        "--markdown", metavar="PATH", help="also write the tables as Markdown to PATH"
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")

    logging.disable(logging.WARNING)  # lost-lease warnings etc. would be noise here
    sizes = QUICK if args.quick else FULL
    chosen = scenarios(sizes)
    if args.quick:
        chosen = [s for s in chosen if s.key not in QUICK_LEAVES_OUT]
        if not args.only:
            chosen = [s for s in chosen if not s.key.startswith(QUICK_ON_REQUEST)]
    if args.only:
        chosen = [
            s for s in chosen if any(t in s.key or t.lower() in s.label.lower() for t in args.only)
        ]
    if args.list:
        for s in chosen:
            needs = f"  [needs {s.needs}]" if s.needs else ""
            print(f"{s.key:<34} {s.label}{needs}")
        return 0
    if not chosen:
        parser.error("--only matched no subject (see --list)")

    began = time.perf_counter()
    skipped = unavailable(chosen)
    notes = [f"{need} rows skipped: {why}" for need, why in skipped.items()]
    chosen = [s for s in chosen if s.needs not in skipped]

    def progress(line: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - began:6.1f} s] {line}", file=sys.stderr, flush=True)

    for note in notes:
        progress(note)

    measured = run_rounds(chosen, args.rounds, progress=progress)
    tables = [headline(measured, workloads(sizes)), *details(measured, GROUPS)]
    mode = "quick" if args.quick else "full"
    took = time.perf_counter() - began
    title = f"sitq bench ({mode}, median of {args.rounds} interleaved rounds)"
    print(f"{title}; {machine()}")
    for note in notes:
        print(note)
    print(as_text(tables))
    print(f"\n(total {took:.0f} s)")
    if args.markdown:
        command = " ".join(["python bench/run.py", *(argv if argv is not None else sys.argv[1:])])
        with open(args.markdown, "w", encoding="utf-8") as out:
            out.write(f"# {title}\n\n{machine()}; {took:.0f} s\n\n`{command}`\n")
            for note in notes:
                out.write(f"\n{note}\n")
            out.write(as_markdown(tables) + "\n")
    failed = [m for m in measured.values() if m.errors]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
