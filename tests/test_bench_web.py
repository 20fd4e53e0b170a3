"""The dashboard's page-time script (``bench/web_pages.py``) runs to its table at a tiny size:
a store seeded through the public API, every page answering 200."""

from __future__ import annotations

import pytest
from bench_support import bench_module

pytestmark = [pytest.mark.needs_web, pytest.mark.needs_sqlite]


def test_every_page_is_timed_on_a_seeded_store(capsys: pytest.CaptureFixture[str]) -> None:
    script = bench_module("web_pages")
    assert script.main(["--tasks", "400"]) == 0
    table = capsys.readouterr().out
    assert "400 tasks in SQLite" in table
    for page in ("task list, deepest page", "text matching nothing", "summary read"):
        assert page in table
