"""Pooling and routing: worker_id, several workers on one queue (one process or many),
should_process_task subclasses, named queues."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from test_worker_helpers import REGISTRY, add, async_sleep_then, backend_fixture, wait_until

import sitq
from sitq import SQLiteBackend, SyncTaskQueue, Task, TaskStatus, Worker
from sitq.backend import Backend

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_memory]

backend = backend_fixture()
TESTS = str(Path(__file__).parent)


def append_line(path: str, label: str) -> int:
    """Record a run of ``label`` in ``path`` (O_APPEND: safe across processes)."""
    time.sleep(0.002)
    with open(path, "a") as f:
        f.write(f"{label} {os.getpid()}\n")
    return os.getpid()


def record_run(name: str, label: str) -> str:
    """Record a run in the list registered as ``name`` (this process)."""
    REGISTRY[name].append(label)
    return label


def resize_image(name: str) -> str:
    """Stand-in for an image task."""
    return f"resized {name}"


def send_email(to: str) -> str:
    """Stand-in for a task image workers do not handle."""
    return f"sent to {to}"


# -- several workers ----------------------------------------------------------------------------


def test_worker_id_names_the_worker_in_each_record(tmp_path: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    task_id = queue.enqueue(add, 1, 2)
    Worker(queue, worker_id="worker_7").process_task(task_id)
    assert queue.get_task(task_id).worker_id == "worker_7"  # type: ignore[union-attr]
    assert Worker(queue).worker_id.count(":") == 2  # host:pid:random by default
    queue.close()


def test_several_workers_in_one_process_run_each_task_once(backend: Backend) -> None:
    REGISTRY["pool"] = []
    queue = SyncTaskQueue(backend)
    ids = [queue.enqueue(record_run, "pool", str(i)) for i in range(60)]
    workers = [Worker(queue, worker_id=f"worker_{i}", poll_interval=0.05) for i in range(4)]
    for worker in workers:
        worker.start()
    for task_id in ids:
        assert queue.get_result(task_id, timeout=20).is_success
    for worker in workers:
        worker.stop()
    assert sorted(REGISTRY["pool"], key=int) == [str(i) for i in range(60)]
    ran = Counter(queue.get_task(i).worker_id for i in ids)  # type: ignore[union-attr]
    assert sum(ran.values()) == 60 and set(ran) <= {f"worker_{i}" for i in range(4)}
    assert sum(w.get_status().tasks_processed for w in workers) == 60
    queue.close()


_WORKER_PROCESS = """
import sys, time
from sitq import SQLiteBackend, SyncTaskQueue, TaskStatus, Worker

queue = SyncTaskQueue(SQLiteBackend(sys.argv[1]))
worker = Worker(queue, worker_id=sys.argv[2], max_workers=4, poll_interval=0.02)
worker.start()
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    counts = queue.counts()
    if counts[TaskStatus.PENDING] == 0 and counts[TaskStatus.RUNNING] == 0:
        break
    time.sleep(0.05)
worker.stop()
queue.close()
"""


def test_workers_in_several_processes_run_each_task_once(tmp_path: Path) -> None:
    db, log = tmp_path / "q.db", tmp_path / "runs.log"
    queue = SyncTaskQueue(SQLiteBackend(db))
    ids = queue.enqueue_many([Task(append_line, (str(log), str(i))) for i in range(150)])
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(_WORKER_PROCESS))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")])}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(db), f"proc_{n}"],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    lines = log.read_text().split()
    labels = Counter(lines[0::2])
    assert labels == Counter(str(i) for i in range(150))  # each task ran exactly once
    assert all(queue.get_task(i).attempts == 1 for i in ids)  # type: ignore[union-attr]
    assert queue.counts()[TaskStatus.SUCCEEDED] == 150
    queue.close()


# -- routing by subclass ------------------------------------------------------------------------


class OnlyResizes(Worker):
    """Declines everything but resize_image, counting how often it is asked."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.asked: Counter[str] = Counter()

    def should_process_task(self, task: sitq.Task) -> bool:
        self.asked[task.id] += 1
        return getattr(task.function, "__name__", "") == "resize_image"


