"""The worker processes of the bench (run by `procs`, never by hand).

``child.py sitq-drain DB N`` runs one sitq worker until it has run N tasks and prints
``{"ops": N, "seconds": …}``; ``child.py sitq-serve DB`` runs one until its stdin closes. The
``huey-drain KIND DB N`` and ``huey-serve KIND DB`` modes do the same with a Huey consumer.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time


def sitq_drain(path: str, n: int) -> dict[str, float]:
    """One sitq worker (defaults) until it ran ``n`` tasks."""
    from sitq import TaskQueue, Worker
    from sitq_sqlite import SQLiteBackend

    async def main() -> float:
        async with TaskQueue(SQLiteBackend(path)) as queue:
            worker = Worker(queue, max_tasks=n)
            began = time.perf_counter()
            await worker.start()
            return time.perf_counter() - began

    return {"ops": n, "seconds": asyncio.run(main())}


def sitq_serve(path: str) -> None:
    """One sitq worker (defaults) until stdin closes."""
    from sitq import TaskQueue, Worker
    from sitq_sqlite import SQLiteBackend

    async def main() -> None:
        async with TaskQueue(SQLiteBackend(path)) as queue:
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

    huey, _, _ = make_huey(kind, path)
    return {"ops": n, "seconds": drain(huey, n, timeout=300)}


def huey_serve(kind: str, path: str) -> None:
    """A Huey consumer (defaults, one worker thread) until stdin closes."""
    from huey_app import make_huey

    huey, _, _ = make_huey(kind, path)
    consumer = huey.create_consumer(workers=1)
    consumer.start()
    print("ready", flush=True)
    sys.stdin.read()
    consumer.stop(graceful=True)


def main(argv: list[str]) -> None:
    """Dispatch on the mode."""
    mode, *args = argv
    if mode == "sitq-drain":
        print(json.dumps(sitq_drain(args[0], int(args[1]))))
    elif mode == "sitq-serve":
        sitq_serve(args[0])
    elif mode == "huey-drain":
        print(json.dumps(huey_drain(args[0], args[1], int(args[2]))))
    elif mode == "huey-serve":
        huey_serve(args[0], args[1])
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
