"""The batching core (`sitq.batching.Batcher`) and the outcome writer built on it: items
gathered while a write is in flight go out in one call, every caller gets its own result, and
a permanent error ends the retries at once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

import pytest

from sitq import TaskStatus
from sitq.backend import Outcome
from sitq.batching import Batcher, is_permanent
from sitq.errors import QueueClosed
from sitq.outcomes import OutcomeWriter
from sitq_sqlite import SQLiteBackend

pytestmark = [pytest.mark.needs_sqlite]


class _Store:
    """A store whose batch writes take a turn of the loop, failing as told."""

    def __init__(self, failures: Sequence[BaseException] = ()) -> None:
        self.batches: list[list[int]] = []
        self.failures = list(failures)

    async def write_many(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        await asyncio.sleep(0.001)
        if self.failures:
            raise self.failures.pop(0)
        if any(item < 0 for item in items):
            raise ValueError(f"negative item in {list(items)}")
        return [item * 10 for item in items]


def run(coro: object) -> None:
    asyncio.run(asyncio.wait_for(coro, 10))  # type: ignore[arg-type]


def test_items_handed_over_in_one_turn_share_one_write() -> None:
    async def main() -> None:
        store = _Store()
        batcher: Batcher[int, int] = Batcher(store.write_many, on_failure="retry")
        results = await asyncio.gather(*(batcher.hand_over(i) for i in range(5)))
        assert results == [0, 10, 20, 30, 40]
        assert store.batches == [[0, 1, 2, 3, 4]]

    run(main())


def test_items_handed_over_during_a_write_go_in_the_next_one() -> None:
    async def main() -> None:
        store = _Store()
        batcher: Batcher[int, int] = Batcher(store.write_many, on_failure="retry", max_batch=2)
        first = batcher.hand_over(1)
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # the flush runs: its write is in flight
        later = [batcher.hand_over(i) for i in (2, 3, 4)]
        assert await first == 10
        assert await asyncio.gather(*later) == [20, 30, 40]
        assert store.batches == [[1], [2, 3], [4]]

    run(main())


def test_a_cancelled_callers_item_is_written_all_the_same() -> None:
    async def main() -> None:
        store = _Store()
        batcher: Batcher[int, int] = Batcher(store.write_many, on_failure="retry")
        future = batcher.hand_over(7)
        future.cancel()
        await batcher.wait_flushed()
        await asyncio.sleep(0.05)
        await batcher.wait_flushed()
        assert store.batches == [[7]]

    run(main())


def test_a_passing_failure_is_retried_until_the_write_succeeds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        store = _Store(failures=[OSError("database is locked"), OSError("disk busy")])
        batcher: Batcher[int, int] = Batcher(store.write_many, on_failure="retry", what="numbers")
        assert list(await asyncio.gather(batcher.hand_over(1), batcher.hand_over(2))) == [10, 20]
        assert store.batches == [[1, 2]] * 3

    with caplog.at_level(logging.ERROR, logger="sitq.batching"):
        run(main())
    assert [r.getMessage() for r in caplog.records] == ["storing 2 numbers failed; retrying"] * 2


@pytest.mark.parametrize(
    "error", [QueueClosed("the store was closed"), TypeError("finish() takes a list")]
)
def test_a_permanent_error_fails_every_waiting_item_at_once(error: Exception) -> None:
    async def main() -> None:
        store = _Store(failures=[error] * 100)
        batcher: Batcher[int, int] = Batcher(store.write_many, on_failure="retry")
        results = await asyncio.gather(
            *(batcher.hand_over(i) for i in range(3)), return_exceptions=True
        )
        assert results == [error] * 3
        assert store.batches == [[0, 1, 2]]  # written once, never retried

    run(main())


def test_a_closed_store_fails_a_split_batch_at_once_without_writing_each_item() -> None:
    async def main() -> None:
        store = _Store(failures=[QueueClosed("closed")] * 100)
        batcher: Batcher[int, int] = Batcher(store.write_many, on_failure="split")
        first = asyncio.ensure_future(batcher.write(1))
        await asyncio.sleep(0)  # the first write is in flight
        results = await asyncio.gather(
            first, *(batcher.write(i) for i in (2, 3, 4)), return_exceptions=True
        )
        assert all(isinstance(r, QueueClosed) for r in results)
        assert store.batches == [[1], [2, 3, 4]]

    run(main())


def test_a_split_batch_gives_each_caller_its_own_error() -> None:
    async def main() -> None:
        store = _Store()
        batcher: Batcher[int, int] = Batcher(store.write_many, on_failure="split")
        results = await asyncio.gather(
            *(batcher.write(i) for i in (1, 2, -3, 4)), return_exceptions=True
        )
        assert results[:2] == [10, 20] and results[3] == 40
        assert isinstance(results[2], ValueError)
        assert store.batches == [[1], [2, -3, 4], [2], [-3], [4]]

    run(main())


def test_a_flush_cancelled_with_its_loop_cancels_every_waiting_item() -> None:
    async def main() -> None:
        store = _Store(failures=[OSError("down")] * 1000)
        batcher: Batcher[int, int] = Batcher(
            store.write_many, on_failure="retry", logger=logging.getLogger("test.quiet")
        )
        futures = [batcher.hand_over(i) for i in range(3)]
        await asyncio.sleep(0.02)  # the flush is retrying
        (flush,) = batcher._flushes
        flush.cancel()
        await batcher.wait_flushed()
        assert all(f.cancelled() for f in futures)
        # the batcher is idle again: a new item gets its own flush
        store.failures.clear()
        assert await batcher.hand_over(5) == 50

    logging.getLogger("test.quiet").disabled = True
    run(main())


def test_an_item_handed_over_with_then_is_told_its_result_without_a_future() -> None:
    async def main() -> None:
        store = _Store()
        batcher: Batcher[int, int] = Batcher(store.write_many, on_failure="retry")
        told: list[tuple[int | None, BaseException | None]] = []
        for i in (1, 2):
            assert batcher.hand_over(i, lambda result, error: told.append((result, error))) is None
        await batcher.wait_flushed()  # waits for a flush that has not started yet
        assert told == [(10, None), (20, None)]
        assert store.batches == [[1, 2]]

    run(main())


def test_then_is_told_a_permanent_error_and_a_cancelled_flush() -> None:
    async def main() -> None:
        store = _Store(failures=[QueueClosed("closed")])
        batcher: Batcher[int, int] = Batcher(
            store.write_many, on_failure="retry", logger=logging.getLogger("test.quiet")
        )
        told: list[BaseException | None] = []
        batcher.hand_over(1, lambda result, error: told.append(error))
        await batcher.wait_flushed()
        assert len(told) == 1 and isinstance(told[0], QueueClosed)
        store.failures = [OSError("down")] * 1000
        batcher.hand_over(2, lambda result, error: told.append(error))
        await asyncio.sleep(0.02)  # the flush is retrying
        (flush,) = batcher._flushes
        flush.cancel()
        await batcher.wait_flushed()
        assert len(told) == 2 and isinstance(told[1], asyncio.CancelledError)

    logging.getLogger("test.quiet").disabled = True
    run(main())


def test_a_then_that_raises_is_logged_and_the_others_are_still_told(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        store = _Store()
        batcher: Batcher[int, int] = Batcher(store.write_many, on_failure="retry", what="numbers")
        told: list[int | None] = []

        def broken(result: int | None, error: BaseException | None) -> None:
            raise RuntimeError("a bug in a callback")

        batcher.hand_over(1, broken)
        batcher.hand_over(2, lambda result, error: told.append(result))
        await batcher.wait_flushed()
        assert told == [20]

    with caplog.at_level(logging.ERROR, logger="sitq.batching"):
        run(main())
    assert [r.getMessage() for r in caplog.records] == [
        "a callback of the write of numbers raised; ignored"
    ]


def test_is_permanent_tells_a_closed_store_and_bugs_from_passing_failures() -> None:
    assert is_permanent(QueueClosed("closed"))
    assert is_permanent(TypeError("bad call"))
    assert not is_permanent(OSError("database is locked"))
    assert not is_permanent(ConnectionResetError())
    assert not is_permanent(TimeoutError())


def test_outcomes_to_a_closed_backend_fail_at_once_instead_of_retrying_forever(
    tmp_path: Path,
) -> None:
    # the hang behind Ctrl-C under asyncio.run(worker.start()): the store was closed under
    # a worker's last outcomes, which were retried forever, so the worker never stopped
    async def main() -> None:
        backend = SQLiteBackend(str(tmp_path / "q.db"))
        await backend.connect()
        await backend.close()
        writer = OutcomeWriter(backend, logging.getLogger("sitq.worker"))
        outcome = Outcome.succeeded("some-task", "some-lease", b"")
        reports = [asyncio.ensure_future(writer.report(outcome)) for _ in range(3)]
        done, pending = await asyncio.wait(reports, timeout=5)
        for task in pending:
            task.cancel()
        assert not pending, "the outcome writer retried a closed backend"
        assert all(isinstance(task.exception(), QueueClosed) for task in done)
        await asyncio.wait_for(writer.wait_flushed(), 5)

    asyncio.run(main())


def test_outcomes_are_written_together_and_report_whether_each_was_applied(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        from sitq import TaskQueue

        async with TaskQueue(SQLiteBackend(str(tmp_path / "q.db"))) as queue:
            for _ in range(3):
                await queue.enqueue(print)
            records = await queue.backend.claim(worker_id="w", limit=3, lease_seconds=30)
            assert len(records) == 3
            writer = OutcomeWriter(queue.backend, logging.getLogger("sitq.worker"))
            outcomes = [Outcome.succeeded(r.id, r.lease_token or "", b"") for r in records]
            outcomes[2] = Outcome.succeeded(records[2].id, "a lost lease", b"")
            applied = await asyncio.gather(*(writer.report(o) for o in outcomes))
            assert applied == [True, True, False]
            counts = await queue.counts()
            assert counts[TaskStatus.SUCCEEDED] == 2 and counts[TaskStatus.RUNNING] == 1

    asyncio.run(asyncio.wait_for(main(), 20))
