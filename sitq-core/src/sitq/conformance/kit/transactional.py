"""Conformance tests of the optional `Capability.ENQUEUE_IN`: tasks stored inside the caller's
own database transaction exist once it commits, and never if it rolls back."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from ...backend import Backend, Capability
from ...errors import ConfigurationError
from ...task import TaskStatus
from ..clock import FakeClock
from ..records import make_record
from .support import KitBase, backend_test, requires, status_of


class _RolledBack(Exception):
    """Raised inside a transaction to roll it back."""


class TransactionalEnqueueTests(KitBase):
    """Transactional enqueue: `Backend.enqueue_in` follows the caller's transaction.

    A backend declaring `Capability.ENQUEUE_IN` also needs `transaction` in its test class, to
    open a transaction on its store; without it those tests are skipped.
    """

    def transaction(self, backend: Backend) -> AbstractAsyncContextManager[Any] | None:
        """An async context manager: an open transaction on ``backend``'s store, yielding the
        connection to pass to `Backend.enqueue_in`; it commits when the block ends and rolls
        back if the block raises. None (the default) skips the tests that need one."""
        return None

    def _transaction(self, backend: Backend) -> AbstractAsyncContextManager[Any]:
        transaction = self.transaction(backend)
        if transaction is None:
            pytest.skip(
                f"{type(self).__name__} declares Capability.ENQUEUE_IN but defines no "
                "transaction(backend) to test it with"
            )
        return transaction

    @backend_test
    async def test_enqueue_in_is_declared_or_refused(self, b: Backend, clock: FakeClock) -> None:
        """A backend that does not declare the capability refuses with `ConfigurationError`
        (what ``TaskQueue.enqueue(..., connection=...)`` relies on)."""
        if b.supports(Capability.ENQUEUE_IN):
            return
        with pytest.raises(ConfigurationError):
            await b.enqueue_in(object(), [make_record()])

    @requires(Capability.ENQUEUE_IN)
    async def test_enqueue_in_a_committed_transaction(self, b: Backend, clock: FakeClock) -> None:
        """The tasks exist once the transaction commits, as pending tasks."""
        records = [make_record(), make_record()]
        async with self._transaction(b) as connection:
            ids = await b.enqueue_in(connection, records)
        assert ids == [r.id for r in records]
        for task_id in ids:
            assert await status_of(b, task_id) is TaskStatus.PENDING

    @requires(Capability.ENQUEUE_IN)
    async def test_enqueue_in_a_rolled_back_transaction(self, b: Backend, clock: FakeClock) -> None:
        """The tasks never exist if the transaction rolls back."""
        records = [make_record(), make_record()]
        with pytest.raises(_RolledBack):
            async with self._transaction(b) as connection:
                await b.enqueue_in(connection, records)
                raise _RolledBack
        for record in records:
            assert await b.get_task(record.id) is None
