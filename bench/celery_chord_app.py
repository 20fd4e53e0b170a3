"""The tasks of Celery's chord in the bench, on the bench's Celery app (`celery_app`: Redis as
broker and result store, keys under the run's prefix); its worker runs ``-A celery_chord_app``.
"""

from __future__ import annotations

from celery_app import app

__all__ = ["app", "chord_join", "chord_member"]


@app.task
def chord_member() -> None:
    """A chord member: does nothing (its result, None, is stored: a chord needs it)."""


@app.task
def chord_join(results: list[None]) -> int:
    """The chord's callback: how many results it received."""
    return len(results)
