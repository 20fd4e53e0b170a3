"""The worker processes of the bench (run by `procs`, never by hand).

``child.py sitq-drain TARGET N [TYPE WORKERS]`` runs one sitq worker until it has run N tasks
and prints ``{"ops": N, "seconds": …, "cpu": …}`` (``cpu``: CPU seconds of this process and
its descendants over the same span, e.g. a process pool); ``child.py sitq-serve TARGET`` runs
one until its stdin closes. TARGET is a SQLite file or a backend URL (``postgresql://…``).
``huey-drain KIND DB N``, ``huey-pool KIND DB N WORKERS`` and ``huey-serve KIND DB`` do the
same with a Huey consumer (one worker thread; WORKERS processes); ``pool-map N WORKERS`` runs
`workloads.cpu_1ms` N times through a bare ``ProcessPoolExecutor.map``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from procs import tree_cpu_seconds

#: Seconds between looks at Huey's result store while its process pool drains.
HUEY_POLL = 0.02


def open_queue(target: str) -> Any:
    """A `TaskQueue` on a SQLite file or a backend URL."""
    from sitq import TaskQueue

    if "://" in target:
        return TaskQueue(target)
    from sitq_sqlite import SQLiteBackend

    return TaskQueue(SQLiteBackend(target))


def sitq_drain(target: str, n: int, worker_type: str, workers: int | None) -> dict[str, float]:
    """One sitq worker (defaults, or the given type and size) until it ran ``n`` tasks."""
    from sitq import Worker

    async def main() -> tuple[float, float]:
        async with open_queue(target) as queue:
            worker = Worker(queue, max_tasks=n, worker_type=worker_type, max_workers=workers)
            cpu = tree_cpu_seconds()
            began = time.perf_counter()
            await worker.start()
            return time.perf_counter() - began, tree_cpu_seconds() - cpu

    seconds, cpu = asyncio.run(main())
    return {"ops": n, "seconds": seconds, "cpu": cpu}


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


def huey_pool(kind: str, path: str, n: int, workers: int) -> dict[str, float]:
    """A Huey consumer with ``workers`` worker processes (``huey_consumer -k process -w``)
    until ``n`` results are stored."""
    from huey_app import make_huey

    huey = make_huey(kind, path).huey
    huey.storage.close()  # the worker processes are forked: each opens its own connection
    consumer = huey.create_consumer(workers=workers, worker_type="process", periodic=False)
    cpu = tree_cpu_seconds()
    began = time.perf_counter()
    consumer.start()
    deadline = began + 300
    while huey.storage.result_store_size() < n:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"huey stored {huey.storage.result_store_size()} of {n} results")
        time.sleep(HUEY_POLL)
    seconds = time.perf_counter() - began
    used = tree_cpu_seconds() - cpu
    consumer.stop(graceful=True)
    return {"ops": n, "seconds": seconds, "cpu": used}


def pool_map(n: int, workers: int) -> dict[str, float]:
    """``ProcessPoolExecutor(workers).map(cpu_1ms, range(n))``, pool start included."""
    from concurrent.futures import ProcessPoolExecutor

    import workloads

    cpu = tree_cpu_seconds()
    began = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        for _ in pool.map(workloads.cpu_1ms, range(n)):
            pass
        seconds = time.perf_counter() - began
        used = tree_cpu_seconds() - cpu  # before the pool's processes end and their time is lost
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
        worker_type, workers = (args[2], int(args[3])) if len(args) > 2 else ("async", None)
        print(json.dumps(sitq_drain(args[0], int(args[1]), worker_type, workers)))
    elif mode == "sitq-serve":
        sitq_serve(args[0])
    elif mode == "huey-drain":
        print(json.dumps(huey_drain(args[0], args[1], int(args[2]))))
    elif mode == "huey-pool":
        print(json.dumps(huey_pool(args[0], args[1], int(args[2]), int(args[3]))))
    elif mode == "pool-map":
        print(json.dumps(pool_map(int(args[0]), int(args[1]))))
    elif mode == "huey-serve":
        huey_serve(args[0], args[1])
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
