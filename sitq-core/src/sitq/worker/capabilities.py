"""What the worker asks of its surroundings: which worker types exist, an executor for one,
and whether a backend can expire results.

Each question is answered here and nowhere else, so that the registry of executors and the
backends' declared capabilities can replace these answers in one place.
"""

from __future__ import annotations

from ..backend import Backend, Capability
from ..executors import EXECUTORS, Executor, make_executor


def worker_types() -> tuple[str, ...]:
    """The ``worker_type`` names this process can run, e.g. ``("async", "thread", "process")``."""
    if "process" not in EXECUTORS:
        try:  # registers itself; kept in its own module as it pulls in multiprocessing
            from .. import processes  # noqa: F401
        except ImportError:
            pass
    return tuple(EXECUTORS)


def new_executor(worker_type: str, max_workers: int, *, max_memory_mb: float | None) -> Executor:
    """A fresh, not yet started executor of ``worker_type`` (a name `worker_types` lists)."""
    return make_executor(worker_type, max_workers, max_memory_mb=max_memory_mb)


def can_expire_results(backend: Backend) -> bool:
    """True if ``backend`` declares it can expire results (which ``result_ttl`` needs)."""
    return backend.supports(Capability.EXPIRE_RESULTS)
