"""The worker processes of the bench (run by `procs`, never by hand).

``child.py sitq-drain TARGET N [TYPE WORKERS WARM]`` runs one sitq worker until it has run N
tasks and prints ``{"ops": N, "seconds": …, "cpu": …}`` (``cpu``: CPU seconds of this process
and its descendants over the same span, e.g. a process pool); with WARM, the span starts once
the first WARM tasks ran (a pool started and warm) and ``ops`` is N - WARM. ``child.py
sitq-serve TARGET`` runs one until its stdin closes. TARGET is a SQLite file or a backend URL
(``postgresql://…``). ``huey-drain KIND DB N``, ``huey-pool KIND DB N WORKERS WARM`` and
``huey-serve KIND DB`` do the same with a Huey consumer (one worker thread; WORKERS
processes); ``pool-map N WORKERS WARM`` runs `workloads.cpu_1ms` WARM then N times through a
bare ``ProcessPoolExecutor.map``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from procs import tree_cpu_seconds

#: Seconds between looks at how many tasks a pool has run (its warm-up, Huey's results).
WARM_POLL = 0.005


def open_queue(target: str) -> Any:
    """A `TaskQueue` on a SQLite file or a backend URL."""
    from sitq import TaskQueue

    if "://" in target:
        return TaskQueue(target)
    from sitq_sqlite import SQLiteBackend

    return TaskQueue(SQLiteBackend(target))


def sitq_drain(
    target: str, n: int, worker_type: str, workers: int | None, warm: int
) -> dict[str, float]:
    """One sitq worker (defaults, or the given type and size) until it ran ``n`` tasks; timed
    from its start, or once it ran the first ``warm`` of them (a pool started and warm)."""
    from sitq import TaskStatus, Worker

    async def main() -> tuple[float, float]:
        async with open_queue(target) as queue:
            worker = Worker(queue, max_tasks=n, worker_type=worker_type, max_workers=workers)
            cpu, began = tree_cpu_seconds(), time.perf_counter()
            serving = asyncio.ensure_future(worker.start())
            # the store is the only public place that says how many ran: polled, warm-up only
            while warm and (await queue.counts())[TaskStatus.SUCCEEDED] < warm:  # noqa: ASYNC110
                await asyncio.sleep(WARM_POLL)
            if warm:
                cpu, began = tree_cpu_seconds(), time.perf_counter()
            await serving
            return time.perf_counter() - began, tree_cpu_seconds() - cpu

    seconds, cpu = asyncio.run(main())
    return {"ops": n - warm, "seconds": seconds, "cpu": cpu}


def sitq_serve(target: str) -> None:
    """One sitq worker (defaults) until stdin closes."""
    from sitq import Worker

    async def main() -> None:
        async with open_queue(target) as queue:
            worker = Worker(queue)
            serving = asyncio.ensure_future(worker.start())
            await asyncio.sleep(0.05)
            print("ready", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
            await worker.stop()
            await serving

    asyncio.run(main())


def huey_drain(kind: str, path: str, n: int) -> dict[str, float]:
    """One Huey consumer worker thread until ``n`` tasks completed."""
    from baseline_huey import drain
    from huey_app import make_huey

    huey = make_huey(kind, path).huey
    cpu = tree_cpu_seconds()
    seconds = drain(huey, n, timeout=300)
    return {"ops": n, "seconds": seconds, "cpu": tree_cpu_seconds() - cpu}


def huey_pool(kind: str, path: str, n: int, workers: int, warm: int) -> dict[str, float]:
    """A Huey consumer with ``workers`` worker processes (``huey_consumer -k process -w``)
    until ``n`` results are stored, timed once the first ``warm`` are."""
    from huey_app import make_huey

    huey = make_huey(kind, path).huey
    huey.storage.close()  # the worker processes are forked: each opens its own connection
    consumer = huey.create_consumer(workers=workers, worker_type="process", periodic=False)
    consumer.start()
    deadline = time.perf_counter() + 300
    for stored in (warm, n):
        while huey.storage.result_store_size() < stored:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"huey stored {huey.storage.result_store_size()} of {n}")
            time.sleep(WARM_POLL)
        if stored == warm:
            cpu, began = tree_cpu_seconds(), time.perf_counter()
    seconds = time.perf_counter() - began
    used = tree_cpu_seconds() - cpu
    consumer.stop(graceful=True)
    return {"ops": n - warm, "seconds": seconds, "cpu": used}


def pool_map(n: int, workers: int, warm: int) -> dict[str, float]:
    """``ProcessPoolExecutor(workers).map(cpu_1ms, …)``: ``warm`` calls, then ``n`` timed."""
    from concurrent.futures import ProcessPoolExecutor

    import workloads

    with ProcessPoolExecutor(workers) as pool:
        for _ in pool.map(workloads.cpu_1ms, range(warm)):
            pass
        cpu, began = tree_cpu_seconds(), time.perf_counter()
        for _ in pool.map(workloads.cpu_1ms, range(n)):
            pass
        seconds = time.perf_counter() - began
        used = tree_cpu_seconds() - cpu
    return {"ops": n, "seconds": seconds, "cpu": used}


def huey_serve(kind: str, path: str) -> None:
    """A Huey consumer (defaults, one worker thread) until stdin closes."""
    from huey_app import make_huey

    huey = make_huey(kind, path).huey
    consumer = huey.create_consumer(workers=1)
    consumer.start()
    print("ready", flush=True)
    sys.stdin.read()
    consumer.stop(graceful=True)


def main(argv: list[str]) -> None:
    """Dispatch on the mode."""
    mode, *args = argv
    if mode == "sitq-drain":
        worker_type, workers, warm = (
            (args[2], int(args[3]), int(args[4])) if len(args) > 2 else ("async", None, 0)
        )
        print(json.dumps(sitq_drain(args[0], int(args[1]), worker_type, workers, warm)))
    elif mode == "sitq-serve":
        sitq_serve(args[0])
    elif mode == "huey-drain":
        print(json.dumps(huey_drain(args[0], args[1], int(args[2]))))
    elif mode == "huey-pool":
        print(json.dumps(huey_pool(args[0], args[1], *map(int, args[2:5]))))
    elif mode == "pool-map":
        print(json.dumps(pool_map(*map(int, args[0:3]))))
    elif mode == "huey-serve":
        huey_serve(args[0], args[1])
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
