"""The conformance kit: the tests every sitq backend passes unchanged.

For backend authors (and sitq's own backends):

```python
from sitq.conformance import BackendConformance

class TestMyBackend(BackendConformance):
    async def make_backend(self, tmp_path):
        return MyBackend(tmp_path / "store")
```

The suite is composed of one mixin per part of the contract (`sitq.conformance.kit`); tests of
an optional part run for a backend declaring its `sitq.backend.Capability`.

Needs the ``testing`` extra (``pip install sitq-core[testing]``: pytest and hypothesis).
Also here: `FakeClock` to replace `Backend.clock`, `make_record` to build records,
`QueueModel` and `BackendStateMachine` (run with `run_backend_state_machine`) for stateful
tests, and `backend_test` to write more tests in the suite's style.

Testing your own code that uses sitq? Its helpers are in `sitq.testing` (the kit's name in
sitq 0.1: backends written then still import the kit from there).
"""

from __future__ import annotations

from .clock import FakeClock
from .model import QueueModel
from .records import make_record
from .runner import LoopRunner
from .statemachine import (
    DEFAULT_SETTINGS,
    SHRINKING_SETTINGS,
    BackendStateMachine,
    machine_for,
    run_backend_state_machine,
)
from .suite import BackendConformance, backend_test

__all__ = [
    "DEFAULT_SETTINGS",
    "SHRINKING_SETTINGS",
    "BackendConformance",
    "BackendStateMachine",
    "FakeClock",
    "LoopRunner",
    "QueueModel",
    "backend_test",
    "machine_for",
    "make_record",
    "run_backend_state_machine",
]
