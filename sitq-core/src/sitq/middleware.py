"""Task middleware: the ``sitq_task_wrap`` implementations of a worker's plugins, chained
around each task's run.

Each implementation is called as ``sitq_task_wrap(task=..., call_next=..., worker=...)`` (it
may take any subset of those names) and returns, or returns an awaitable of, the task's
value; ``await call_next()`` runs the next layer inward, and the innermost runs the task in
the worker's executor. `TaskMiddleware.collect` takes a snapshot of the implementations once
per worker run, and is None when there are none, so a worker without middleware calls its
executor directly.

Order, outermost first: implementations marked ``tryfirst``, then the others in registration
order (the first registered wraps all later ones), then those marked ``trylast``.

The rules (docs/guides/middleware.md):

* the value the outermost layer returns is the task's result; a layer that returns without
  calling ``call_next`` skips the run, and what it returns is the result;
* an exception of the task (or of an inner layer) that a layer lets through passes unchanged;
* any other exception a layer raises fails the task with a `MiddlewareError` naming the
  plugin, chained to that exception; so does calling ``call_next`` twice.

Why not pluggy's ``wrapper=True``: pluggy's wrappers are synchronous generators around a
synchronous hook call, and a task runs as an awaitable in the worker's event loop; a chain of
``call_next`` awaitables can wrap it, and each layer can be told apart in errors.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .errors import MiddlewareError

if TYPE_CHECKING:
    import pluggy

    from .task import Task
    from .worker import Worker

#: The hook whose implementations are chained.
WRAP_HOOK = "sitq_task_wrap"


class Layer:
    """One ``sitq_task_wrap`` implementation: its function, the arguments it takes, and the
    plugin that registered it (for error messages)."""

    __slots__ = ("argnames", "function", "plugin_name")

    def __init__(
        self, function: Callable[..., Any], argnames: tuple[str, ...], plugin_name: str
    ) -> None:
        self.function = function
        self.argnames = argnames
        self.plugin_name = plugin_name

    def describe(self) -> str:
        """How error messages name this layer."""
        name = getattr(self.function, "__qualname__", repr(self.function))
        return f"the {WRAP_HOOK} middleware {name} of plugin {self.plugin_name!r}"


class TaskMiddleware:
    """The middleware layers of one worker run, outermost first; `run` calls a task through
    them."""

    __slots__ = ("layers",)

    def __init__(self, layers: tuple[Layer, ...]) -> None:
        self.layers = layers

    @classmethod
    def collect(cls, pm: pluggy.PluginManager) -> TaskMiddleware | None:
        """The layers registered in ``pm``, ordered outermost first; None if there are
        none."""
        impls = getattr(pm.hook, WRAP_HOOK).get_hookimpls()  # registration order, adjusted
        if not impls:
            return None
        first = [impl for impl in impls if impl.tryfirst]
        last = [impl for impl in impls if impl.trylast]
        middle = [impl for impl in impls if not (impl.tryfirst or impl.trylast)]
        # pluggy refused, at registration, any implementation taking other argument names
        return cls(
            tuple(
                Layer(impl.function, tuple(impl.argnames), impl.plugin_name)
                for impl in first + middle + last
            )
        )

    async def run(self, task: Task, worker: Worker, innermost: Callable[[], Awaitable[Any]]) -> Any:
        """Call ``innermost`` (the task's run in the executor) through every layer; return
        the value of the outermost layer."""
        return await self._call(0, task, worker, innermost)

    async def _call(
        self, index: int, task: Task, worker: Worker, innermost: Callable[[], Awaitable[Any]]
    ) -> Any:
        if index == len(self.layers):
            return await innermost()
        layer = self.layers[index]
        called = False
        passed: BaseException | None = None  # what call_next raised, to let it through

        async def call_next() -> Any:
            nonlocal called, passed
            if called:
                raise RuntimeError("call_next() was called twice; a middleware calls it once")
            called = True
            try:
                return await self._call(index + 1, task, worker, innermost)
            except BaseException as exc:
                passed = exc
                raise

        arguments = {"task": task, "call_next": call_next, "worker": worker}
        try:
            value = layer.function(**{name: arguments[name] for name in layer.argnames})
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            if exc is passed:
                raise
            raise MiddlewareError(
                f"{layer.describe()} raised {type(exc).__name__}: {exc} (task {task.id}); "
                f"fix the plugin, or leave it out (see `sitq plugins`)"
            ) from exc
        return value


__all__ = ["WRAP_HOOK", "Layer", "TaskMiddleware"]
