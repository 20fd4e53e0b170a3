"""The main job: a few thousand real tasks through a real worker on the default SQLite backend.

Run it from the repository root after installing ``sitq-core`` and ``sitq-sqlite``::

    python examples/main_job.py                 # 3,000 tasks in a fresh temporary sitq.db
    python examples/main_job.py --tasks 10000 --db ./sitq.db

It writes a small corpus of text documents, enqueues one call of a declared task per
document (word counting, SHA-256 over the text, a few that fail once and succeed on their
retry, and a few that are broken for good), runs one worker until every task is finished,
checks the stored results against the same work done in this process, and prints a summary:
done, failed, retried and tasks per second.

The tasks are declared on a `sitq.Blueprint` (this module has no queue of its own);
`main_job` registers it on the queue it opens.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sitq
from sitq import Blueprint, TaskQueue, TaskStatus, Worker
from sitq.handles import AsyncTaskHandle

FLAKY_EVERY = 25  # every 25th document is read from a "flaky" source that fails once
BROKEN_EVERY = 200  # every 200th document is corrupt: its task fails on every attempt
MAX_RETRIES = 2
WORDS = [
    *("queue", "worker", "task", "result", "retry", "lease", "backend", "plugin", "sqlite"),
    *("postgres", "event", "loop", "thread", "process", "payload", "serializer", "hook"),
    *("schedule", "priority", "timeout", "batch", "claim", "heartbeat"),
]


jobs = Blueprint()


@jobs.task(max_retries=MAX_RETRIES)
def word_count(path: str) -> dict[str, Any]:
    """Read a document and return its ten most common words, its word count and its digest."""
    text = Path(path).read_text()
    words = re.findall(r"[a-z]+", text.lower())
    return {
        "words": len(words),
        "top": collections.Counter(words).most_common(10),
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
    }


@jobs.task(max_retries=MAX_RETRIES)
def flaky_word_count(path: str) -> dict[str, Any]:
    """Like `word_count`, but its first attempt fails, as a call to a flaky service would."""
    if sitq.current_task().attempt == 1:
        raise ConnectionError(f"reading {path} timed out (the main job fails this once)")
    return word_count(path)


@jobs.task(max_retries=MAX_RETRIES)
def corrupt_word_count(path: str) -> dict[str, Any]:
    """Fails on every attempt, as a task given corrupt input does."""
    raise ValueError(f"{path} is not valid UTF-8 (the main job fails this one every time)")


def write_corpus(folder: Path, count: int, seed: int = 7) -> list[Path]:
    """Write ``count`` pseudo-random text documents of 200 to 800 words each."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        path = folder / f"doc{n:05d}.txt"
        path.write_text(" ".join(rng.choices(WORDS, k=rng.randint(200, 800))))
        paths.append(path)
    return paths


async def enqueue_documents(paths: list[Path]) -> list[AsyncTaskHandle[dict[str, Any]]]:
    """One task per document; every FLAKY_EVERY-th is flaky, every BROKEN_EVERY-th broken.

    The enqueues run concurrently: the queue writes the calls waiting together in one batch.
    """
    calls = []
    for n, path in enumerate(paths, start=1):
        if n % BROKEN_EVERY == 0:
            task = corrupt_word_count
        elif n % FLAKY_EVERY == 0:
            task = flaky_word_count
        else:
            task = word_count
        calls.append(task.enqueue(str(path)))
    return list(await asyncio.gather(*calls))


async def finished(queue: TaskQueue) -> bool:
    """True once no task is pending or running."""
    counts = await queue.counts()
    return counts[TaskStatus.PENDING] == counts[TaskStatus.RUNNING] == 0


async def main_job(db: Path, corpus_folder: Path, count: int, concurrency: int) -> int:
    """Enqueue ``count`` tasks into ``db``, run a worker until all finish, print a summary."""
    corpus = write_corpus(corpus_folder, count)
    async with TaskQueue(f"sqlite:///{db}") as queue:
        queue.register(jobs)
        began = time.perf_counter()
        handles = await enqueue_documents(corpus)
        enqueued = time.perf_counter() - began
        print(f"enqueued {len(handles):,} tasks into {db} in {enqueued:.2f} s", flush=True)

        # log_errors=False: the failures are expected, and the summary reports them
        worker = Worker(
            queue, max_workers=concurrency, retry_delay=0.05, poll_interval=0.1, log_errors=False
        )
        began = time.perf_counter()
        serving = asyncio.create_task(worker.start())
        deadline = time.monotonic() + 600  # bounded, so that a bug cannot hang the job
        while not await finished(queue):
            if time.monotonic() > deadline:
                raise TimeoutError(f"tasks still unfinished after 600 s: {await queue.counts()}")
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - began
        await worker.stop()
        await serving

        counts = await queue.counts()
        status = worker.get_status()
        results = [await queue.get_result(h.id, timeout=0) for h in handles]
        failures = [r for r in results if r.is_error]
        mismatches = 0
        step = max(1, count // 200)
        for result, path in zip(results[::step], corpus[::step], strict=True):
            # calling a declared task runs it here, inline: the same work, to compare with
            if result.is_success and result.value != word_count(str(path)):
                mismatches += 1

    done, failed = counts[TaskStatus.SUCCEEDED], counts[TaskStatus.FAILED]
    print(f"done:      {done:,}")
    print(f"failed:    {failed:,} (broken on every attempt, {MAX_RETRIES} retries each)")
    print(f"retried:   {status.tasks_retried:,} attempts put back for another try")
    print(f"attempts:  {status.tasks_processed:,} in {elapsed:.2f} s")
    print(f"tasks/s:   {len(handles) / elapsed:,.0f} (finished tasks per second of worker time)")
    if failures:
        print(f"one failure: {failures[0].error}")
    print(f"checked:   a sample of results against the same work done here: {mismatches} wrong")
    expected_failed = count // BROKEN_EVERY
    ok = failed == expected_failed and done == count - expected_failed and mismatches == 0
    print("main job: OK" if ok else "main job: UNEXPECTED COUNTS", flush=True)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the main job."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3000, help="how many tasks (default 3000)")
    parser.add_argument(
        "--db", type=Path, help="the SQLite file (default: sitq.db in a fresh temporary folder)"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="tasks run at once")
    args = parser.parse_args(argv)
    if args.tasks < 1:
        parser.error("--tasks must be at least 1")
    with tempfile.TemporaryDirectory(prefix="sitq-main-job-") as folder:
        db = args.db.resolve() if args.db is not None else Path(folder) / "sitq.db"
        return asyncio.run(main_job(db, Path(folder) / "corpus", args.tasks, args.concurrency))


if __name__ == "__main__":
    sys.exit(main())
