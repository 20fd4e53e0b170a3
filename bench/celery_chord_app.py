"""The tasks of Celery's chord in the bench, on the bench's Celery app (`celery_app`: Redis as
broker and result store, keys under the run's prefix); its worker runs ``-A celery_chord_app``.
"""

from __future__ import annotations

from celery import chord  # type: ignore[import-untyped, import-not-found, unused-ignore]
from celery_app import app

__all__ = ["app", "chord_join", "chord_member", "run_chord"]


@app.task  # type: ignore[untyped-decorator]  # Celery has no type hints
def chord_member() -> None:
    """A chord member: does nothing (its result, None, is stored: a chord needs it)."""


@app.task  # type: ignore[untyped-decorator]
def chord_join(results: list[None]) -> int:
    """The chord's callback: how many results it received."""
    return len(results)


def run_chord(n: int, timeout: float) -> int:
    """Send a chord of ``n`` members and `chord_join`; wait for the callback's result."""
    result = chord(chord_member.s() for _ in range(n))(chord_join.s())
    return int(result.get(timeout=timeout))
