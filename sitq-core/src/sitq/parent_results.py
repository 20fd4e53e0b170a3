"""What a workflow child receives of its parents: their results, read in one backend call
and put before its own arguments as its ``sitq.pass_results`` header says
(`sitq.workflow_state.PASS_RESULTS_HEADER`).

``"first"`` (a chain step) passes its first parent's return value as the first argument,
``"list"`` (a chord's callback, a step after a group) the list of its parents' values, in
parent order. Under ``allow_failure`` a parent that did not succeed is passed as a
`ParentFailed` value in its place, never raised: the child decides what to do with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .backend import Backend, TaskRecord
from .errors import ConfigurationError
from .task import TaskStatus
from .workflow_state import PASS_RESULTS_HEADER

#: The values of the ``sitq.pass_results`` header.
PASS_MODES = ("first", "list")


@dataclass(frozen=True)
class ParentFailed:
    """Stands in for the result of a parent that did not succeed, passed to a child with
    ``allow_failure=True`` (``isinstance(value, sitq.ParentFailed)`` tells them apart).

    :param task_id: the parent's id.
    :param status: how it ended (failed, dead or cancelled).
    :param error: its error message, if any.
    """

    task_id: str
    status: TaskStatus
    error: str | None


class ParentResultMissing(Exception):
    """A parent's result cannot be read any more (purged, or expired by ``result_ttl``):
    the child fails with this error rather than run without it."""


def check_pass_mode(mode: object) -> None:
    """`ConfigurationError` unless ``mode`` is None or one of `PASS_MODES`."""
    if mode is not None and mode not in PASS_MODES:
        raise ConfigurationError(
            f"pass_results must be 'first' (the one parent's result as the first argument), "
            f"'list' (the list of the parents' results) or None (nothing), got {mode!r}"
        )


def pass_mode(record: TaskRecord) -> str | None:
    """How ``record`` receives its parents' results (None: it does not)."""
    mode = record.meta.get(PASS_RESULTS_HEADER)
    return mode if isinstance(mode, str) and mode in PASS_MODES else None


async def with_parent_results(
    backend: Backend,
    record: TaskRecord,
    args: tuple[Any, ...],
    decode: Callable[[TaskRecord], Any],
) -> tuple[Any, ...]:
    """``args`` with the parents' results put first, as ``record``'s header asks (one
    `Backend.get_results` call); ``decode`` turns a succeeded parent's record into its
    value. Raises `ParentResultMissing` for a parent whose result is gone."""
    mode = pass_mode(record)
    if mode is None:
        return args
    wanted = record.parents[:1] if mode == "first" else record.parents
    found = await backend.get_results(wanted)
    values = [
        _value(task_id, parent, decode) for task_id, parent in zip(wanted, found, strict=True)
    ]
    if mode == "first":
        return (*values[:1], *args)  # no parent at all: nothing to pass
    return (values, *args)


def _value(task_id: str, found: TaskRecord | None, decode: Callable[[TaskRecord], Any]) -> Any:
    if found is None or found.expired:
        raise ParentResultMissing(
            f"the result of parent task {task_id} is gone (purged, or expired after the "
            "worker's result_ttl): keep results until workflows end"
        )
    if found.status is not TaskStatus.SUCCEEDED:
        return ParentFailed(found.id, found.status, found.error)
    return decode(found)


__all__ = [
    "PASS_MODES",
    "ParentFailed",
    "ParentResultMissing",
    "check_pass_mode",
    "pass_mode",
    "with_parent_results",
]
