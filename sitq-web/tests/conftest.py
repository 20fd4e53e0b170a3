"""Fixtures of sitq-web's tests: a seeded SQLite file and a client on the dashboard."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from web_seeding import Seeded, seed

from sitq_web import create_app


@pytest.fixture
def seeded(tmp_path: Path) -> Seeded:
    """A SQLite file holding a task in each state (see `web_seeding.seed`)."""
    return asyncio.run(seed(tmp_path / "tasks.db"))


@pytest.fixture
def client(seeded: Seeded) -> Iterator[TestClient]:
    """A client on the dashboard of the seeded file, no auth."""
    with TestClient(create_app(seeded.url)) as test_client:
        yield test_client
