"""`LoopWatchdog`: notices, from another thread, a worker's event loop that stopped answering.

A coroutine that never awaits (``while True: pass``, a blocking call) wedges the loop it runs
on: no timeout fires, no other task of that worker moves, and a stop request is never read.
The heartbeat thread (`sitq.heartbeat.LeaseKeeper`) runs a watchdog while the worker holds
leases: every `step` seconds it posts a tick to the loop with ``call_soon_threadsafe``; a tick
not run within `bound` seconds (``max(2 s, lease_seconds / 3)``) means the loop is wedged.
Then the watchdog

* logs which task blocks the loop (found in the `LeaseTable` and matched against the loop
  thread's stack, from ``sys._current_frames()``) and where, its top frames;
* once a running task is past its timeout as well (a timeout the wedged loop cannot apply),
  reports `holding_back`, and the keeper stops extending every lease of the worker, so that
  other workers recover its tasks once their leases lapse. Until then the leases are kept: a
  loop merely blocked for a while (a ``time.sleep`` in a coroutine) keeps its tasks, as
  promised in ``docs/guarantees.md``, and a task without a timeout keeps its worker's leases
  for as long as the process lives. Once the loop answers again the leases are extended
  again (those that lapsed meanwhile are found lost, and their executions stopped);
* ends the process if it was told to stop (SIGTERM or Ctrl-C, passed on by `signalled`
  from a ``signal.signal`` handler, which runs even while the loop is blocked) and the loop
  is still wedged ``graceful_shutdown`` seconds later, or at once on a second signal: it logs
  why and calls ``os._exit(128 + signal number)``, as a shell reports a process ended by it.

A worker running on a background thread (started from plain code) is left to its process:
its blocking ``stop()`` reads `wedged` and raises `WorkerStateError` after the grace period
rather than wait forever (``worker/runner.py``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import sys
import threading
import time
import traceback
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .worker.leases import LeaseTable, RunningTask

#: The watchdog never calls a loop wedged before it has been silent this many seconds.
WEDGED_AFTER_MIN = 2.0
#: Frames of the blocking code shown in the log line.
FRAMES_SHOWN = 6


def wedge_bound(interval: float) -> float:
    """Seconds a loop may leave a tick unanswered before it counts as wedged: the heartbeat
    ``interval`` (a third of the lease), at least `WEDGED_AFTER_MIN`."""
    return max(WEDGED_AFTER_MIN, interval)


class LoopWatchdog:
    """Watches the event loop running on the thread that creates it (see the module
    docstring). Its methods are called on the heartbeat thread, except `signalled` (from a
    signal handler) and the tick itself (on the watched loop).

    :param loop: the worker's event loop.
    :param leases: the worker's lease table (what runs there).
    :param interval: the heartbeat interval; sets `bound` and `step`.
    :param logger: where it reports.
    :param worker_id: the worker's name, for the log lines.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        leases: LeaseTable,
        *,
        interval: float,
        logger: logging.Logger,
        worker_id: str = "",
    ) -> None:
        self.loop = loop
        self.loop_thread = threading.get_ident()
        self.leases = leases
        self.bound = wedge_bound(interval)
        self.step = min(interval, self.bound / 4)
        self.logger = logger
        self.worker_id = worker_id
        self.wedged = False
        #: wedged, with a task past its timeout: the keeper extends no lease of the worker
        self.holding_back = False
        self._posted = 0  # number of the last tick posted
        self._answered = 0  # number of the last tick the loop ran (set on the loop)
        self._posted_at = 0.0
        self._wedged_at = 0.0
        # (monotonic time, signal number, graceful_shutdown) of each stop signal, appended by
        # the signal handler: a list append is atomic and takes no lock the interrupted code
        # may hold
        self._signals: list[tuple[float, int, float]] = []

    # -- the signal handler's side -----------------------------------------------------------

    def signalled(self, signum: int, graceful_shutdown: float) -> None:
        """Note a stop signal (call from a ``signal.signal`` handler: it only records it)."""
        self._signals.append((time.monotonic(), signum, graceful_shutdown))

    # -- the heartbeat thread's side ---------------------------------------------------------

    def next_check(self, now: float) -> float:
        """Seconds until `check` has something to do (infinite while there is nothing to
        watch)."""
        waiting = math.inf
        if self._answered != self._posted or len(self.leases):
            waiting = self.step
        exit_at = self._exit_at()
        if exit_at is not None:
            waiting = min(waiting, max(0.0, exit_at - now))
        return waiting

    def check(self, now: float) -> None:
        """Look at the last tick, post the next one while tasks run, end the process when a
        stop signal's grace ran out on a wedged loop."""
        if self._answered == self._posted:
            if self.wedged:
                self.wedged = self.holding_back = False
                self.logger.warning(
                    "worker %s: its event loop answers again after %.1f s; the leases it still "
                    "holds are extended",
                    self.worker_id,
                    now - self._wedged_at,
                )
            if len(self.leases):
                self._post(now)
        elif not self.wedged and now - self._posted_at >= self.bound:
            self.wedged = True
            self._wedged_at = now
            self.logger.error("%s", self.describe(now - self._posted_at))
        if self.wedged and not self.holding_back and self.leases.past_timeout(now):
            self.holding_back = True
            self.logger.error(
                "worker %s: a task runs past its timeout on the blocked event loop: the leases "
                "of its %d running task(s) are no longer extended, and other workers take them "
                "once they lapse",
                self.worker_id,
                len(self.leases),
            )
        if self.wedged:
            exit_at = self._exit_at()
            if exit_at is not None and now >= exit_at:
                self._exit()

    def _post(self, now: float) -> None:
        if self.loop.is_closed():
            return
        number = self._posted + 1
        try:
            self.loop.call_soon_threadsafe(self._tick, number)
        except RuntimeError:  # the loop closed in between
            return
        self._posted, self._posted_at = number, now

    def _tick(self, number: int) -> None:  # on the watched loop
        self._answered = number

    def _exit_at(self) -> float | None:
        """When a wedged loop ends the process: ``graceful_shutdown`` after the first stop
        signal, at once after a second (None: no signal yet)."""
        signals = list(self._signals)
        if not signals:
            return None
        if len(signals) > 1:
            return signals[1][0]
        when, _, grace = signals[0]
        return when + grace

    def _exit(self) -> None:
        signals = list(self._signals)
        signum = signals[-1][1]
        name = signal.Signals(signum).name
        how = (
            f"a second {name}" if len(signals) > 1 else f"{name}, {signals[0][2]:g} s ago"
        )  # fmt: skip
        self.logger.critical(
            "worker %s exits now (%s) without stopping gracefully: its event loop has been "
            "blocked for %.1f s by %s. Its tasks were not handed back: other workers take them "
            "once their leases lapse.",
            self.worker_id,
            how,
            time.monotonic() - self._posted_at,
            self._culprit_text(),
        )
        for handler in logging.getLogger().handlers + self.logger.handlers:
            try:
                handler.flush()
            except Exception:
                pass
        os._exit(128 + signum)

    # -- what blocks the loop ----------------------------------------------------------------

    def describe(self, silent_for: float) -> str:
        """The log line of a wedged loop: which task blocks it, where, and what follows."""
        frame = self._loop_frame()
        stack = traceback.extract_stack(frame) if frame is not None else []
        where = "".join(traceback.format_list(stack[-FRAMES_SHOWN:])).rstrip()
        return (
            f"worker {self.worker_id}: its event loop has not answered for {silent_for:.1f} s, "
            f"blocked by {self._culprit_text(frame)}, at (innermost last):\n{where}\n"
            "No task of this worker moves meanwhile; graceful_shutdown seconds after a stop "
            "request, a stop signal ends the process (sitq worker, Worker.run) and a blocking "
            "stop() raises WorkerStateError. A coroutine must await: "
            "run blocking code with asyncio.to_thread, or the task in worker_type='thread' "
            "or 'process'."
        )

    def _loop_frame(self) -> FrameType | None:
        """The innermost frame the loop's thread runs now."""
        return sys._current_frames().get(self.loop_thread)

    def _culprit_text(self, frame: FrameType | None = None) -> str:
        running = self.leases.running_tasks()
        blocking = _blocking(running, self._loop_frame() if frame is None else frame)
        if blocking is not None:
            return f"task {blocking.task_id} {blocking.function} (attempt {blocking.attempt})"
        if not running:
            return "code that is not a task"
        names = ", ".join(f"{r.task_id} {r.function}" for r in running)
        return f"one of its running tasks ({names})"


def _blocking(running: list[RunningTask], frame: FrameType | None) -> RunningTask | None:
    """The running task whose function is on the stack from ``frame`` (innermost first)."""
    by_name: dict[str, RunningTask] = {}
    for task in running:
        module, sep, name = task.function.rpartition(":")
        if not sep:  # stored as module.name
            module, _, name = task.function.rpartition(".")
        by_name.setdefault(f"{module}:{name}", task)
    while frame is not None:
        code = frame.f_code
        qualname = getattr(code, "co_qualname", code.co_name)  # co_qualname: Python 3.11+
        found = by_name.get(f"{frame.f_globals.get('__name__')}:{qualname}")
        if found is not None:
            return found
        frame = frame.f_back
    return None


__all__ = ["WEDGED_AFTER_MIN", "LoopWatchdog", "wedge_bound"]
