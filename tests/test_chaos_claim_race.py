"""Claim race: 2 to 16 processes claim from one SQLite file at once (threads with their own
event loops on one memory store). No task is ever claimed twice, every task is claimed, and
no "database is locked" error reaches the caller.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from sitq import MemoryBackend, SQLiteBackend
from sitq.backend import Backend, TaskRecord
from sitq.task import new_task_id

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_memory]

TASKS = 3000

#: One claimer: ``python -c CLAIMER DB GO_FILE SEED``; prints its claims as JSON.
CLAIMER = textwrap.dedent(
    """
    import asyncio, json, os, random, sys, time
    from sitq.backend import Outcome
    from sitq_sqlite import SQLiteBackend

    async def main(db, go, seed):
        rng = random.Random(seed)
        backend = SQLiteBackend(db)
        await backend.connect()
        open(f"{go}.ready{seed}", "w").close()
        while not os.path.exists(go):
            time.sleep(0.005)
        claimed, errors, empty = [], [], 0
        while empty < 3:
            try:
                got = await backend.claim(
                    worker_id=f"p{seed}", limit=rng.randint(1, 8), lease_seconds=300
                )
                if not got:
                    empty += 1
                    continue
                empty = 0
                claimed.extend(r.id for r in got)
                applied = await backend.finish(
                    [Outcome.succeeded(r.id, r.lease_token, b"") for r in got]
                )
                if not all(applied):
                    errors.append("finish refused")
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
        await backend.close()
        print(json.dumps({"claimed": claimed, "errors": errors}))

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


def records(n: int) -> list[TaskRecord]:
    return [
        TaskRecord(id=new_task_id(), function="m:f", payload=b"[]", serializer="json")
        for _ in range(n)
    ]


async def fill(backend: Backend, n: int) -> list[str]:
    await backend.connect()
    ids = await backend.enqueue_many(records(n))
    return ids


def check(ids: list[str], claims: list[list[str]], errors: list[str]) -> None:
    everything = [task_id for claimed in claims for task_id in claimed]
    assert not errors, errors[:5]
    assert len(everything) == len(set(everything)), (
        f"{len(everything) - len(set(everything))} duplicate claims"
    )
    assert set(everything) == set(ids), "some tasks were never claimed"
    assert sum(1 for c in claims if c) > 1, "only one claimer got anything: no race happened"


@pytest.mark.parametrize("processes", [2, 8, 16])
def test_processes_claiming_from_one_sqlite_file(tmp_path: Path, processes: int) -> None:
    db = tmp_path / "race.db"

    async def prepare() -> list[str]:
        backend = SQLiteBackend(db)
        try:
            return await fill(backend, TASKS)
        finally:
            await backend.close()

    ids = asyncio.run(prepare())
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, str(db), str(go), str(seed)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for seed in range(processes)
    ]
    # Start the race only once every claimer is connected: a claimer still importing when
    # the others have emptied the store would make no race at all on a loaded machine.
    deadline = time.monotonic() + 60
    try:
        while not all((tmp_path / f"go.ready{seed}").exists() for seed in range(processes)):
            assert all(p.poll() is None for p in procs), "a claimer exited before the race"
            assert time.monotonic() < deadline, "the claimers did not connect within 60 s"
            time.sleep(0.01)
    except AssertionError:
        for p in procs:
            p.kill()
        raise
    go.touch()
    claims, errors = [], []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
        report = json.loads(out)
        claims.append(report["claimed"])
        errors.extend(report["errors"])
        assert b"locked" not in err, err.decode()
    check(ids, claims, errors)


def test_threads_claiming_from_one_memory_store() -> None:
    backend = MemoryBackend()
    ids = asyncio.run(fill(backend, TASKS))
    go = threading.Event()
    claims: list[list[str]] = [[] for _ in range(16)]
    errors: list[str] = []

    async def claimer(i: int) -> None:
        rng = random.Random(i)
        empty = 0
        while empty < 3:
            got = await backend.claim(worker_id=f"t{i}", limit=rng.randint(1, 8), lease_seconds=300)
            if not got:
                empty += 1
                continue
            empty = 0
            claims[i].extend(r.id for r in got)
            # a real pause gives up the GIL, so the threads interleave (sleep(0) does not:
            # one thread could then drain the store within one GIL slice)
            await asyncio.sleep(0.001)

    def main(i: int) -> None:
        go.wait(10)
        try:
            asyncio.run(claimer(i))
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=main, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    check(ids, claims, errors)
