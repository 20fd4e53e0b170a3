"""The throughput chart of the overview: per-minute counts drawn as inline SVG bars.

Only numbers and fixed words go into the SVG, and the template renders it with autoescape:
nothing from the store reaches the markup unescaped.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from sitq.backend import Backend
from sitq.task import TaskStatus

#: The chart's size in SVG units (it scales with the page).
WIDTH, HEIGHT = 600, 120
#: The chart's buckets: the last hour, a bar a minute.
CHART_BUCKET_SECONDS = 60
CHART_BUCKETS = 60


@dataclass(frozen=True)
class Bar:
    """One stacked bar: a minute's succeeded tasks with its failures on top."""

    x: float
    width: float
    ok_y: float
    ok_height: float
    failed_y: float
    failed_height: float
    label: str


@dataclass(frozen=True)
class Chart:
    """The bars of the chart and its totals."""

    bars: list[Bar]
    succeeded: int
    failed: int
    peak: int
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def failure_rate(self) -> float | None:
        """Failed over finished in the window (None when nothing finished)."""
        finished = self.succeeded + self.failed
        return None if finished == 0 else self.failed / finished


async def read_chart(backend: Backend) -> Chart:
    """The chart of the last `CHART_BUCKETS` minutes, from one `Backend.throughput`
    aggregate (kept by the dashboard like the summary: `sitq_web.summary.Kept`)."""
    since = (time.time() // CHART_BUCKET_SECONDS - CHART_BUCKETS + 1) * CHART_BUCKET_SECONDS
    buckets = await backend.throughput(since, CHART_BUCKET_SECONDS)
    return build_chart(buckets, since, CHART_BUCKET_SECONDS, CHART_BUCKETS)


def build_chart(
    buckets: Mapping[float, Mapping[TaskStatus, int]], since: float, bucket_seconds: float,
    count: int,
) -> Chart:  # fmt: skip
    """The chart of ``count`` buckets from ``since``; ``buckets`` maps each bucket's start to
    its finished tasks by status (failed and dead count as failures)."""
    slots: list[tuple[int, int]] = []
    for i in range(count):
        start = since + i * bucket_seconds
        counts = buckets.get(start, {})
        ok = counts.get(TaskStatus.SUCCEEDED, 0)
        bad = counts.get(TaskStatus.FAILED, 0) + counts.get(TaskStatus.DEAD, 0)
        slots.append((ok, bad))
    peak = max((ok + bad for ok, bad in slots), default=0)
    scale = (HEIGHT - 4) / peak if peak else 0.0
    step = WIDTH / max(count, 1)
    bars = []
    for i, (ok, bad) in enumerate(slots):
        ok_h, bad_h = ok * scale, bad * scale
        bars.append(
            Bar(
                x=round(i * step, 2), width=round(max(step - 1, 1), 2),
                ok_y=round(HEIGHT - ok_h, 2), ok_height=round(ok_h, 2),
                failed_y=round(HEIGHT - ok_h - bad_h, 2), failed_height=round(bad_h, 2),
                label=f"{count - i} min ago: {ok} succeeded, {bad} failed",
            )
        )  # fmt: skip
    return Chart(bars, sum(s[0] for s in slots), sum(s[1] for s in slots), peak)