def test_a_declined_task_is_left_for_another_worker_and_not_reclaimed(backend: Backend) -> None:
    queue = SyncTaskQueue(backend)
    email = queue.enqueue(send_email, "ann@example.com")
    image = queue.enqueue(resize_image, "cat.png")
    picky = OnlyResizes(queue, worker_id="picky", poll_interval=0.02)
    picky.start()
    assert queue.get_result(image, timeout=10).value == "resized cat.png"
    time.sleep(0.3)  # ~15 polls: the declined task is not claimed again
    assert picky.asked[email] == 1
    assert queue.get_task(email).status is TaskStatus.PENDING  # type: ignore[union-attr]
    assert queue.get_task(email).attempts == 0  # type: ignore[union-attr]
    assert picky.get_status().tasks_processed == 1  # a decline is not an attempt
    general = Worker(queue, worker_id="general", poll_interval=0.02)
    general.start()
    assert queue.get_result(email, timeout=10).value == "sent to ann@example.com"
    assert queue.get_task(email).worker_id == "general"  # type: ignore[union-attr]
    general.stop()
    picky.stop()
    queue.close()


class ImageProcessingWorker(sitq.Worker):
    """The guide's specialized worker, as written there."""

    def __init__(self, queue: Any) -> None:
        super().__init__(queue)
        self.supported_functions = ["resize_image", "filter_image", "convert_image"]

    def should_process_task(self, task: sitq.Task) -> bool:
        """Check if worker should process this task."""
        return task.function.__name__ in self.supported_functions  # type: ignore[union-attr]

    def process_task(self, task_id: str) -> Any:
        """Process only supported tasks."""
        task = self.queue.get_task(task_id)
        if not self.should_process_task(task):  # type: ignore[arg-type]
            return sitq.Result(is_error=True, error="Task type not supported by this worker")
        return super().process_task(task_id)


def test_the_guides_image_processing_worker(tmp_path: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    worker = ImageProcessingWorker(queue)
    image = queue.enqueue(resize_image, "dog.png")
    email = queue.enqueue(send_email, "bob@example.com")
    assert worker.process_task(image).value == "resized dog.png"
    refused = worker.process_task(email)
    assert refused.is_error and refused.error == "Task type not supported by this worker"
    assert queue.get_task(email).status is TaskStatus.PENDING  # type: ignore[union-attr]
    # running, it declines the email task and leaves it in the queue
    worker.poll_interval = 0.02
    worker.start()
    more = queue.enqueue(resize_image, "fox.png")
    assert queue.get_result(more, timeout=10).is_success
    worker.stop()
    assert queue.get_task(email).status is TaskStatus.PENDING  # type: ignore[union-attr]
    queue.close()


def test_should_process_task_that_raises_declines_the_task(tmp_path: Path) -> None:
    class Broken(Worker):
        def should_process_task(self, task: sitq.Task) -> bool:
            raise RuntimeError("routing bug")

    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    task_id = queue.enqueue(add, 1, 1)
    worker = Broken(queue, poll_interval=0.02)
    worker.run(duration=0.3)
    assert queue.get_task(task_id).status is TaskStatus.PENDING  # type: ignore[union-attr]
    queue.close()


# -- named queues -------------------------------------------------------------------------------


def test_named_queues(backend: Backend) -> None:
    queue = SyncTaskQueue(backend)
    email = queue.enqueue(send_email, "cy@example.com", queue="emails")
    image = queue.enqueue(resize_image, "owl.png", queue="images")
    plain = queue.enqueue(add, 1, 1)
    emails_only = Worker(queue, queues=["emails"], poll_interval=0.02)
    emails_only.run(duration=0.3)
    assert queue.get_task(email).status is TaskStatus.SUCCEEDED  # type: ignore[union-attr]
    assert queue.get_task(image).status is TaskStatus.PENDING  # type: ignore[union-attr]
    assert queue.get_task(plain).status is TaskStatus.PENDING  # type: ignore[union-attr]
    everything = Worker(queue, poll_interval=0.02)
    everything.start()
    assert queue.get_result(image, timeout=10).is_success
    assert queue.get_result(plain, timeout=10).is_success
    everything.stop()
    queue.close()


def test_a_slow_task_on_one_worker_does_not_block_another(tmp_path: Path) -> None:
    queue = SyncTaskQueue(SQLiteBackend(tmp_path / "q.db"))
    slow = queue.enqueue(async_sleep_then, 30, "slow")
    a = Worker(queue, worker_id="a", max_workers=1, poll_interval=0.02, graceful_shutdown=0)
    b = Worker(queue, worker_id="b", max_workers=1, poll_interval=0.02)
    a.start()
    wait_until(lambda: a.get_status().current_task_id == slow, what="a runs the slow task")
    b.start()
    quick = queue.enqueue(add, 5, 5)
    assert queue.get_result(quick, timeout=20).value == 10
    assert queue.get_task(quick).worker_id == "b"  # type: ignore[union-attr]
    b.stop()
    a.stop()  # hands the slow task back at once
    assert queue.get_task(slow).status is TaskStatus.PENDING  # type: ignore[union-attr]
    queue.close()
