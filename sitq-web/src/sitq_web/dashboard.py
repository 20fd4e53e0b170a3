"""`Dashboard`: what every view and action shares: the queue, the settings and the caches."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sitq.backend import Backend
from sitq.queue import TaskQueue

from .chart import Chart, read_chart
from .summary import Kept, SummaryCache

#: The ``auth=`` argument: a token string, a callable deciding from the request, or None.
AuthHook = Callable[[Any], bool] | str | None


@dataclass
class Dashboard:
    """The state of one dashboard app (``request.app.state.dashboard``).

    :param queue: the queue whose store is shown and changed; connected on first use.
    :param decoder: the queue whose serializers, signing key and declared schedules decode
        what is shown (the user's own; ``queue`` itself unless it is a copy).
    :param auth: see `sitq_web.create_app`.
    :param read_only: True: no action form is shown and every POST is refused (403).
    :param title: the name shown in the page header.
    :param owns_queue: True if the app opened the queue itself (from a URL), so closes it.
    """

    queue: TaskQueue
    decoder: TaskQueue
    auth: AuthHook = None
    read_only: bool = False
    title: str = "sitq"
    owns_queue: bool = False
    summary: SummaryCache = field(init=False)
    chart: Kept[Chart] = field(init=False)
    _connect_lock: asyncio.Lock | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.summary = SummaryCache(self.queue.backend)
        self.chart = Kept(lambda: read_chart(self.queue.backend))

    def forget_readings(self) -> None:
        """Forget the kept summary and chart (after an action changed the store)."""
        self.summary.invalidate()
        self.chart.invalidate()

    @property
    def backend(self) -> Backend:
        """The queue's backend: every read and action goes through it."""
        return self.queue.backend

    async def ready(self) -> Backend:
        """The backend, connected: a mounted app gets no lifespan events from some
        frameworks, so the first request connects."""
        if not self.queue.connected:
            if self._connect_lock is None:
                self._connect_lock = asyncio.Lock()
            async with self._connect_lock:
                if not self.queue.connected:
                    await self.queue.connect()
        return self.queue.backend

    async def close(self) -> None:
        """Close the queue if the app opened it."""
        if self.owns_queue and self.queue.connected:
            await self.queue.close()
