"""The live summary costs the store one read per interval, however many viewers poll it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from starlette.testclient import TestClient
from web_seeding import Seeded

from sitq.task import TaskStatus
from sitq_sqlite import SQLiteBackend
from sitq_web import create_app
from sitq_web.security import CSRF_COOKIE


class CountingBackend(SQLiteBackend):
    """A real SQLite backend that counts its aggregate reads."""

    aggregate_reads = 0

    throughput_reads = 0

    async def queue_counts(self) -> dict[str, dict[TaskStatus, int]]:
        """Count, then read."""
        self.aggregate_reads += 1
        return await super().queue_counts()

    async def throughput(
        self, since: float, bucket_seconds: float
    ) -> dict[float, dict[TaskStatus, int]]:
        """Count, then read."""
        self.throughput_reads += 1
        return await super().throughput(since, bucket_seconds)


def _backend(seeded: Seeded) -> CountingBackend:
    return CountingBackend(Path(seeded.url.removeprefix("sqlite:///")))


def test_many_viewers_polling_within_the_interval_cost_one_read(seeded: Seeded) -> None:
    backend = _backend(seeded)
    app = create_app(backend)
    app.state.dashboard.summary.interval = 3600.0  # nothing expires during the test
    viewers = [TestClient(app) for _ in range(5)]
    with viewers[0]:
        for _ in range(4):
            for viewer in viewers:
                assert viewer.get("/api/summary").status_code == 200
        viewers[0].get("/")
        viewers[0].get("/workers")
    assert backend.aggregate_reads == 1
    assert app.state.dashboard.summary.reads == 1


def test_the_overview_chart_is_read_once_per_interval_and_again_after_an_action(
    seeded: Seeded,
) -> None:
    backend = _backend(seeded)
    app = create_app(backend)
    app.state.dashboard.chart.interval = 3600.0
    viewers = [TestClient(app) for _ in range(3)]
    with viewers[0]:
        for _ in range(3):
            for viewer in viewers:
                assert viewer.get("/").status_code == 200
        assert backend.throughput_reads == 1
        token = viewers[0].cookies.get(CSRF_COOKIE)
        paused = viewers[0].post("/queues/default/pause", data={"csrf_token": token})
        assert paused.status_code == 200
        viewers[0].get("/")
    assert backend.throughput_reads == 2


def test_concurrent_requests_share_one_read(seeded: Seeded) -> None:
    backend = _backend(seeded)
    app = create_app(backend)
    summary = app.state.dashboard.summary
    summary.interval = 3600.0

    async def many() -> None:
        await app.state.dashboard.ready()
        await asyncio.gather(*(summary.get() for _ in range(20)))
        await backend.close()

    asyncio.run(many())
    assert backend.aggregate_reads == 1


def test_a_slow_read_is_kept_longer(seeded: Seeded) -> None:
    backend = _backend(seeded)
    app = create_app(backend)
    summary = app.state.dashboard.summary
    summary.interval = 0.0
    summary.slowdown = 1e9  # as if the read took ages: kept however long the test takes
    with TestClient(app) as client:
        for _ in range(3):
            client.get("/api/summary")
    assert backend.aggregate_reads == 1


def test_an_expired_summary_is_read_again_and_an_action_forgets_it(seeded: Seeded) -> None:
    backend = _backend(seeded)
    app = create_app(backend)
    summary = app.state.dashboard.summary
    with TestClient(app) as client:
        summary.interval = summary.slowdown = 0.0  # every poll finds it expired
        client.get("/api/summary")
        client.get("/api/summary")
        assert backend.aggregate_reads == 2
        summary.interval = 3600.0
        client.get("/")
        token = client.cookies.get("sitq_web_csrf")
        client.post(f"/tasks/{seeded.pending}/cancel", data={"csrf_token": token})
        after = client.get("/api/summary").json()
    assert after["queues"]["default"]["cancelled"] == 1
