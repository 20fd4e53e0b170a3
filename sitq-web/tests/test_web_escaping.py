"""Task arguments, errors and tracebacks are attacker-controlled: every page escapes them."""

from __future__ import annotations

import asyncio
import pickle
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from web_seeding import HOSTILE, Seeded

import sitq
from sitq.backend import TaskRecord
from sitq_web import create_app

RAW = ["<script>alert", "alert('x')</script>"]


def _pages(seeded: Seeded) -> list[str]:
    return [
        "/", "/tasks", "/tasks?q=alert", f"/tasks/{seeded.pending}", f"/tasks/{seeded.dead}",
        "/workers", "/workflows", "/limits", "/schedules",
    ]  # fmt: skip


def test_no_page_holds_a_stored_value_unescaped(client: TestClient, seeded: Seeded) -> None:
    for path in _pages(seeded):
        html = client.get(path).text
        for raw in RAW:
            assert raw not in html, path
    detail = client.get(f"/tasks/{seeded.dead}").text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &#34;quoted&#34;" in detail


def test_arguments_show_as_escaped_reprs(client: TestClient, seeded: Seeded) -> None:
    html = client.get(f"/tasks/{seeded.pending}").text
    assert "&lt;script&gt;" in html
    assert "name=" in html  # the keyword argument, by name


@pytest.mark.parametrize("field", ["q", "task", "queue"])
def test_filter_values_are_echoed_escaped(client: TestClient, field: str) -> None:
    html = client.get("/tasks", params={field: HOSTILE}).text
    for raw in RAW:
        assert raw not in html


def test_the_api_is_json_not_html(client: TestClient) -> None:
    response = client.get("/api/summary")
    assert response.headers["content-type"] == "application/json"


def test_pickled_arguments_are_never_unpickled(tmp_path: Path, seeded: Seeded) -> None:
    marker = tmp_path / "unpickled"

    class Trap:
        """Creates ``marker`` if anyone unpickles it."""

        def __reduce__(self) -> tuple[object, tuple[str, str]]:
            return (open, (str(marker), "w"))

    payload = pickle.dumps(("builtins:print", (Trap(), "fine"), {}))
    record = TaskRecord(id="trap", function="builtins:print", payload=payload, serializer="pickle")

    async def store() -> None:
        async with sitq.TaskQueue(seeded.url) as queue:
            await queue.backend.enqueue(record)

    asyncio.run(store())
    with TestClient(create_app(seeded.url)) as test_client:
        html = test_client.get("/tasks/trap").text
        test_client.get("/tasks?q=fine")
    assert not marker.exists()
    assert "can carry code" in html
    assert "&#39;fine&#39;" in html  # read from the opcodes, not by unpickling
