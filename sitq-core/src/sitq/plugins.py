"""The plugin manager: one small facade over pluggy.

Built-in serializers and executors register through the same hooks as third-party plugins.
Entry points in the ``sitq`` group are loaded when a queue or worker first needs the manager,
never at import.

Environment switches:

* ``SITQ_DISABLE_PLUGIN_AUTOLOAD=1`` loads no entry point (like pytest's
  ``PYTEST_DISABLE_PLUGIN_AUTOLOAD``);
* ``SITQ_PLUGINS=sqlite,metrics`` loads only the entry points named.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click
import pluggy

from . import executors, hookspecs, serializers
from .errors import BackendNotFound, ConfigurationError, PluginError, SerializerNotFound
from .headers import EnqueueHeaders
from .middleware import TaskMiddleware
from .registry import KNOWN_BACKEND_DISTRIBUTIONS, BackendType, ExecutorType, SerializerType

if TYPE_CHECKING:
    from .backend import Backend
    from .executors import Executor

logger = logging.getLogger("sitq.plugins")

ENTRY_POINT_GROUP = "sitq"
ENV_DISABLE_AUTOLOAD = "SITQ_DISABLE_PLUGIN_AUTOLOAD"
ENV_ALLOWED_PLUGINS = "SITQ_PLUGINS"

#: The plugins of sitq-core itself, registered in every manager under these names.
BUILTIN_PLUGINS: dict[str, object] = {
    "sitq.serializers": serializers,
    "sitq.executors": executors,
}


@dataclass(frozen=True)
class PluginInfo:
    """One registered plugin, as `sitq plugins` lists it."""

    name: str
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]


class PluginManager:
    """sitq's view of pluggy: registered plugins, the backends, serializers and executors they
    provide, and the lifecycle notifications.

    :param autoload: load entry points of the ``sitq`` group (default: unless
        ``SITQ_DISABLE_PLUGIN_AUTOLOAD`` is set).
    :param plugins: extra plugin objects or modules to register.
    """

    def __init__(self, *, autoload: bool | None = None, plugins: Iterable[object] = ()) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        for name, plugin in BUILTIN_PLUGINS.items():
            self._pm.register(plugin, name=name)
        self._distributions: dict[str, metadata.Distribution | None] = {}
        if autoload is None:
            autoload = not os.environ.get(ENV_DISABLE_AUTOLOAD)
        if autoload:
            self._load_entry_points()
        for plugin in plugins:
            self.register(plugin)
        self._backends: dict[str, BackendType] | None = None
        self._serializers: dict[str, SerializerType] | None = None
        self._executors: dict[str, ExecutorType] | None = None
        self._commands: dict[str, click.Command] | None = None

    # -- registration ------------------------------------------------------------------------

    def _load_entry_points(self) -> None:
        allowed_env = os.environ.get(ENV_ALLOWED_PLUGINS)
        allowed = {n.strip() for n in allowed_env.split(",") if n.strip()} if allowed_env else None
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if allowed is not None and ep.name not in allowed:
                continue
            if self._pm.get_plugin(ep.name) is not None:
                first = self._distributions.get(ep.name)
                second = getattr(ep, "dist", None)
                if (
                    first is not None
                    and second is not None
                    and _dist_name(first) != _dist_name(second)
                ):
                    raise PluginError(
                        f"two installed distributions, {first.metadata['Name']} and "
                        f"{second.metadata['Name']}, both name their sitq plugin {ep.name!r}; "
                        f"uninstall one of them"
                    )
                continue
            if self._pm.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginError(
                    f"the sitq plugin {ep.name!r} ({ep.value}) failed to import: {exc!r}. "
                    f"Fix or uninstall it, or set {ENV_DISABLE_AUTOLOAD}=1."
                ) from exc
            self._pm.register(plugin, name=ep.name)
            self._distributions[ep.name] = getattr(ep, "dist", None)

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin object or module (its ``@sitq.hookimpl`` functions)."""
        self._pm.register(plugin, name=name)
        self._forget_registrations()

    def unregister(self, plugin: object) -> None:
        """Remove a registered plugin."""
        self._pm.unregister(plugin)
        self._forget_registrations()

    def _forget_registrations(self) -> None:
        """Drop what registration hooks returned: the plugins changed."""
        self._backends = self._serializers = self._executors = self._commands = None

    def with_plugins(self, *plugins: object) -> PluginManager:
        """A new manager with this one's plugins plus ``plugins`` (no entry points reloaded)."""
        child = PluginManager(autoload=False)
        for name, plugin in self._pm.list_name_plugin():
            if not _is_builtin(plugin):
                child._pm.register(plugin, name=name)
        child._distributions.update(self._distributions)
        for plugin in plugins:
            child.register(plugin)
        return child

    @property
    def hook(self) -> Any:
        """pluggy's hook relay, for callers that need it directly."""
        return self._pm.hook

    def list_plugins(self) -> list[PluginInfo]:
        """Every registered plugin with its distribution and the hooks it implements."""
        infos = []
        for name, plugin in self._pm.list_name_plugin():
            dist = self._distributions.get(name)
            builtin = _is_builtin(plugin)
            hooks = tuple(sorted(h.name for h in self._pm.get_hookcallers(plugin) or ()))
            infos.append(
                PluginInfo(
                    name=name,
                    distribution=dist.metadata["Name"]
                    if dist
                    else ("sitq-core" if builtin else None),
                    version=dist.version if dist else (_core_version() if builtin else None),
                    hooks=hooks,
                )
            )
        return infos

    # -- backends ----------------------------------------------------------------------------

    @property
    def backends(self) -> dict[str, BackendType]:
        """Every registered backend, by URL scheme."""
        if self._backends is None:
            self._backends = self._collect("sitq_backends", "scheme", BackendType)
        return self._backends

    def backend_class(self, scheme: str) -> type[Backend]:
        """The backend class registered for ``scheme``, or a `BackendNotFound` saying what to
        install."""
        entry = self.backends.get(scheme)
        if entry is None:
            raise BackendNotFound(_missing_message("backend for", f"{scheme}://", self.backends))
        return entry.backend_class()

    def backend_from_url(self, url: str) -> Backend:
        """Open the backend for ``url`` (``sqlite:///tasks.db``, ``memory://``, …)."""
        if not isinstance(url, str) or "://" not in url:
            raise ConfigurationError(
                f"backend URL {url!r} has no scheme; write e.g. 'sqlite:///tasks.db' or 'memory://'"
            )
        scheme = urlsplit(url).scheme.split("+", 1)[0].lower()
        return self.backend_class(scheme).from_url(url)

    # -- serializers -------------------------------------------------------------------------

    @property
    def serializers(self) -> dict[str, SerializerType]:
        """Every registered serializer, by name."""
        if self._serializers is None:
            self._serializers = self._collect("sitq_serializers", "name", SerializerType)
        return self._serializers

    def serializer(self, name: str) -> SerializerType:
        """The serializer registered as ``name``, or `SerializerNotFound` listing the choices."""
        entry = self.serializers.get(name)
        if entry is None:
            choices = ", ".join(sorted(self.serializers))
            raise SerializerNotFound(f"no serializer named {name!r}; choose one of: {choices}")
        return entry

    # -- commands ----------------------------------------------------------------------------

    @property
    def commands(self) -> dict[str, click.Command]:
        """Every ``sitq`` subcommand a plugin adds (``sitq_commands``), by name."""
        if self._commands is None:
            self._commands = self._collect("sitq_commands", "name", click.Command)
        return self._commands

    # -- executors ---------------------------------------------------------------------------

    @property
    def executors(self) -> dict[str, ExecutorType]:
        """Every registered executor, by ``worker_type``."""
        if self._executors is None:
            self._executors = self._collect("sitq_executors", "name", ExecutorType)
        return self._executors

    def executor_class(self, worker_type: str) -> type[Executor]:
        """The executor class registered as ``worker_type`` (imported now if registration
        deferred that), or a `ConfigurationError` listing the choices."""
        entry = self.executors.get(worker_type)
        if entry is None:
            choices = ", ".join(sorted(self.executors))
            raise ConfigurationError(
                f"unknown worker_type {worker_type!r}; choose one of: {choices}"
            )
        return entry.executor_class()

    def _collect(self, hook: str, key: str, record_type: type[Any]) -> dict[str, Any]:
        """Call every implementation of registration ``hook`` and index the records by ``key``.

        Called one implementation at a time (not through pluggy's relay) so that an error can
        name the plugin that caused it.
        """
        what = record_type.__name__.removesuffix("Type").lower()
        found: dict[str, Any] = {}
        owners: dict[str, str] = {}
        for impl in getattr(self._pm.hook, hook).get_hookimpls():  # in registration order
            plugin = self._describe(impl.plugin_name)
            try:
                records = impl.function()
            except Exception as exc:
                raise PluginError(
                    f"the {hook} hook of {plugin} raised {exc!r}; fix or uninstall it, or leave "
                    f"it out with {ENV_ALLOWED_PLUGINS}"
                ) from exc
            for record in records or ():
                if not isinstance(record, record_type):
                    raise PluginError(
                        f"the {hook} hook of {plugin} returned {record!r}; it must return a list "
                        f"of {record_type.__module__.split('.')[0]}.{record_type.__name__}"
                    )
                name = getattr(record, key)
                if name in found:
                    raise PluginError(
                        f"two plugins register the {what} {name!r}: {owners[name]} and {plugin}. "
                        f"Uninstall one of them, or leave one out with {ENV_ALLOWED_PLUGINS} "
                        f"(see `sitq plugins`)."
                    )
                found[name] = record
                owners[name] = plugin
        return found

    def _describe(self, name: str) -> str:
        """``'name' (distribution)`` of a registered plugin, for error messages."""
        dist = self._distributions.get(name)
        return f"{name!r} ({dist.metadata['Name']})" if dist is not None else repr(name)

    # -- lifecycle ---------------------------------------------------------------------------

    def lifecycle(self) -> Lifecycle:
        """A snapshot of the lifecycle, enqueue and middleware hook implementations, for fast
        use per task."""
        return Lifecycle(self._pm)


