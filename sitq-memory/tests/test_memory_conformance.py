"""MemoryBackend passes the backend conformance kit unchanged."""

from __future__ import annotations

from pathlib import Path

from sitq.conformance import BackendConformance
from sitq_memory import MemoryBackend


class TestMemoryConformance(BackendConformance):
    async def make_backend(self, tmp_path: Path) -> MemoryBackend:
        return MemoryBackend()
