"""Celery and Dramatiq on Redis: one enqueue at a time from plain code, and Celery's idle
pickup and result latency with its worker in another process.

Redis is ``SITQ_BENCH_REDIS`` (default db 11 of 127.0.0.1:6379). Every key the bench writes
there starts with a prefix of this run, deleted after each subject: other programs' keys, and
other runs of the bench, are left alone.
"""

from __future__ import annotations

import os
import sys
import time
import uuid

from harness import IDLE_GAP, Clock, Sample
from procs import idle_cpu_percent, start_process

REDIS_URL = os.environ.setdefault("SITQ_BENCH_REDIS", "redis://127.0.0.1:6379/11")
#: This run's key prefix, also read by `celery_app` in the worker process.
PREFIX = os.environ.setdefault("SITQ_BENCH_PREFIX", f"sitq-bench-{uuid.uuid4().hex[:8]}:")


def delete_keys() -> None:
    """Delete every key of this run."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=PREFIX + "*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()


def celery_enqueue(folder: str, n: int) -> Sample:
    """``noop.delay()`` n times (a task without a stored result: Celery's fastest send)."""
    from celery_app import noop

    try:
        noop.delay()  # connect outside the timing
        clock = Clock()
        for _ in range(n):
            noop.delay()
        return clock.sample(n)
    finally:
        delete_keys()


def dramatiq_enqueue(folder: str, n: int) -> Sample:
    """``actor.send()`` n times on Dramatiq's Redis broker."""
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=REDIS_URL, namespace=PREFIX + "dramatiq")
    try:
        actor = dramatiq.actor(_dramatiq_noop, broker=broker, actor_name="noop")
        actor.send()
        clock = Clock()
        for _ in range(n):
            actor.send()
        return clock.sample(n)
    finally:
        broker.close()
        delete_keys()


def _dramatiq_noop() -> None:
    """Does nothing."""


#: ``celery worker`` as a user starts it, one prefork child, none of the cluster chatter.
CELERY_WORKER = (
    "-m", "celery", "-A", "celery_app", "worker", "--pool=prefork", "--concurrency=1",
    "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=WARNING",
)  # fmt: skip


def celery_latency(folder: str, samples: int, idle_seconds: float) -> Sample:
    """Idle pickup and result latency, Celery worker in another process."""
    from celery_app import QUEUE, stamp

    command = [sys.executable, *CELERY_WORKER, "--queues", QUEUE]
    try:
        with start_process(command) as proc:
            stamp.delay().get(timeout=60)  # the worker is up
            sample = Sample()
            for _ in range(samples):
                time.sleep(IDLE_GAP)
                began = time.time()
                started = stamp.delay().get(timeout=30)
                sample.latencies.append(time.time() - began)
                sample.pickups.append(started - began)
            sample.idle_cpu_percent = idle_cpu_percent(proc.pid, idle_seconds)
            return sample
    finally:
        delete_keys()


def problem() -> str | None:
    """Why the Redis rows cannot run here (a package missing, no server), or None."""
    try:
        import celery  # noqa: F401
        import dramatiq  # noqa: F401
        import redis
    except ImportError as exc:
        return f"{exc.name} is not installed (pip install -r bench/requirements.txt)"
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        client.ping()
        client.close()
    except Exception as exc:  # any reason at all: the rows are skipped with it
        return f"no server at {REDIS_URL} ({type(exc).__name__}: {exc})"
    return None
