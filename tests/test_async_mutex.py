"""`AsyncMutex`: mutual exclusion for coroutines on one loop or several (threads), FIFO
hand-over, and cancellation that never loses or duplicates ownership."""

from __future__ import annotations

import asyncio
import threading

from sitq.signals import AsyncMutex


async def _critical(mutex: AsyncMutex, inside: list[int], order: list[int], n: int) -> None:
    async with mutex:
        inside.append(n)
        assert len(inside) == 1, "two holders at once"
        order.append(n)
        await asyncio.sleep(0)
        inside.remove(n)


def test_one_holder_at_a_time_and_first_come_first_served() -> None:
    async def main() -> list[int]:
        mutex, inside, order = AsyncMutex(), list[int](), list[int]()
        await asyncio.gather(*(_critical(mutex, inside, order, n) for n in range(200)))
        assert not mutex.locked
        return order

    assert asyncio.run(main()) == list(range(200))


def test_a_cancelled_waiter_neither_keeps_nor_loses_the_mutex() -> None:
    async def main() -> None:
        mutex = AsyncMutex()
        await mutex.__aenter__()
        waiters = [asyncio.ensure_future(mutex.__aenter__()) for _ in range(3)]
        await asyncio.sleep(0)
        waiters[0].cancel()  # cancelled while queued
        await asyncio.sleep(0)
        await mutex.__aexit__()  # hands over to waiters[1]
        waiters[1].cancel()  # cancelled after being handed the mutex: passes it on
        await asyncio.wait_for(waiters[2], 5)
        assert waiters[0].cancelled() and waiters[1].cancelled()
        assert mutex.locked
        await mutex.__aexit__()
        assert not mutex.locked
        async with mutex:
            pass

    asyncio.run(asyncio.wait_for(main(), 10))


def test_coroutines_on_several_loops_in_threads_exclude_each_other() -> None:
    mutex = AsyncMutex()
    inside: list[int] = []
    order: list[int] = []
    errors: list[BaseException] = []

    def run(base: int) -> None:
        async def main() -> None:
            await asyncio.gather(*(_critical(mutex, inside, order, base + n) for n in range(100)))

        try:
            asyncio.run(asyncio.wait_for(main(), 30))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(order) == sorted(k * 1000 + n for k in range(4) for n in range(100))
    assert not mutex.locked


def test_a_waiter_whose_loop_closed_is_skipped() -> None:
    mutex = AsyncMutex()
    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        async def main() -> None:
            async with mutex:
                held.set()
                release.wait(10)

        asyncio.run(main())

    t = threading.Thread(target=holder)
    t.start()
    assert held.wait(10)
    stranded = asyncio.new_event_loop()
    pending = stranded.create_task(mutex.__aenter__())
    stranded.run_until_complete(asyncio.sleep(0.01))  # now queued behind the holder
    assert not pending.done()
    pending._log_destroy_pending = False  # type: ignore[attr-defined]  # abandoned on purpose
    stranded.close()  # its loop is gone for good
    release.set()
    t.join(10)

    async def later() -> None:
        async with mutex:
            pass

    asyncio.run(asyncio.wait_for(later(), 5))
    assert not mutex.locked
