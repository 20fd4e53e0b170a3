"""sitq-memory: an in-process, thread- and loop-safe sitq backend."""

from .backend import MemoryBackend

__all__ = ["MemoryBackend"]
