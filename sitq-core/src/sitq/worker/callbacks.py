"""A worker's ``on_error`` and ``on_success`` arguments, as plugins of that worker only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..hookspecs import hookimpl
from ..task import Result, Task


class OnError:
    """Calls ``on_error(task_id, error, retry_count)`` after each failed attempt."""

    def __init__(self, on_error: Callable[[str, BaseException, int], Any]) -> None:
        self.on_error = on_error

    @hookimpl
    def sitq_task_failed(self, task: Task, error: BaseException, retry_count: int) -> Any:
        """Call ``on_error(task_id, error, retry_count)`` (awaited if it returns an awaitable)."""
        return self.on_error(task.id, error, retry_count)


class OnSuccess:
    """Calls ``on_success(task_id, value)`` after each success."""

    def __init__(self, on_success: Callable[[str, Any], Any]) -> None:
        self.on_success = on_success

    @hookimpl
    def sitq_task_succeeded(self, task: Task, result: Result) -> Any:
        """Call ``on_success(task_id, value)`` (awaited if it returns an awaitable)."""
        return self.on_success(task.id, result.value)


def callback_plugins(
    on_error: Callable[[str, BaseException, int], Any] | None,
    on_success: Callable[[str, Any], Any] | None,
) -> list[object]:
    """The callback plugins to register: only those given, so the others cost nothing."""
    plugins: list[object] = []
    if on_error is not None:
        plugins.append(OnError(on_error))
    if on_success is not None:
        plugins.append(OnSuccess(on_success))
    return plugins


__all__ = ["OnError", "OnSuccess", "callback_plugins"]
