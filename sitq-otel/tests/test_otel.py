"""sitq-otel: in process with the SDK's in-memory exporter, and across real processes (the test
enqueues inside a span; a worker process, with the plugin loaded from its entry point, runs
the task and writes the spans it recorded to a file)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import sitq
from sitq import TaskQueue, TaskStatus, Worker
from sitq.plugins import PluginManager
from sitq_memory import MemoryBackend
from sitq_otel import OpenTelemetryTracing
from sitq_sqlite import SQLiteBackend

#: The functions the worker process runs, written to a module it imports.
TASKS = """
from opentelemetry import trace


async def greet(name):
    with trace.get_tracer("otel_tasks").start_as_current_span("inside greet"):
        return f"hello {name}"


def fail():
    raise ValueError("no luck")
"""

#: The worker process: the SDK with an in-memory exporter as the global provider, a worker
#: whose plugins come from the installed entry points, one run, the spans dumped as JSON.
WORKER = """
import json, sys

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

from sitq import SyncTaskQueue, Worker

url, out, *task_ids = sys.argv[1:]
queue = SyncTaskQueue(url)
worker = Worker(queue, max_retries=0)
assert "otel" in [p.name for p in worker.plugins.list_plugins()], "entry point not loaded"
worker.process_tasks(task_ids)
queue.close()
spans = [
    {
        "name": span.name,
        "trace_id": span.context.trace_id,
        "span_id": span.context.span_id,
        "parent_span_id": span.parent.span_id if span.parent else None,
        "attributes": dict(span.attributes),
        "status": span.status.status_code.name,
        "events": [event.name for event in span.events],
    }
    for span in exporter.get_finished_spans()
]
with open(out, "w") as f:
    json.dump(spans, f)
"""


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


async def add(a: int, b: int) -> int:
    return a + b


def broken() -> None:
    raise KeyError("missing")


def span_named(spans: tuple[ReadableSpan, ...], prefix: str) -> ReadableSpan:
    (found,) = [span for span in spans if span.name.startswith(prefix)]
    return found


# -- in process ------------------------------------------------------------------------------


def run_in_process(provider: TracerProvider, *functions: Any) -> list[sitq.Result]:
    """Enqueue each function (with args ``(1, 2)`` for `add`) inside a span named
    ``enqueue``, then run them with a worker; both use the plugin on ``provider``."""

    async def main() -> list[sitq.Result]:
        plugins = PluginManager(autoload=False, plugins=[OpenTelemetryTracing(provider)])
        queue = TaskQueue(MemoryBackend(), plugins=plugins)
        with provider.get_tracer("test").start_as_current_span("enqueue"):
            ids = [
                await queue.enqueue(function, *((1, 2) if function is add else ()))
                for function in functions
            ]
        for task_id in ids:
            assert set((await queue.get_task(task_id)).meta) >= {"traceparent"}  # type: ignore[union-attr]
        results = await Worker(queue, max_retries=0).process_tasks_async(ids)
        await queue.close()
        return results

    return asyncio.run(main())


def test_a_task_span_is_the_child_of_the_enqueuing_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    (result,) = run_in_process(provider, add)
    assert result.value == 3
    spans = exporter.get_finished_spans()
    enqueue, run = span_named(spans, "enqueue"), span_named(spans, "run ")
    assert run.context is not None and enqueue.context is not None and run.parent is not None
    assert run.context.trace_id == enqueue.context.trace_id
    assert run.parent.span_id == enqueue.context.span_id
    assert run.kind is trace.SpanKind.CONSUMER
    assert run.name == f"run {__name__}:add"
    assert (
        dict(run.attributes or {}).items()
        >= {
            "sitq.task.name": f"{__name__}:add",
            "sitq.task.id": result.task_id,
            "sitq.task.attempt": 1,
            "sitq.task.queue": "default",
            "sitq.task.outcome": "succeeded",
        }.items()
    )
    assert run.status.status_code is StatusCode.UNSET


def test_a_failed_task_span_has_an_error_status_and_the_exception(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    (result,) = run_in_process(provider, broken)
    assert result.status is TaskStatus.FAILED
    run = span_named(exporter.get_finished_spans(), "run ")
    assert run.status.status_code is StatusCode.ERROR
    assert run.status.description == "KeyError: 'missing'"
    assert (run.attributes or {})["sitq.task.outcome"] == "failed"
    assert [event.name for event in run.events] == ["exception"]
    assert (run.events[0].attributes or {})["exception.type"] == "KeyError"


def test_outside_a_trace_nothing_is_added_and_the_task_span_is_a_root(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async def main() -> None:
        plugins = PluginManager(autoload=False, plugins=[OpenTelemetryTracing(provider)])
        queue = TaskQueue(MemoryBackend(), plugins=plugins)
        task_id = await queue.enqueue(add, 2, 2)
        assert (await queue.get_task(task_id)).meta == {}  # type: ignore[union-attr]
        assert (await Worker(queue).process_task_async(task_id)).value == 4
        await queue.close()

    asyncio.run(main())
    (run,) = exporter.get_finished_spans()
    assert run.parent is None


# -- across processes ------------------------------------------------------------------------


def test_the_worker_process_continues_the_enqueuers_trace(
    tmp_path: Path, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    (tmp_path / "otel_tasks.py").write_text(TASKS)
    url = f"sqlite:///{tmp_path / 'tasks.db'}"

    async def enqueue() -> list[str]:
        plugins = PluginManager(autoload=False, plugins=[OpenTelemetryTracing(provider)])
        backend = SQLiteBackend(tmp_path / "tasks.db")
        queue = TaskQueue(backend, plugins=plugins)
        with provider.get_tracer("test").start_as_current_span("request"):
            ids = [
                await queue.enqueue("otel_tasks:greet", "otel"),
                await queue.enqueue("otel_tasks:fail"),
            ]
        await queue.close()
        await backend.close()
        return ids

    ids = asyncio.run(enqueue())
    (enqueuer,) = exporter.get_finished_spans()
    assert enqueuer.context is not None

    out = tmp_path / "spans.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITQ_")}
    env["PYTHONPATH"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(WORKER), url, str(out), *ids],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    spans = {span["name"]: span for span in json.loads(out.read_text())}

    greet, fail = spans["run otel_tasks:greet"], spans["run otel_tasks:fail"]
    for run, task_id in ((greet, ids[0]), (fail, ids[1])):
        assert run["trace_id"] == enqueuer.context.trace_id
        assert run["parent_span_id"] == enqueuer.context.span_id
        assert run["attributes"]["sitq.task.id"] == task_id
        assert run["attributes"]["sitq.task.attempt"] == 1
        assert run["attributes"]["sitq.task.queue"] == "default"
    assert greet["attributes"]["sitq.task.outcome"] == "succeeded"
    assert greet["status"] == "UNSET"
    assert fail["attributes"]["sitq.task.outcome"] == "failed"
    assert fail["status"] == "ERROR" and fail["events"] == ["exception"]

    inside = spans["inside greet"]  # a span the task's function started nests under its run
    assert inside["trace_id"] == enqueuer.context.trace_id
    assert inside["parent_span_id"] == greet["span_id"]
