"""The pytest plugin that ships with sitq-core: its fixtures, used here as a user would, and
a user's test suite run in a subprocess (pytester) that finds them through the entry point."""

from __future__ import annotations

import pytest

from sitq import TaskStatus
from sitq.eager import EagerSyncTaskQueue
from sitq.testing import SitqTestQueue, SitqTestWorker

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_memory]

pytest_plugins = ["pytester"]


def send_email(to: str, subject: str = "hi") -> str:
    return f"sent {subject!r} to {to}"


def welcome(user: str) -> None:
    raise NotImplementedError("never runs in these tests")


def test_fixtures_are_provided(sitq_queue: SitqTestQueue, sitq_worker: SitqTestWorker) -> None:
    assert isinstance(sitq_queue, SitqTestQueue)
    assert isinstance(sitq_worker, SitqTestWorker)
    assert sitq_queue.backend is sitq_worker.backend


def test_assert_enqueued(sitq_queue: SitqTestQueue) -> None:
    sitq_queue.assert_nothing_enqueued()
    sitq_queue.enqueue(send_email, "ann@example.com", subject="welcome")
    sitq_queue.enqueue(send_email, "bob@example.com", queue="emails")

    (task,) = sitq_queue.assert_enqueued(send_email, ["ann@example.com"], {"subject": "welcome"})
    assert task.status is TaskStatus.PENDING
    assert len(sitq_queue.assert_enqueued(send_email, count=2)) == 2
    sitq_queue.assert_enqueued(f"{__name__}:send_email", queue="emails", count=1)
    sitq_queue.assert_not_enqueued(welcome)
    sitq_queue.assert_not_enqueued(send_email, ["carol@example.com"])

    with pytest.raises(AssertionError) as failure:
        sitq_queue.assert_enqueued(send_email, ["carol@example.com"])
    message = str(failure.value)
    assert "send_email('carol@example.com') enqueued at least once, found 0" in message
    assert "The queue holds 2 task(s):" in message
    assert "send_email('bob@example.com') [pending]" in message
    with pytest.raises(AssertionError, match="enqueued 3 time"):
        sitq_queue.assert_enqueued(send_email, count=3)
    with pytest.raises(AssertionError, match="not enqueued, found 2"):
        sitq_queue.assert_not_enqueued(send_email)
    with pytest.raises(AssertionError, match="expected no tasks"):
        sitq_queue.assert_nothing_enqueued()


def test_drain_runs_everything(sitq_queue: SitqTestQueue, sitq_worker: SitqTestWorker) -> None:
    ids = [sitq_queue.enqueue(send_email, f"u{i}@example.com") for i in range(3)]
    results = sitq_worker.drain()
    assert [r.value for r in results] == [f"sent 'hi' to u{i}@example.com" for i in range(3)]
    assert all(sitq_queue.get_result(t, timeout=0).is_success for t in ids)
    assert sitq_worker.drain() == []
    sitq_queue.assert_enqueued(send_email, count=3)  # finished tasks still count as enqueued


def test_eager_fixture(sitq_eager_queue: EagerSyncTaskQueue) -> None:
    task_id = sitq_eager_queue.enqueue(send_email, "dan@example.com")
    assert sitq_eager_queue.get_result(task_id, timeout=0).value == "sent 'hi' to dan@example.com"


USER_TESTS = '''
import pytest

from sitq import TaskStatus


def charge(order_id, amount):
    return f"charged {amount} for {order_id}"


def place_order(queue, order_id):
    """Application code under test: enqueues its side effect."""
    queue.enqueue(charge, order_id, 10)


@pytest.fixture
def sitq_backend_url():
    return "memory://"


def test_order_charges(sitq_queue, sitq_worker):
    place_order(sitq_queue, "o-1")
    sitq_queue.assert_enqueued(charge, ["o-1", 10])
    (result,) = sitq_worker.drain()
    assert result.value == "charged 10 for o-1"


def test_wrong_amount(sitq_queue):
    place_order(sitq_queue, "o-2")
    sitq_queue.assert_enqueued(charge, ["o-2", 99])
'''


def test_a_user_suite_gets_the_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_orders=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*expected test_orders:charge('o-2', 99) enqueued at least once, found 0.*",
            "*test_orders:charge('o-2', 10) [[]pending[]]*",
        ]
    )


def test_the_plugin_is_registered_by_entry_point(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("--fixtures", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*sitq_queue*", "*sitq_worker*", "*sitq_eager_queue*"])
