"""Conformance tests of the lifecycle: ``connect`` and ``close``."""

from __future__ import annotations

from pathlib import Path

from ..runner import LoopRunner
from .support import KitBase, enqueue


class LifecycleTests(KitBase):
    """connect and close may be called again."""

    def test_connect_and_close_are_idempotent(self, tmp_path: Path) -> None:
        """connect() and close() may be called twice."""
        with LoopRunner() as runner:
            b = runner.run(self.make_backend(tmp_path))
            runner.run(b.connect())
            runner.run(b.connect())
            assert runner.run(enqueue(b))
            runner.run(b.close())
            runner.run(b.close())
