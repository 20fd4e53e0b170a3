"""pytest fixtures for testing code that uses sitq (installed with sitq-core, loaded by pytest
through the ``pytest11`` entry point; fixtures only, nothing runs unless a test asks).

* ``sitq_backend_url``: where test tasks are stored: a fresh SQLite file in the test's
  ``tmp_path`` (override it to use another backend, below);
* ``sitq_queue``: a `sitq.testing.SitqTestQueue` (a `SyncTaskQueue` with ``enqueued()``,
  ``assert_enqueued()``, ``assert_not_enqueued()``, ``assert_nothing_enqueued()``);
* ``sitq_worker``: a `sitq.testing.SitqTestWorker` on that queue (no retry delay, fast polls)
  whose ``drain()`` runs everything pending and returns the results;
* ``sitq_eager_queue``: a `sitq.eager.EagerSyncTaskQueue`: tasks run as they are enqueued.

Override ``sitq_backend_url`` in your ``conftest.py`` to use another backend:

```python
@pytest.fixture
def sitq_backend_url():
    return "memory://"
```

sitq is imported only when a fixture is used, so the plugin costs nothing otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .eager import EagerSyncTaskQueue
    from .testing import SitqTestQueue, SitqTestWorker


@pytest.fixture
def sitq_backend_url(tmp_path: Path) -> str:
    """The backend test tasks go to: a new SQLite file in ``tmp_path`` (override to change)."""
    return f"sqlite:///{tmp_path / 'sitq-test.db'}"


@pytest.fixture
def sitq_queue(sitq_backend_url: str) -> Iterator[SitqTestQueue]:
    """A blocking queue on ``sitq_backend_url`` with assertions about what was enqueued."""
    from .testing import SitqTestQueue

    queue = SitqTestQueue(sitq_backend_url)
    with queue:
        yield queue


@pytest.fixture
def sitq_worker(sitq_queue: SitqTestQueue) -> Iterator[SitqTestWorker]:
    """A worker on ``sitq_queue``: ``sitq_worker.drain()`` runs every pending task."""
    from .testing import SitqTestWorker

    worker = SitqTestWorker(sitq_queue, retry_delay=0.0, poll_interval=0.05, worker_id="test")
    try:
        yield worker
    finally:
        worker.close()


@pytest.fixture
def sitq_eager_queue(sitq_backend_url: str) -> Iterator[EagerSyncTaskQueue]:
    """A blocking queue whose tasks run as soon as they are enqueued."""
    from .eager import EagerSyncTaskQueue

    queue = EagerSyncTaskQueue(sitq_backend_url)
    with queue:
        yield queue
