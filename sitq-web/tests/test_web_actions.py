"""Every action changes the store through the backend (so every worker sees it), then
redirects back with a flash message."""

from __future__ import annotations

import asyncio
import html as html_text
import re
import time

import pytest
from starlette.testclient import TestClient
from web_seeding import Seeded

import sitq
from sitq.backend import Capability, TaskRecord
from sitq.task import TaskStatus
from sitq_web.security import CSRF_COOKIE


def _record(seeded: Seeded, task_id: str) -> TaskRecord | None:
    async def read() -> TaskRecord | None:
        async with sitq.TaskQueue(seeded.url) as queue:
            return await queue.backend.get_task(task_id)

    return asyncio.run(read())


def _status(seeded: Seeded, task_id: str) -> TaskStatus | None:
    record = _record(seeded, task_id)
    return None if record is None else record.status


def _post(client: TestClient, path: str, **data: object) -> str:
    """POST an action as its form does; the text of the page it redirects to."""
    client.get("/")
    token = client.cookies.get(CSRF_COOKIE)
    response = client.post(path, data={"csrf_token": token, **data})
    assert response.status_code == 200, response.text
    return response.text


def _flash(html: str) -> str:
    found = re.search(r'data-testid="flash">([^<]*)<', html)
    assert found, "no flash message"
    return html_text.unescape(found.group(1))


def test_retry_puts_a_dead_task_back_to_pending(client: TestClient, seeded: Seeded) -> None:
    html = _post(client, f"/tasks/{seeded.dead}/retry", next=f"/tasks/{seeded.dead}")
    assert _flash(html) == f"task {seeded.dead} requeued"
    assert f'data-task-id="{seeded.dead}" data-status="pending"' in html
    assert _status(seeded, seeded.dead) is TaskStatus.PENDING


def test_cancel_stops_a_running_task(client: TestClient, seeded: Seeded) -> None:
    html = _post(client, f"/tasks/{seeded.running}/cancel")
    assert "cancelled" in _flash(html)
    record = _record(seeded, seeded.running)
    assert record is not None and record.status is TaskStatus.CANCELLED
    assert record.lease_token is None  # its worker can store no outcome any more


def test_an_action_the_state_forbids_says_so(client: TestClient, seeded: Seeded) -> None:
    html = _post(client, f"/tasks/{seeded.succeeded}/cancel")
    assert "not cancelled" in _flash(html)
    assert _status(seeded, seeded.succeeded) is TaskStatus.SUCCEEDED


def test_delete_removes_a_finished_task_only(client: TestClient, seeded: Seeded) -> None:
    html = _post(client, f"/tasks/{seeded.succeeded}/delete")
    assert _flash(html) == f"task {seeded.succeeded} deleted"
    assert _record(seeded, seeded.succeeded) is None
    html = _post(client, f"/tasks/{seeded.pending}/delete")
    assert "not deleted" in _flash(html)
    assert _status(seeded, seeded.pending) is TaskStatus.PENDING


def test_an_unknown_action_is_a_404(client: TestClient, seeded: Seeded) -> None:
    client.get("/")
    token = client.cookies.get(CSRF_COOKIE)
    for path in (f"/tasks/{seeded.dead}/explode", "/queues/default/drop"):
        assert client.post(path, data={"csrf_token": token}).status_code == 404


def test_bulk_over_the_selection(client: TestClient, seeded: Seeded) -> None:
    html = _post(
        client, "/tasks/bulk", action="cancel", scope="selected",
        ids=[seeded.pending, seeded.other_queue, seeded.succeeded],
    )  # fmt: skip
    assert _flash(html) == "2 of 3 tasks cancelled"
    assert _status(seeded, seeded.pending) is TaskStatus.CANCELLED
    assert _status(seeded, seeded.other_queue) is TaskStatus.CANCELLED
    assert _status(seeded, seeded.succeeded) is TaskStatus.SUCCEEDED


def test_bulk_over_the_whole_filter(client: TestClient, seeded: Seeded) -> None:
    html = _post(client, "/tasks/bulk", action="cancel", scope="filter", status="pending")
    assert _flash(html) == "2 of 2 tasks cancelled"
    html = _post(client, "/tasks/bulk", action="retry", scope="filter", status="cancelled")
    assert _flash(html) == "2 of 2 tasks requeued"
    html = _post(client, "/tasks/bulk", action="delete", scope="filter", queue="mail")
    assert _flash(html) == "0 of 1 tasks deleted"  # pending: cancel it first
    assert _status(seeded, seeded.other_queue) is TaskStatus.PENDING


