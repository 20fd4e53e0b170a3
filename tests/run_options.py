"""What the command line asked of this test run, for conftest.py and test modules alike."""

from __future__ import annotations

import os

import pytest


def slow_requested(config: pytest.Config) -> bool:
    """True for ``pytest -m slow`` (or ``SITQ_SOAK=1``): the soak sizes are wanted, and the
    tests that only exist at full size run (the others are skipped)."""
    markexpr = str(config.getoption("markexpr") or "")
    return os.environ.get("SITQ_SOAK") == "1" or ("slow" in markexpr and "not slow" not in markexpr)
