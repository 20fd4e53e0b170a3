"""sitq-web on PostgreSQL: every page renders from a real server, and an action changes it."""

from __future__ import annotations

import asyncio
import re

import pytest
from postgres_support import PG_URL, drop_prefix, new_prefix, require_postgres
from starlette.testclient import TestClient

import sitq
from sitq.backend import Outcome
from sitq.task import TaskStatus
from sitq_web import create_app
from sitq_web.security import CSRF_COOKIE

pytestmark = [pytest.mark.needs_web, pytest.mark.needs_postgres, pytest.mark.postgres]

PAGES = ["/", "/tasks", "/tasks?q=%3Cscript", "/workers", "/schedules", "/limits", "/workflows"]


def test_the_dashboard_on_postgresql() -> None:
    asyncio.run(require_postgres())
    prefix = new_prefix("web")
    url = f"{PG_URL}?table_prefix={prefix}"
    try:
        dead = asyncio.run(_seed(url))
        with TestClient(create_app(url)) as client:
            for path in [*PAGES, f"/tasks/{dead}"]:
                response = client.get(path)
                assert response.status_code == 200, path
                assert "<script>alert" not in response.text
            assert re.search(rf'data-task-id="{dead}"', client.get("/tasks?status=dead").text)
            token = client.cookies.get(CSRF_COOKIE)
            assert client.post(f"/tasks/{dead}/retry").status_code == 403
            client.post(f"/tasks/{dead}/retry", data={"csrf_token": token})
        assert asyncio.run(_status(url, dead)) is TaskStatus.PENDING
    finally:
        asyncio.run(drop_prefix(prefix))


async def _seed(url: str) -> str:
    async with sitq.TaskQueue(url, serializer="json") as queue:
        task_id = await queue.enqueue("app:job", "<script>alert(1)</script>")
        claimed = await queue.backend.claim_by_id(task_id, worker_id="w", lease_seconds=60)
        assert claimed is not None and claimed.lease_token is not None
        failure = Outcome.dead(task_id, claimed.lease_token, "<script>alert(2)</script>")
        await queue.backend.finish([failure])
        return task_id


async def _status(url: str, task_id: str) -> TaskStatus | None:
    async with sitq.TaskQueue(url) as queue:
        record = await queue.backend.get_task(task_id)
        return None if record is None else record.status
