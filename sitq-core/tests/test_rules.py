"""The shared backend rules of `sitq.rules`, on their own (every backend also runs them
through the conformance kit)."""

from __future__ import annotations

import pytest

from sitq import TaskStatus
from sitq.errors import ConfigurationError
from sitq.rules import (
    attempt_limit,
    attempts_spent,
    check_list_args,
    check_statuses,
    first_repeated_id,
    fold_counts,
    fold_queue_counts,
    purge_statuses,
    status_from_text,
)
from sitq.task import FINAL_STATUSES


def test_the_attempt_limit_is_the_larger_of_max_attempts_and_the_task_retries() -> None:
    assert attempt_limit(3, None) == 3
    assert attempt_limit(3, 5) == 6
    assert not attempts_spent(2, 3, None)
    assert attempts_spent(3, 3, None)
    assert not attempts_spent(3, 3, 4)


@pytest.mark.parametrize("one", ["failed", TaskStatus.FAILED])
def test_one_status_alone_is_a_list_of_one(one: str) -> None:
    assert check_statuses(one) == frozenset({TaskStatus.FAILED})
    assert purge_statuses(one) == frozenset({TaskStatus.FAILED})
    assert check_list_args(one, None, "oldest") == frozenset({TaskStatus.FAILED})


@pytest.mark.parametrize("wrong", ["finished", ["failed", "finished"], [3]])
def test_a_word_that_is_no_status_is_a_configuration_error(wrong: object) -> None:
    with pytest.raises(ConfigurationError, match="statuses must be TaskStatus values"):
        check_statuses(wrong)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="statuses"):
        purge_statuses(wrong)  # type: ignore[arg-type]


def test_purge_defaults_to_every_final_status() -> None:
    assert purge_statuses(None) == FINAL_STATUSES
    assert purge_statuses([]) == frozenset()


def test_counts_fold_into_every_status() -> None:
    counts = fold_counts([("pending", 2), (TaskStatus.FAILED, 1), ("pending", 1)])
    assert counts == {**dict.fromkeys(TaskStatus, 0), TaskStatus.PENDING: 3, TaskStatus.FAILED: 1}
    per_queue = fold_queue_counts([("a", "dead", 1)])
    assert per_queue == {"a": {**dict.fromkeys(TaskStatus, 0), TaskStatus.DEAD: 1}}
    assert status_from_text("cancelled") is TaskStatus.CANCELLED


def test_first_repeated_id() -> None:
    assert first_repeated_id(["a", "b", "c"]) is None
    assert first_repeated_id(["a", "b", "a", "b"]) == "a"
