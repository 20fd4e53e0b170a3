"""`OpenTelemetryTracing`: trace context carried from ``enqueue`` to the worker, and one span
per task run, built only on sitq's public hooks.

* ``sitq_enqueue_headers``: the enqueuing code's current trace context is injected into the
  task's headers with the global propagator (W3C ``traceparent`` and ``tracestate``, and
  ``baggage``, by default); nothing is added outside a trace.
* ``sitq_task_wrap``: the worker extracts that context from ``task.meta`` and runs the task
  inside a span that is its child (or the root of a new trace, for a task enqueued outside
  one). The span is current while the task runs, so spans the task's function starts nest
  under it (coroutine functions and functions in threads; a child process of
  ``worker_type="process"`` has no span of its own).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

import sitq

from ._version import __version__

#: The instrumentation scope the spans are recorded under.
SCOPE = "sitq_otel"

#: The attributes of a task's span (values: the task's name, id, attempt, queue, outcome).
ATTRIBUTE_NAME = "sitq.task.name"
ATTRIBUTE_ID = "sitq.task.id"
ATTRIBUTE_ATTEMPT = "sitq.task.attempt"
ATTRIBUTE_QUEUE = "sitq.task.queue"
ATTRIBUTE_OUTCOME = "sitq.task.outcome"


class OpenTelemetryTracing:
    """The sitq plugin that traces tasks across processes.

    :param tracer_provider: where spans go (default: the global one, as configured by the
        OpenTelemetry SDK or ``opentelemetry-instrument``; looked up at each span, so it may
        be set after this plugin is loaded).
    """

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self.tracer = trace.get_tracer(SCOPE, __version__, tracer_provider=tracer_provider)

    @sitq.hookimpl
    def sitq_enqueue_headers(self, task: sitq.Task) -> dict[str, str] | None:
        """The current trace context, as headers (None outside a trace)."""
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return carrier or None

    @sitq.hookimpl
    async def sitq_task_wrap(self, task: sitq.Task, call_next: Callable[[], Awaitable[Any]]) -> Any:
        """Run the task inside a span, child of the context its headers carry."""
        parent = propagate.extract(_text_headers(task.meta))
        name = task.function_name
        with self.tracer.start_as_current_span(
            f"run {name}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                ATTRIBUTE_NAME: name,
                ATTRIBUTE_ID: task.id,
                ATTRIBUTE_ATTEMPT: task.attempts,
                ATTRIBUTE_QUEUE: task.queue,
                "messaging.system": "sitq",
                "messaging.operation.type": "process",
                "messaging.destination.name": task.queue,
                "messaging.message.id": task.id,
            },
            record_exception=False,  # recorded below, with the outcome
            set_status_on_exception=False,
        ) as span:
            try:
                value = await call_next()
            except Exception as exc:
                span.set_attribute(ATTRIBUTE_OUTCOME, "failed")
                span.set_attribute("error.type", type(exc).__qualname__)
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
                raise
            except BaseException:  # cancelled: the task was stopped, it did not fail
                span.set_attribute(ATTRIBUTE_OUTCOME, "cancelled")
                raise
            span.set_attribute(ATTRIBUTE_OUTCOME, "succeeded")
            return value


def _text_headers(meta: Mapping[str, Any]) -> dict[str, str]:
    """The headers a propagator may read: the str ones (others are no trace context)."""
    return {key: value for key, value in meta.items() if isinstance(value, str)}


#: The instance the ``otel`` entry point registers: the global tracer provider.
tracing = OpenTelemetryTracing()

__all__ = [
    "ATTRIBUTE_ATTEMPT",
    "ATTRIBUTE_ID",
    "ATTRIBUTE_NAME",
    "ATTRIBUTE_OUTCOME",
    "ATTRIBUTE_QUEUE",
    "OpenTelemetryTracing",
    "tracing",
]
