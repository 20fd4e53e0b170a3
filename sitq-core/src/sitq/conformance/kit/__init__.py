"""The parts of the conformance kit, one mixin class per part of the `Backend` contract.

`sitq.conformance.BackendConformance` composes them all; a backend's declared capabilities
(`Backend.capabilities`) decide which tests of the optional parts run, the others are skipped
with a reason naming the capability. A backend author subclasses `BackendConformance`; the
mixins are here for one who wants a part alone (e.g. ``class TestClaims(ClaimTests)`` with a
``make_backend``).
"""

from __future__ import annotations

from .claim import ClaimTests
from .control import ControlTests
from .enqueue import EnqueueTests
from .expire import ExpireResultsTests
from .finish import FinishTests
from .flow_control import FlowControlTests
from .heartbeat import HeartbeatBackendTests
from .leases import LeaseTests
from .lifecycle import LifecycleTests
from .meta import MetaTests
from .processes import CrossProcessClaimTests
from .progress import ProgressTests
from .prune import PruneTests
from .purge import PurgeTests
from .reading import ReadingTests
from .recovery import RecoveryTests
from .schedules import ScheduleTests
from .support import KitBase, backend_test, requires
from .times import TimeTests
from .transactional import TransactionalEnqueueTests
from .wakeups import WakeupTests
from .workflows import WorkflowTests

__all__ = [
    "ClaimTests",
    "ControlTests",
    "CrossProcessClaimTests",
    "EnqueueTests",
    "ExpireResultsTests",
    "FinishTests",
    "FlowControlTests",
    "HeartbeatBackendTests",
    "KitBase",
    "LeaseTests",
    "LifecycleTests",
    "MetaTests",
    "ProgressTests",
    "PruneTests",
    "PurgeTests",
    "ReadingTests",
    "RecoveryTests",
    "ScheduleTests",
    "TimeTests",
    "TransactionalEnqueueTests",
    "WakeupTests",
    "WorkflowTests",
    "backend_test",
    "requires",
]
