"""`BackendConformance`: the pytest suite every `Backend` passes unchanged.

Subclass it in a test module and say how to build an empty backend:

```python
from sitq.conformance import BackendConformance
from sitq_memory import MemoryBackend

class TestMemoryConformance(BackendConformance):
    async def make_backend(self, tmp_path):
        return MemoryBackend()
```

Every test gets a fresh backend from ``make_backend`` with its ``clock`` replaced by a
`FakeClock`, so due times and leases are tested without sleeping. Tests are plain functions
driving their own event loop: no pytest-asyncio needed. The suite is composed of one mixin per
part of the contract (`sitq.conformance.kit`); tests of an optional part run only for a backend
declaring its `Capability` and are skipped, naming it, otherwise. The suite ends with
`BackendStateMachine`, random operation sequences checked against a model of the queue.

A failing test's message names the part of the contract it checks, and says so when the
backend reads the wall clock rather than ``self.clock()``. `CrossProcessClaimTests` claims
from other processes that open ``from_url(backend.url)``: build the backend with ``from_url``
in ``make_backend`` for it to run (it is skipped, saying why, otherwise).
"""

from __future__ import annotations

from typing import ClassVar

from hypothesis import settings

from .kit import (
    ClaimTests,
    ControlTests,
    CrossProcessClaimTests,
    EnqueueTests,
    ExpireResultsTests,
    FinishTests,
    FlowControlTests,
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
    TimeTests,
    TransactionalEnqueueTests,
    WakeupTests,
    WorkflowTests,
    backend_test,
)
from .kit.diagnosis import explain, fresh_backend_hint
from .statemachine import run_backend_state_machine


class BackendConformance(
    LifecycleTests,
    TimeTests,
    EnqueueTests,
    ClaimTests,
    CrossProcessClaimTests,
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
    FlowControlTests,
    WorkflowTests,
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
        try:
            run_backend_state_machine(self.make_backend, self.state_machine_settings)
        except AssertionError as error:
            explain(error, fresh_backend_hint(self.make_backend))
            raise


__all__ = ["BackendConformance", "backend_test"]
