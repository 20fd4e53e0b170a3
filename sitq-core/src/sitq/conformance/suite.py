"""`BackendConformance`: the pytest suite every `Backend` passes unchanged.

Subclass it in a test module and say how to build an empty backend::

    from sitq.conformance import BackendConformance
    from sitq_memory import MemoryBackend

    class TestMemoryConformance(BackendConformance):
        async def make_backend(self, tmp_path):
            return MemoryBackend()

Every test gets a fresh backend from ``make_backend`` with its ``clock`` replaced by a
`FakeClock`, so due times and leases are tested without sleeping. Tests are plain functions
driving their own event loop: no pytest-asyncio needed. The suite is composed of one mixin per
part of the contract (`sitq.conformance.kit`); tests of an optional part run only for a backend
declaring its `Capability` and are skipped, naming it, otherwise. The suite ends with
`BackendStateMachine`, random operation sequences checked against a model of the queue.
"""

from __future__ import annotations

from typing import ClassVar

from hypothesis import settings

from .kit import (
    ClaimTests,
    ControlTests,
    EnqueueTests,
    ExpireResultsTests,
    FinishTests,
    HeartbeatBackendTests,
    LeaseTests,
    LifecycleTests,
    MetaTests,
    ProgressTests,
    PruneTests,
    PurgeTests,
    ReadingTests,
    RecoveryTests,
    ScheduleTests,
    TransactionalEnqueueTests,
    WakeupTests,
    backend_test,
)
from .statemachine import run_backend_state_machine


class BackendConformance(
    LifecycleTests,
    EnqueueTests,
    ClaimTests,
    LeaseTests,
    FinishTests,
    RecoveryTests,
    ControlTests,
    ReadingTests,
    PurgeTests,
    MetaTests,
    ProgressTests,
    WakeupTests,
    ExpireResultsTests,
    PruneTests,
    HeartbeatBackendTests,
    TransactionalEnqueueTests,
    ScheduleTests,
):
    """The conformance suite; subclass it and implement `make_backend`.

    Set ``state_machine_settings`` to a `hypothesis.settings` to run the state machine longer
    or shorter than `DEFAULT_SETTINGS`, or with shrinking on (`SHRINKING_SETTINGS`) to turn a
    failing sequence into a minimal one. A backend declaring `Capability.ENQUEUE_IN` also
    defines `transaction` (see `TransactionalEnqueueTests`).
    """

    state_machine_settings: ClassVar[settings | None] = None

    def test_state_machine(self) -> None:
        """Random operation sequences agree with a pure-Python model of the queue."""
        run_backend_state_machine(self.make_backend, self.state_machine_settings)


__all__ = ["BackendConformance", "backend_test"]
