"""The records that registration hooks return: `BackendType`, `SerializerType` and
`ExecutorType`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .backend import Backend
    from .executors import Executor


@runtime_checkable
class Serializer(Protocol):
    """Anything with ``dumps(obj) -> bytes`` and ``loads(data) -> obj`` (the ``pickle`` module
    qualifies)."""

    def dumps(self, obj: Any) -> bytes:
        """Encode ``obj`` to bytes."""
        ...

    def loads(self, data: bytes) -> Any:
        """Decode bytes made by `dumps`."""
        ...


@dataclass(frozen=True)
class BackendType:
    """A backend registered for one URL scheme.

    ``load`` is the `Backend` subclass, or a zero-argument callable returning it (so a plugin
    module can defer importing heavy drivers until the scheme is used).
    """

    scheme: str
    load: type[Backend] | Callable[[], type[Backend]]
    distribution: str | None = None

    def backend_class(self) -> type[Backend]:
        """The backend class, importing it if registration deferred that."""
        from .backend import Backend

        if isinstance(self.load, type) and issubclass(self.load, Backend):
            return self.load
        cls = self.load()
        if not (isinstance(cls, type) and issubclass(cls, Backend)):
            raise TypeError(f"backend {self.scheme!r} loaded {cls!r}, which is not a Backend")
        return cls


@dataclass(frozen=True)
class SerializerType:
    """A serializer registered under ``name``.

    ``carries_code``: True if it can encode functions themselves (pickle-like); otherwise a
    task's function travels as its import path and is imported by the worker.
    """

    name: str
    serializer: Serializer
    carries_code: bool = False
    distribution: str | None = None


@dataclass(frozen=True)
class ExecutorType:
    """An executor registered as the ``worker_type`` ``name``.

    ``load`` is the `sitq.executors.Executor` subclass, or a zero-argument callable returning
    it (so that a module with heavy imports, like multiprocessing, is imported only when a
    worker chooses that ``worker_type``). The worker builds it as
    ``cls(max_workers, max_memory_mb=...)``.
    """

    name: str
    load: type[Executor] | Callable[[], type[Executor]]
    distribution: str | None = None

    def executor_class(self) -> type[Executor]:
        """The executor class, importing it if registration deferred that."""
        from .executors import Executor

        if isinstance(self.load, type) and issubclass(self.load, Executor):
            return self.load
        cls = self.load()
        if not (isinstance(cls, type) and issubclass(cls, Executor)):
            raise TypeError(
                f"worker_type {self.name!r} loaded {cls!r}, which is not a "
                "sitq.executors.Executor subclass"
            )
        return cls


#: Which distribution provides a well-known scheme, for "pip install …" hints.
KNOWN_BACKEND_DISTRIBUTIONS = {
    "sqlite": "sitq-sqlite",
    "memory": "sitq-memory",
    "postgresql": "sitq-postgres",
    "postgres": "sitq-postgres",
}
