"""`Scheduler`: fires the periodic schedules of a queue (`sitq.schedules`).

Every ``sitq worker`` runs one by default (``--no-scheduler`` opts out) and ``sitq scheduler
APP`` runs one alone. Any number may run on one store: each pass reads the stored state of
every schedule, plans its due fire times (`sitq.schedules.plan_fires`) and asks the store to
write each fire with its task (`sitq.backend.Backend.enqueue_fire`); the store's unique row
lets exactly one write per fire time win, so no lock, leader or clock agreement is needed. A
clock stepping backwards makes a scheduler find nothing due until it has caught up again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from .backend import Capability
from .errors import ConfigurationError
from .schedules import FIRED_AT_ARGUMENT, FIRED_AT_HEADER, Schedule, plan_fires

if TYPE_CHECKING:
    from .plugins import Lifecycle
    from .queue import TaskQueue

#: The longest a scheduler sleeps between passes (it wakes sooner for the next fire time).
MAX_SLEEP = 30.0
#: How long after a fire time a scheduler wakes, so that the time has surely passed.
_SETTLE = 0.005
#: How soon a scheduler tries again after a pass failed (the store was unreachable, say).
_RETRY = 1.0

logger = logging.getLogger("sitq.scheduler")


def check_scheduler(queue: TaskQueue) -> None:
    """`ConfigurationError` if ``queue`` declares schedules its backend cannot store, or a
    schedule whose task cannot be encoded (tried on one fire of each, now, before any)."""
    if queue.schedules and not queue.backend.supports(Capability.SCHEDULES):
        raise ConfigurationError(
            f"this app declares {len(queue.schedules)} periodic schedule(s), and "
            f"{type(queue.backend).__name__} cannot store them (no Capability.SCHEDULES). Use "
            "a backend that can (sqlite, postgresql, memory), or run workers with "
            "--no-scheduler (Worker(scheduler=False))"
        )
    for schedule in queue.schedules.values():
        try:
            queue.fire_record(schedule, queue.backend.clock())
        except Exception as exc:
            hint = (
                f" Its task takes {FIRED_AT_ARGUMENT!r}, given as a datetime: use a serializer "
                "that encodes datetimes (cloudpickle, the default), or drop the argument and "
                f"read current_task().meta[{FIRED_AT_HEADER!r}]."
                if schedule.passes_fired_at
                else ""
            )
            raise ConfigurationError(
                f"schedule {schedule.name!r} cannot store its task: {str(exc).rstrip('.')}.{hint}"
            ) from exc


class Scheduler:
    """Fires the schedules of ``queue`` (`queue.schedules`): call `run`, or `tick` for one
    pass (tests drive it so, with the backend's ``clock`` replaced).

    :param queue: the queue whose schedules it fires and whose backend decides each fire.
    :param lifecycle: emits ``sitq_schedule_fired``/``sitq_schedule_skipped`` (default: the
        queue's plugins').
    :param log: where it logs (default ``sitq.scheduler``).
    """

    def __init__(
        self,
        queue: TaskQueue,
        *,
        lifecycle: Lifecycle | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        check_scheduler(queue)
        self.queue = queue
        self._lifecycle = lifecycle if lifecycle is not None else queue.plugins.lifecycle()
        self._log = log if log is not None else logger
        self._added: set[str] = set()

    @property
    def schedules(self) -> list[Schedule]:
        """The schedules it fires (read at every pass: schedules declared later join)."""
        return list(self.queue.schedules.values())

    async def tick(self) -> float | None:
        """One pass: store every due fire of every schedule; return the next fire time of any
        schedule (epoch seconds), or None if there is none. A schedule whose pass fails is
        logged and tried again at the next pass; the others go on."""
        schedules = self.schedules
        if not schedules:
            return None
        backend = self.queue.backend
        await self.queue.connect()
        new = {s.name: s.describe() for s in schedules if s.name not in self._added}
        if new:
            await backend.add_schedules(new)
            self._added.update(new)
        states = {state.name: state for state in await backend.schedule_states()}
        now = backend.clock()
        for schedule in schedules:
            state = states.get(schedule.name)
            if state is None:  # its state was deleted under us: start it afresh
                self._added.discard(schedule.name)
                continue
            if state.paused:
                continue
            try:
                await self._fire_due(schedule, state.decided_until, now)
            except Exception:
                self._log.exception("firing schedule %r failed; trying again", schedule.name)
        upcoming = [t for s in schedules if (t := s.trigger.next_after(now)) is not None]
        return min(upcoming, default=None)

    async def _fire_due(self, schedule: Schedule, decided_until: float, now: float) -> None:
        plan = plan_fires(schedule, decided_until, now)
        if plan.skipped is not None:
            await self.queue.backend.skip_fires(schedule.name, plan.skipped)
            fired_at = schedule.fired_at(plan.skipped)
            self._log.warning(
                "schedule %r: missed fire times up to %s dropped (%s)",
                schedule.name,
                fired_at.isoformat(),
                plan.reason,
            )
            await self._lifecycle.emit(
                "sitq_schedule_skipped", schedule=schedule, fired_at=fired_at, reason=plan.reason
            )
        for fire_time in plan.run:
            task_id = await self.queue.enqueue_fire(schedule, fire_time)
            if task_id is not None:
                fired_at = schedule.fired_at(fire_time)
                self._log.debug("schedule %r fired for %s", schedule.name, fired_at.isoformat())
                await self._lifecycle.emit(
                    "sitq_schedule_fired", schedule=schedule, fired_at=fired_at, task_id=task_id
                )

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Pass after pass, sleeping until the next fire time (at most `MAX_SLEEP`), until
        ``stop`` is set (or the task running it is cancelled)."""
        stop = stop if stop is not None else asyncio.Event()
        while not stop.is_set():
            delay = MAX_SLEEP
            try:
                upcoming = await self.tick()
            except Exception:
                self._log.exception("scheduler pass failed; trying again in %g s", _RETRY)
                upcoming, delay = None, _RETRY
            if upcoming is not None:
                delay = min(MAX_SLEEP, max(0.0, upcoming - self.queue.backend.clock()) + _SETTLE)
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except asyncio.TimeoutError:
                pass


__all__ = ["MAX_SLEEP", "Scheduler", "check_scheduler"]