def test_bulk_refuses_an_unknown_action(client: TestClient) -> None:
    client.get("/")
    token = client.cookies.get(CSRF_COOKIE)
    response = client.post("/tasks/bulk", data={"csrf_token": token, "action": "explode"})
    assert response.status_code == 400 and "retry" in response.text


def test_next_never_leaves_the_app(client: TestClient, seeded: Seeded) -> None:
    client.get("/")
    token = client.cookies.get(CSRF_COOKIE)
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example/x"):
        response = client.post(
            f"/tasks/{seeded.dead}/retry", data={"csrf_token": token, "next": target},
            follow_redirects=False,
        )  # fmt: skip
        assert response.headers["location"] == f"/tasks/{seeded.dead}"


def test_pause_and_resume_a_queue(client: TestClient, seeded: Seeded) -> None:
    backend = client.app.state.dashboard.backend  # type: ignore[attr-defined]
    html = _post(client, "/queues/mail/pause")
    if not backend.supports(Capability.FLOW_CONTROL):
        assert "not supported by this backend" in _flash(html)
        return
    assert _flash(html) == "queue mail paused"
    assert 'data-queue="mail" data-paused="true"' in html
    assert "mail" in asyncio.run(_paused(seeded))
    html = _post(client, "/queues/mail/resume")
    assert 'data-queue="mail" data-paused="false"' in html


async def _paused(seeded: Seeded) -> set[str]:
    async with sitq.TaskQueue(seeded.url) as queue:
        return await queue.backend.paused_queues()


def test_pause_and_resume_a_schedule(client: TestClient, seeded: Seeded) -> None:
    async def define() -> None:
        async with sitq.TaskQueue(seeded.url) as queue:
            if queue.backend.supports(Capability.SCHEDULES):
                await queue.backend.add_schedules({"nightly": "cron 0 3 * * *"})

    asyncio.run(define())
    backend = client.app.state.dashboard.backend  # type: ignore[attr-defined]
    if not backend.supports(Capability.SCHEDULES):
        pytest.skip("the backend stores no schedule")
    html = _post(client, "/schedules/nightly/pause")
    assert _flash(html) == "schedule nightly paused"
    assert 'data-schedule="nightly" data-paused="true"' in html
    html = _post(client, "/schedules/nightly/resume")
    assert 'data-schedule="nightly" data-paused="false"' in html
    html = _post(client, "/schedules/nope/pause")
    assert _flash(html) == "no stored schedule 'nope'"


def test_cancel_a_workflow_where_the_backend_has_them(client: TestClient, seeded: Seeded) -> None:
    backend = client.app.state.dashboard.backend  # type: ignore[attr-defined]
    if not backend.supports(Capability.WORKFLOWS):
        html = _post(client, "/workflows/wf-1/cancel")
        assert "not supported by this backend" in _flash(html)
        return
    first, second = asyncio.run(_workflow(seeded))
    detail = client.get(f"/tasks/{second}").text
    assert f'data-task-id="{first}"' in _part(detail, "task-parents")
    assert 'href="/workflows/wf-1"' in detail
    assert f'data-task-id="{second}"' in _part(client.get(f"/tasks/{first}").text, "task-children")
    assert 'data-workflow-id="wf-1"' in client.get("/workflows").text
    html = _post(client, "/workflows/wf-1/cancel", next="/workflows/wf-1")
    assert _flash(html) == "workflow wf-1: 2 tasks cancelled"
    assert _status(seeded, first) is TaskStatus.CANCELLED
    assert _status(seeded, second) is TaskStatus.CANCELLED
    html = _post(client, "/workflows/wf-unknown/cancel")
    assert _flash(html) == "workflow wf-unknown: 0 tasks cancelled"


async def _workflow(seeded: Seeded) -> tuple[str, str]:
    """A workflow ``wf-1`` of two steps, the second waiting for the first."""
    now = time.time()
    steps = [
        TaskRecord(id=f"wf-1-{n}", function=f"app:step{n}", payload=b'["app:step", [], {}]',
                   serializer="json", created_at=now, available_at=now, workflow_id="wf-1",
                   parents=parents)
        for n, parents in ((1, ()), (2, ("wf-1-1",)))
    ]  # fmt: skip
    async with sitq.TaskQueue(seeded.url) as queue:
        first, second = await queue.backend.enqueue_many(steps)
    return first, second


def _part(html: str, testid: str) -> str:
    start = html.index(f'data-testid="{testid}"')
    return html[start : html.index("</table>", start)]