def _is_builtin(plugin: object) -> bool:
    return any(plugin is builtin for builtin in BUILTIN_PLUGINS.values())


def _dist_name(dist: metadata.Distribution) -> str:
    """A distribution's name, normalized (``Sitq_Foo`` and ``sitq-foo`` are one)."""
    return str(dist.metadata["Name"]).lower().replace("_", "-").replace(".", "-")


def _core_version() -> str | None:
    try:
        return metadata.version("sitq-core")
    except metadata.PackageNotFoundError:
        return None


def _missing_message(what: str, name: str, available: dict[str, Any]) -> str:
    scheme = name.split("://", 1)[0]
    hint = ""
    dist = KNOWN_BACKEND_DISTRIBUTIONS.get(scheme)
    if dist:
        hint = f" Install it: pip install {dist}."
        if os.environ.get(ENV_DISABLE_AUTOLOAD):
            hint += f" (Plugin autoloading is disabled by {ENV_DISABLE_AUTOLOAD}.)"
        elif os.environ.get(ENV_ALLOWED_PLUGINS):
            allowed = os.environ[ENV_ALLOWED_PLUGINS]
            hint += f" (Only the plugins in {ENV_ALLOWED_PLUGINS}={allowed} are loaded.)"
    choices = ", ".join(f"{s}://" for s in sorted(available)) or "none installed"
    return f"No {what} {name!r}.{hint} Choose one of: {choices}."


