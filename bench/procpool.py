"""Process pools on ~1 ms CPU tasks: sitq ``worker_type="process"`` beside a bare
`concurrent.futures.ProcessPoolExecutor.map` and Huey's process consumer, in one run.

    python bench/procpool.py [--tasks 2000] [--rounds 3] [--workers 2] [--only sitq,pool,...]

Every subject is warmed up first (children started, modules imported), then runs ``--tasks``
calls of `burn` (1 ms of CPU time, so a busy machine does not shrink the work). The rate is
tasks / seconds from the first enqueue (or ``map``) to the last result. CPU is user + system
time of the whole process tree doing the work (sitq's worker process and its children, Huey's
consumer and its children, this process and its pool for the executor), read with psutil
before and after; "over" is that per task minus `burn`'s own. For sitq the worker process's
own share is shown too (the rest is its children); ``executor`` is sitq's process executor
alone, called the way a worker calls it, without the worker and the store. Like `run.py`,
the sitq worker runs with ``SITQ_PLUGINS=sqlite,memory,postgres`` unless set: without the
dev venv's hook plugins.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
WORK_SECONDS = 0.001
WARMUP = 20
BATCH = 1000


def burn() -> int:
    """About 1 ms of this process's CPU time."""
    began = time.process_time()
    n = 0
    while time.process_time() - began < WORK_SECONDS:
        n += 1
    return n


def burn_item(_: int) -> int:
    """`burn`, taking the item of a ``map``."""
    return burn()


def work_cpu() -> float:
    """CPU seconds one `burn` takes here."""
    began = time.process_time()
    for _ in range(200):
        burn()
    return (time.process_time() - began) / 200


def cpu_of(proc: psutil.Process) -> float:
    """User + system CPU seconds of one process (0 if it is gone)."""
    try:
        t = proc.cpu_times()
    except psutil.Error:
        return 0.0
    return float(t.user + t.system)


def tree_cpu(root: psutil.Process) -> float:
    """User + system CPU seconds of ``root`` and its living descendants."""
    return sum(cpu_of(p) for p in [root, *root.children(recursive=True)])


@dataclass
class Run:
    """One subject's round: wall seconds, tree CPU seconds, and the parent's share of it."""

    seconds: float
    cpu: float
    parent_cpu: float | None = None


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a subject's processes: this folder importable, hook plugins off."""
    path = os.pathsep.join(p for p in (HERE, os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, **extra}
    env.setdefault("SITQ_PLUGINS", "sqlite,memory,postgres")
    return env


# -- huey -------------------------------------------------------------------------------------


def make_huey(path: str) -> tuple[Any, Any]:
    """A SqliteHuey (``synchronous=NORMAL``) on ``path`` and its `burn` task."""
    from huey import SqliteHuey
    from huey_app import NormalSyncStorage

    huey = SqliteHuey("procpool", filename=path, storage_class=NormalSyncStorage)
    return huey, huey.task()(burn)


if os.environ.get("PROCPOOL_HUEY_PATH"):  # in huey_consumer: the instance it serves
    huey, _ = make_huey(os.environ["PROCPOOL_HUEY_PATH"])


def run_huey(folder: str, n: int, workers: int) -> Run:
    """``huey_consumer -k process -w workers`` on n tasks."""
    path = os.path.join(folder, "huey.db")
    _, task = make_huey(path)
    command = [
        os.path.join(os.path.dirname(sys.executable), "huey_consumer"),
        "procpool.huey", "-k", "process", "-w", str(workers), "-q", "-d", "0.001", "-m", "0.005",
    ]  # fmt: skip
    consumer = subprocess.Popen(command, env=child_env(PROCPOOL_HUEY_PATH=path))
    try:
        for r in [task() for _ in range(WARMUP)]:
            r.get(blocking=True, timeout=60)
        proc = psutil.Process(consumer.pid)
        cpu0, began = tree_cpu(proc), time.perf_counter()
        results = [task() for _ in range(n)]
        for r in results:
            r.get(blocking=True, timeout=300)
        return Run(time.perf_counter() - began, tree_cpu(proc) - cpu0)
    finally:
        consumer.send_signal(signal.SIGINT)
        consumer.wait(30)


# -- ProcessPoolExecutor ----------------------------------------------------------------------


def run_pool(folder: str, n: int, workers: int) -> Run:
    """``ProcessPoolExecutor(workers).map`` (forkserver, as sitq) over n items."""
    ctx = multiprocessing.get_context("forkserver")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        list(pool.map(burn_item, range(WARMUP)))
        me = psutil.Process()
        cpu0, began = tree_cpu(me), time.perf_counter()
        list(pool.map(burn_item, range(n)))
        return Run(time.perf_counter() - began, tree_cpu(me) - cpu0)


# -- sitq -------------------------------------------------------------------------------------


def sitq_worker(path: str, workers: int) -> None:
    """The sitq worker process (this file with ``--sitq-worker``): serves until SIGTERM."""
    from sitq import SyncTaskQueue, Worker
    from sitq_sqlite import SQLiteBackend

    queue = SyncTaskQueue(SQLiteBackend(path))
    worker = Worker(queue, worker_type="process", max_workers=workers, poll_interval=0.05)
    profile = os.environ.get("PROCPOOL_PROFILE")  # a file: cProfile of the worker's loop thread
    if not profile:
        worker.run()
        return
    import cProfile

    with cProfile.Profile(time.thread_time) as prof:
        worker.run()
    prof.dump_stats(profile)


def run_sitq(folder: str, n: int, workers: int) -> Run:
    """A sitq process worker (a process of its own, as ``sitq worker``) on a SQLite file."""
    return asyncio.run(_run_sitq(os.path.join(folder, "sitq.db"), n, workers))


async def _run_sitq(path: str, n: int, workers: int) -> Run:
    from sitq import TaskQueue, TaskStatus
    from sitq_sqlite import SQLiteBackend

    async def wait_done(queue: TaskQueue, total: int) -> None:
        while (await queue.counts())[TaskStatus.SUCCEEDED] < total:  # noqa: ASYNC110
            await asyncio.sleep(0.005)

    async with TaskQueue(SQLiteBackend(path)) as queue:
        command = [sys.executable, __file__, "--sitq-worker", path, str(workers)]
        worker = subprocess.Popen(command, env=child_env())  # noqa: ASYNC220
        try:
            await queue.enqueue_many([burn] * WARMUP)
            await wait_done(queue, WARMUP)
            proc = psutil.Process(worker.pid)
            cpu0, parent0, began = tree_cpu(proc), cpu_of(proc), time.perf_counter()
            for start in range(0, n, BATCH):
                await queue.enqueue_many([burn] * min(BATCH, n - start))
            await wait_done(queue, WARMUP + n)
            took = time.perf_counter() - began
            return Run(took, tree_cpu(proc) - cpu0, cpu_of(proc) - parent0)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)


