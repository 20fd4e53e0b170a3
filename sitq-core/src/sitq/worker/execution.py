"""`TaskExecution`: one claimed task, from its record to its stored outcome.

The stages, in order (`TaskExecution.run`):

1. **decode** the payload (signature checked first, functions allow-listed); a payload that
   cannot be decoded never runs: the task goes dead (`undecodable`);
2. **route**: `Worker.should_process_task` may decline the task, which goes back to the queue
   for other workers (`decline`);
3. **run** the function in the worker's executor, as `sitq.current_task()` sees it, inside
   the plugins' middleware if any (`invoke`, `sitq.middleware`);
4. **encode** the returned value into a signed result, within ``max_payload_bytes``;
5. **report** the outcome (success, retry or failure) to the worker's `OutcomeWriter`, count
   it and log it; in the claim loop a success nobody needs to wait for is handed over
   instead (`TaskExecution.hand_over`): its asyncio task ends there, and the write's
   callback counts, logs and releases it, so a task costs one wake-up of the loop, not two;
6. **emit** the matching plugin hooks once the outcome is stored.

An execution whose lease the heartbeat found lost (the task was cancelled, or recovered by
another worker) is stopped and stores nothing (`lease_lost`).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
import traceback as traceback_module
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..backend import Outcome, TaskRecord
from ..context import TaskContext, reset_current, set_current
from ..envelope import OpenedCall
from ..errors import PayloadError, SerializationError
from ..executors import Call
from ..parent_results import pass_mode, with_parent_results
from ..task import Result, Task, TaskStatus, result_from_record, task_from_record

if TYPE_CHECKING:
    from .leases import Lease
    from .worker import Worker

#: The worker whose task is running in this context (a task, or a thread running a task).
current_worker: contextvars.ContextVar[Worker | None] = contextvars.ContextVar(
    "sitq_current_worker", default=None
)


class TaskExecution:
    """Runs one claimed task of ``worker`` and stores its outcome (`run`)."""

    def __init__(
        self,
        worker: Worker,
        record: TaskRecord,
        lease: Lease | None = None,
        then: Callable[[BaseException | None], None] | None = None,
    ) -> None:
        """``lease``: the claim's lease if the claim loop holds it already (else `run` takes
        it).

        ``then`` lets `run` return a success before it is stored (`handed_over` is then
        True): ``then(error)`` is called once it is written and the lease released (``error``:
        what failed the write for good, else None). Without ``then``, or when a
        ``sitq_task_succeeded`` hook must know whether it was stored, `run` waits.
        """
        assert record.lease_token is not None
        assert worker._lifecycle is not None and worker._executor is not None
        self.worker = worker
        self.record = record
        self.token = record.lease_token
        self.lifecycle = worker._lifecycle
        self.executor = worker._executor
        self.logger = worker.logger
        self.task: Task | None = None
        self.call: OpenedCall | None = None
        self.held = lease
        self.then = then
        #: the success went to the writer without waiting; `stored` ends the execution
        self.handed_over = False
        self.outcome: Outcome | None = None
        self.duration = 0.0

    async def run(self) -> Outcome:
        """Every stage, in order; returns the outcome (reported, or not stored at all)."""
        w = self.worker
        if self.held is None:
            self.held = w._leases.hold(self.record.id, self.token)
        lease = self.held
        # the claim loop's tasks inherit it from the loop; a one-off call sets it here
        reset = current_worker.set(w) if current_worker.get() is not w else None
        try:
            try:
                call = self.call = self.decode()
            except (PayloadError, LookupError) as exc:
                return await self.undecodable(exc)
            if (w._routing or self.lifecycle.has("sitq_task_started")) and not self.route(call):
                return await self.decline()
            if self.task is not None:
                await self.lifecycle.emit("sitq_task_started", task=self.task, worker=w)
            if w.config.log_tasks:
                self.log_task("task %s %s started (attempt %d)")
            began = time.perf_counter()
            try:
                outcome = await self.execute(call, lease)
            except asyncio.CancelledError:
                if w._leases.was_interrupted(lease) and _undo_cancel():
                    return await self.lease_lost()
                raise
            except _LeaseLost:
                return await self.lease_lost()
            except Exception as exc:
                return await self.failed(exc, time.perf_counter() - began)
            duration = time.perf_counter() - began
            if (
                self.then is None
                or self.lifecycle.has("sitq_task_succeeded")
                or w._progress.unsettled()  # its last progress is written first
            ):
                return await self.succeeded(outcome, duration)
            return self.hand_over(outcome[0], duration)
        finally:
            if not self.handed_over:
                w._progress.forget(self.record.id, self.token)
                w._leases.release(lease)
            if reset is not None:
                current_worker.reset(reset)

    # -- stages ------------------------------------------------------------------------------

    def decode(self) -> OpenedCall:
        """Check the payload's signature, then decode it (raises `PayloadError` or
        `LookupError` for a payload that must not or cannot run)."""
        w, record = self.worker, self.record
        return w._envelope.open_call(record, w._allow, w._resolve)

    def route(self, call: OpenedCall) -> bool:
        """False if `Worker.should_process_task` declines the task (or raises); builds the
        `Task` that it and the ``sitq_task_started`` hook see (`run` calls it only when
        either is there)."""
        w = self.worker
        self.task = self.as_task(call)
        if not w._routing:
            return True
        try:
            return bool(w.should_process_task(self.task))
        except Exception:
            self.logger.exception(
                "should_process_task raised for task %s; declining it", self.record.id
            )
            return False

    async def execute(self, call: OpenedCall, lease: Lease) -> tuple[Outcome, Any]:
        """Run the function and encode what it returns; raises what it raised, or
        `_LeaseLost` if the lease was lost before it started."""
        w, record = self.worker, self.record
        config = w.config
        timeout = record.timeout if record.timeout is not None else config.timeout
        args, body = call.args, call.body
        if record.parents and pass_mode(record) is not None:  # a workflow child
            args = await with_parent_results(w.backend, record, args, self.parent_value)
            body = b""  # the stored call lacks them: an executor must send the objects
        context = TaskContext(
            record.id,
            record.attempts,
            w.worker_id,
            record.queue,
            record.function,
            record.meta,
            w._progress.report,
        )
        current = set_current(context)
        try:
            job = asyncio.current_task()
            if not w._leases.start(lease, job, context, timeout, config.lease_seconds):
                raise _LeaseLost  # cancelled (or recovered elsewhere) before it started
            try:
                run = Call(
                    call.function,
                    args,
                    call.kwargs,
                    timeout,
                    record.id,
                    body or None,
                    call.codec,
                    context,
                )
                if self.lifecycle.middleware is None:
                    value = await self.executor.run(run)
                else:
                    value = await self.invoke(run)
            finally:
                w._leases.finished(lease)
        finally:
            reset_current(current)
        return Outcome.succeeded(record.id, self.token, self.encode(value)), value

    async def invoke(self, call: Call) -> Any:
        """The executor's run of ``call`` through the plugins' ``sitq_task_wrap`` middleware
        (on this loop, in the task's context); `execute` calls the executor directly when
        there is no middleware."""
        middleware = self.lifecycle.middleware
        if middleware is None:
            return await self.executor.run(call)
        return await middleware.run(
            self.ensure_task(), self.worker, functools.partial(self.executor.run, call)
        )

    def parent_value(self, parent: TaskRecord) -> Any:
        """The return value of a succeeded parent (its serializer decodes it)."""
        return self.worker._envelope.open_result(parent, parent.result)

    def encode(self, value: Any) -> bytes:
        """The signed, encoded result (raises `SerializationError` if too large)."""
        return self.worker._envelope.seal_result(self.record, value)

    # -- outcomes ----------------------------------------------------------------------------

    async def succeeded(self, done: tuple[Outcome, Any], duration: float) -> Outcome:
        """Report a success, then emit ``sitq_task_succeeded``."""
        outcome, value = done
        w = self.worker
        if w._progress.unsettled():
            await w._progress.settle(self.record.id)  # the last progress, before the outcome
        applied = await w._writer.report(outcome)
        w._counters.record(duration, ok=True, retried=False)
        if w.config.log_tasks:
            self.log_task("task %s %s succeeded in %.3f s", duration=duration)
        if applied and self.lifecycle.has("sitq_task_succeeded"):
            result = result_of(w, self.record, outcome, value=value)
            await self.lifecycle.emit(
                "sitq_task_succeeded", task=self.ensure_task(), result=result, worker=w
            )
        return outcome

    def hand_over(self, outcome: Outcome, duration: float) -> Outcome:
        """Hand a success to the writer without waiting for it (`stored` ends it)."""
        self.handed_over = True
        self.outcome, self.duration = outcome, duration
        self.worker._writer.hand_over(outcome, self.stored)
        return outcome

    def stored(self, applied: bool | None, error: BaseException | None) -> None:
        """The end of a success `hand_over` gave the writer: count and log it, release its
        lease, then tell ``then``."""
        w = self.worker
        assert self.outcome is not None and self.then is not None
        try:
            if error is None:
                w._writer.check_applied(self.outcome, bool(applied))
                w._counters.record(self.duration, ok=True, retried=False)
                if w.config.log_tasks:
                    self.log_task("task %s %s succeeded in %.3f s", duration=self.duration)
        finally:
            w._progress.forget(self.record.id, self.token)
            assert self.held is not None
            w._leases.release(self.held)
            self.then(error)

    async def failed(self, exc: Exception, duration: float) -> Outcome:
        """Report a failure (a retry if the policy allows one), log it, emit the hooks."""
        w, record = self.worker, self.record
        error = f"{type(exc).__name__}: {exc}"
        tb = "".join(traceback_module.format_exception(type(exc), exc, exc.__traceback__))
        will_retry = not isinstance(exc, SerializationError) and w.retry_policy.will_retry(
            record.attempts, record.max_retries
        )
        delay = w.retry_policy.delay(record.attempts) if will_retry else 0.0
        if will_retry:
            due = w.backend.clock() + delay
            outcome = Outcome.retry(record.id, self.token, due, error, tb)
            w._retry_scheduled(due)
        else:
            outcome = Outcome.failed(record.id, self.token, error, tb)
        if w._progress.unsettled():
            await w._progress.settle(record.id)  # the last progress, before the outcome
        applied = await w._writer.report(outcome)
        w._counters.record(duration, ok=False, retried=will_retry)
        if w.config.log_errors:
            self.logger.log(
                logging.ERROR if not will_retry else logging.WARNING,
                "task %s %s failed (attempt %d)%s: %s",
                record.id,
                record.function,
                record.attempts,
                f", retrying in {delay:.3g} s" if will_retry else "",
                error,
                exc_info=(type(exc), exc, exc.__traceback__),
                extra={**self.log_fields(), "duration": duration},
            )
        hooks = self.lifecycle
        if applied and (hooks.has("sitq_task_failed") or hooks.has("sitq_task_retried")):
            task = self.ensure_task()
            await hooks.emit(
                "sitq_task_failed",
                task=task,
                error=exc,
                retry_count=record.attempts,
                will_retry=will_retry,
                worker=w,
            )
            if will_retry:
                await hooks.emit("sitq_task_retried", task=task, delay=delay, worker=w)
        return outcome

    async def undecodable(self, exc: Exception) -> Outcome:
        """A payload that cannot be decoded never runs: the task goes dead, the worker goes
        on."""
        w, record = self.worker, self.record
        error = f"{type(exc).__name__}: {exc}"
        outcome = Outcome.dead(record.id, self.token, error)
        applied = await w._writer.report(outcome)
        w._counters.record(0.0, ok=False, retried=False)
        self.logger.error(
            "task %s %s cannot run: %s",
            record.id,
            record.function,
            error,
            extra=self.log_fields(),
        )
        if applied and self.lifecycle.has("sitq_task_failed"):
            await self.lifecycle.emit(
                "sitq_task_failed",
                task=task_from_record(record),  # never decoded: it was refused
                error=exc,
                retry_count=record.attempts,
                will_retry=False,
                worker=w,
            )
        return outcome

    async def decline(self) -> Outcome:
        """Hand a declined task back to the queue; this worker will not claim it again."""
        self.worker._task_declined(self.record.id)
        outcome = Outcome.release(self.record.id, self.token)
        await self.worker._writer.report(outcome)
        return outcome

    async def lease_lost(self) -> Outcome:
        """End an execution whose lease is gone: nothing is stored (nothing could be)."""
        record = self.record
        why = "it was recovered by another worker after this one stalled past its lease"
        try:
            stored = await self.worker.backend.get_task(record.id)
            if stored is not None and stored.status is TaskStatus.CANCELLED:
                why = "it was cancelled"
        except Exception:
            pass
        self.logger.warning(
            "task %s %s stopped (attempt %d): %s. A coroutine is cancelled and a child process "
            "killed; a function in a thread runs on until it returns (it can check "
            "sitq.current_task().cancelled), and what it returns is thrown away.",
            record.id,
            record.function,
            record.attempts,
            why,
            extra=self.log_fields(),
        )
        return Outcome.release(record.id, self.token)  # not stored: for the caller

    # -- helpers -----------------------------------------------------------------------------

    def log_task(self, message: str, *, duration: float | None = None) -> None:
        """Log the start or end of the task if ``log_tasks`` is on."""
        config = self.worker.config
        if not config.log_tasks:
            return
        record = self.record
        if duration is None:
            args: tuple[Any, ...] = (record.id, record.function, record.attempts)
            extra = self.log_fields()
        else:
            args = (record.id, record.function, duration)
            extra = {**self.log_fields(), "duration": duration}
        self.logger.log(config.log_level, message, *args, extra=extra)

    def log_fields(self) -> dict[str, Any]:
        """The structured fields of every log line about this task."""
        record = self.record
        return {"task_id": record.id, "function": record.function, "attempt": record.attempts}

    def ensure_task(self) -> Task:
        """The `Task` the hooks see (built once)."""
        if self.task is None:
            assert self.call is not None
            self.task = self.as_task(self.call)
        return self.task

    def as_task(self, call: OpenedCall) -> Task:
        """The running task, as a `Task`."""
        return task_from_record(
            self.record, call.function, call.args, call.kwargs, worker_id=self.worker.worker_id
        )


def result_of(worker: Worker, record: TaskRecord, outcome: Outcome, value: Any = None) -> Result:
    """The `Result` of ``record``'s stored ``outcome`` (``value``: the returned value, if
    known; otherwise decoded from the outcome)."""
    if outcome.status is TaskStatus.SUCCEEDED and value is None and outcome.result is not None:
        value = worker._envelope.open_result(record, outcome.result)
    return result_from_record(record, value, outcome=outcome)


class _LeaseLost(Exception):
    """The lease was found lost before the function started."""


def _undo_cancel() -> bool:
    """Take back one `cancel()` of the current task (ours); False if another one is pending,
    which the caller must then let through."""
    uncancel = getattr(asyncio.current_task(), "uncancel", None)  # Python 3.11+
    return uncancel is None or uncancel() == 0


__all__ = ["TaskExecution", "current_worker", "result_of"]