class Lifecycle:
    """Calls lifecycle hook implementations one by one, isolating failures; holds the
    snapshots of the per-task hooks a queue or worker uses: ``headers`` (`EnqueueHeaders`)
    and ``middleware`` (`TaskMiddleware`), each None when no plugin implements it.

    pluggy stops at the first exception; a notification must not, so each implementation is
    called on its own, awaited if it returns an awaitable, and its errors are logged.
    """

    __slots__ = ("_impls", "headers", "middleware")

    def __init__(self, pm: pluggy.PluginManager) -> None:
        #: The ``sitq_enqueue_headers`` implementations, or None.
        self.headers = EnqueueHeaders.collect(pm)
        #: The ``sitq_task_wrap`` implementations chained outermost first, or None.
        self.middleware = TaskMiddleware.collect(pm)
        self._impls: dict[str, list[tuple[Callable[..., Any], tuple[str, ...], str]]] = {}
        for name in hookspecs.LIFECYCLE_HOOKS:
            caller = getattr(pm.hook, name)
            self._impls[name] = [
                (impl.function, tuple(impl.argnames), impl.plugin_name)
                for impl in reversed(caller.get_hookimpls())
            ]

    def has(self, name: str) -> bool:
        """True if any plugin implements the hook ``name``."""
        return bool(self._impls[name])

    async def emit(self, name: str, **kwargs: Any) -> None:
        """Call every implementation of hook ``name``; never raises."""
        for outcome, plugin_name in self._called(name, kwargs):
            if inspect.isawaitable(outcome):
                try:
                    await outcome
                except Exception:
                    _log_failure(name, plugin_name)

    def emit_blocking(
        self, name: str, run: Callable[[Coroutine[Any, Any, Any]], Any], **kwargs: Any
    ) -> None:
        """`emit` from plain code: each implementation is called in this thread, and what an
        async one returns is awaited through ``run`` (a blocking call on some event loop,
        such as `sitq.bridge.Portal.run`); never raises."""
        for outcome, plugin_name in self._called(name, kwargs):
            if inspect.isawaitable(outcome):
                try:
                    run(_awaited(outcome))
                except Exception:
                    _log_failure(name, plugin_name)

    def _called(self, name: str, kwargs: dict[str, Any]) -> Iterator[tuple[Any, str]]:
        """Call each implementation of hook ``name`` in turn (the next one once the caller
        has dealt with what the last returned); yield what it returned and its plugin's name.
        An implementation that raises is logged and skipped."""
        for function, argnames, plugin_name in self._impls[name]:
            try:
                outcome = function(**{arg: kwargs[arg] for arg in argnames})
            except Exception:
                _log_failure(name, plugin_name)
                continue
            yield outcome, plugin_name


def _log_failure(hook: str, plugin_name: str) -> None:
    logger.exception("sitq hook %s of plugin %r raised; ignored", hook, plugin_name)


async def _awaited(outcome: Awaitable[Any]) -> Any:
    return await outcome


_default: PluginManager | None = None
_default_lock = threading.Lock()


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, built (and entry points loaded) on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = PluginManager()
        return _default


def reset_plugin_manager() -> None:
    """Forget the process-wide manager, so the next use reloads entry points."""
    global _default
    with _default_lock:
        _default = None