def run_executor(folder: str, n: int, workers: int) -> Run:
    """sitq's `ProcessExecutor` alone, no worker or store: ``workers`` callers in this process
    each run one stored call after another, as a worker's slots do."""
    return asyncio.run(_run_executor(n, workers))


async def _run_executor(n: int, workers: int) -> Run:
    from sitq.executors import Call
    from sitq.payload import Codec, serializer_entry
    from sitq.plugins import get_plugin_manager
    from sitq.processes import ProcessExecutor

    codec = Codec(serializer_entry("cloudpickle", get_plugin_manager()))
    payload = codec.encode_call(burn, (), {})
    executor = ProcessExecutor(workers)
    await executor.start()

    async def caller(calls: int) -> None:
        for _ in range(calls):
            await executor.run(Call(burn, (), {}, payload=payload, serializer=codec))

    try:
        await asyncio.gather(*(caller(WARMUP) for _ in range(workers)))
        me = psutil.Process()
        cpu0, began = tree_cpu(me), time.perf_counter()
        await asyncio.gather(*(caller(n // workers) for _ in range(workers)))
        return Run(time.perf_counter() - began, tree_cpu(me) - cpu0)
    finally:
        await executor.close()


SUBJECTS: dict[str, Callable[[str, int, int], Run]] = {
    "sitq": run_sitq,
    "executor": run_executor,
    "pool": run_pool,
    "huey": run_huey,
}


def main() -> None:
    """Interleaved rounds of every subject; medians, and ratios paired by round."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", default=",".join(SUBJECTS), help="subjects, comma-separated")
    args = parser.parse_args()
    n, names = args.tasks, [s for s in args.only.split(",") if s in SUBJECTS]
    work = work_cpu()
    runs: dict[str, list[Run]] = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            with tempfile.TemporaryDirectory() as folder:
                runs[name].append(SUBJECTS[name](folder, n, args.workers))
    print(
        f"burn: {work * 1e3:.3f} ms CPU; {n} tasks, {args.workers} processes, {args.rounds} rounds"
    )
    for name, samples in runs.items():
        rate = statistics.median(n / r.seconds for r in samples)
        over = statistics.median(r.cpu / n - work for r in samples)
        spread = ", ".join(f"{n / r.seconds:,.0f}" for r in samples)
        line = f"{name:>8}: {rate:7,.0f}/s [{spread}]  +{over * 1e3:.3f} ms CPU/task over the work"
        if samples[0].parent_cpu is not None:
            parent = statistics.median((r.parent_cpu or 0.0) / n for r in samples)
            line += f" (worker process {parent * 1e3:.3f})"
        for other in names:
            if other != name:
                paired = statistics.median(
                    b.seconds / a.seconds for a, b in zip(samples, runs[other], strict=True)
                )
                line += f"  {paired:.2f}x {other}"
        print(line)


if __name__ == "__main__":  # as the module, so that children find `burn` by its name
    sys.path.insert(0, HERE)
    import procpool

    if sys.argv[1:2] == ["--sitq-worker"]:
        procpool.sitq_worker(sys.argv[2], int(sys.argv[3]))
    else:
        procpool.main()
