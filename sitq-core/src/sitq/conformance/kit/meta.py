"""Conformance tests of task headers: ``meta`` is stored with every task and read back whole."""

from __future__ import annotations

from typing import Any

from ...backend import Backend
from ..clock import FakeClock
from ..records import make_record
from .support import KitBase, backend_test, claim_one, enqueue, stored

#: Headers exercising what JSON can hold: unicode, nesting, every scalar type.
RICH_META: dict[str, Any] = {
    "trace": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "tenant": "zürich 東京 🚀",
    "nested": {"list": [1, 2.5, "three", None, True, {"deep": []}], "empty": {}},
    "count": 42,
    "ratio": 0.25,
    "flag": False,
    "none": None,
}


class MetaTests(KitBase):
    """Headers: `TaskRecord.meta` survives enqueue, claim, get, list and finish."""

    @backend_test
    async def test_meta_is_empty_by_default(self, b: Backend, clock: FakeClock) -> None:
        (task_id,) = await enqueue(b)
        assert (await stored(b, task_id)).meta == {}
        assert (await claim_one(b)).meta == {}

    @backend_test
    async def test_meta_round_trips_through_every_read(self, b: Backend, clock: FakeClock) -> None:
        (task_id,) = await enqueue(b, meta=RICH_META)
        assert (await stored(b, task_id)).meta == RICH_META
        (listed,) = await b.list_tasks()
        assert listed.meta == RICH_META
        claimed = await claim_one(b)
        assert claimed.meta == RICH_META
        assert claimed.lease_token is not None
        assert await b.complete(task_id, claimed.lease_token, b"ok")
        assert (await stored(b, task_id)).meta == RICH_META

    @backend_test
    async def test_meta_is_per_task_and_not_shared(self, b: Backend, clock: FakeClock) -> None:
        first, second, bare = await b.enqueue_many(
            [make_record(meta={"n": 1}), make_record(meta={"n": 2}), make_record()]
        )
        record = await stored(b, first)
        record.meta["n"] = 99  # a reader's copy: changing it changes nothing stored
        assert (await stored(b, first)).meta == {"n": 1}
        assert (await stored(b, second)).meta == {"n": 2}
        assert (await stored(b, bare)).meta == {}


__all__ = ["RICH_META", "MetaTests"]
