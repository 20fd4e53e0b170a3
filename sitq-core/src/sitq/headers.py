"""Headers plugins add at enqueue: the ``sitq_enqueue_headers`` implementations of a queue's
plugins, and the rule that merges what they return into a task's ``meta``.

The rule: implementations are called in registration order, synchronously, before the task's
record is built; each returns a mapping of headers or None. Their mappings are merged, a later
one's keys over an earlier one's, and the task's own ``meta`` over all of them (a header the
caller set on purpose is never replaced). Each mapping is checked like any ``meta``
(`sitq.meta.check_meta`). A hook that raises, returns something else than a mapping or None,
or returns bad headers fails the enqueue with a `PluginError` naming the plugin, and nothing
is stored.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError, PluginError
from .meta import check_meta

if TYPE_CHECKING:
    import pluggy

    from .task import Task

#: The hook whose implementations add headers.
HEADERS_HOOK = "sitq_enqueue_headers"


class EnqueueHeaders:
    """The ``sitq_enqueue_headers`` implementations of one queue, in registration order;
    `merged` gives a task's headers with theirs added."""

    __slots__ = ("_impls",)

    def __init__(self, impls: tuple[tuple[Callable[..., Any], bool, str], ...]) -> None:
        self._impls = impls

    @classmethod
    def collect(cls, pm: pluggy.PluginManager) -> EnqueueHeaders | None:
        """The implementations registered in ``pm``; None if there are none (the common case,
        which then costs nothing per enqueue)."""
        impls = getattr(pm.hook, HEADERS_HOOK).get_hookimpls()
        if not impls:
            return None
        return cls(tuple((impl.function, bool(impl.argnames), impl.plugin_name) for impl in impls))

    def merged(self, task: Task) -> dict[str, Any]:
        """``task.meta`` with every implementation's headers added (the task's keys win)."""
        headers: dict[str, Any] = {}
        for function, takes_task, plugin_name in self._impls:
            name = getattr(function, "__qualname__", repr(function))
            where = f"the {HEADERS_HOOK} hook {name} of plugin {plugin_name!r}"
            try:
                found = function(task=task) if takes_task else function()
            except Exception as exc:
                raise PluginError(
                    f"{where} raised {type(exc).__name__}: {exc}; nothing was enqueued. Fix the "
                    f"plugin, or leave it out (see `sitq plugins`)"
                ) from exc
            if found is None:
                continue
            if inspect.isawaitable(found):
                close = getattr(found, "close", None)
                if close is not None:
                    close()  # a coroutine never awaited would warn
                raise PluginError(
                    f"{where} returned an awaitable; it is called synchronously at enqueue: "
                    f"make it a plain function returning a mapping or None"
                )
            if not isinstance(found, Mapping):
                raise PluginError(
                    f"{where} returned {type(found).__name__}; it must return a mapping of "
                    f"headers (str keys, JSON values) or None"
                )
            try:
                headers.update(check_meta(found))
            except ConfigurationError as exc:
                raise PluginError(f"{where} returned bad headers: {exc}") from None
        headers.update(task.meta)
        return headers


__all__ = ["HEADERS_HOOK", "EnqueueHeaders"]
