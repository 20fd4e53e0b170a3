"""Every page renders from a real SQLite store, with the DOM hooks the browser tests use."""

from __future__ import annotations

import asyncio
import html as html_text
import re
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from web_seeding import WORKER_ID, Seeded

import sitq
from sitq.backend import Capability
from sitq_web import create_app

PAGES = ["/", "/tasks", "/workers", "/schedules", "/limits", "/workflows"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_with_the_navigation(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert 'data-testid="nav"' in response.text
    assert response.headers["content-type"].startswith("text/html")


def test_overview_counts_each_queue_and_status(client: TestClient) -> None:
    html = client.get("/").text
    assert 'data-testid="queue-counts"' in html
    default = _row(html, 'data-queue="default"')
    assert re.search(r'data-status="pending"[^>]*><a [^>]*>1<', default)
    assert re.search(r'data-status="running"[^>]*><a [^>]*>1<', default)
    assert re.search(r'data-status="dead"[^>]*><a [^>]*>1<', default)
    assert 'data-queue="mail"' in html
    for hook in ("oldest-pending", "workers", "throughput", "failure-rate"):
        assert f'data-testid="{hook}"' in html
    assert "<svg" in html and 'class="failed"' in html
    assert "1 ok · 1 failed" in html  # the succeeded and the dead task finished this hour


def test_task_list_filters_by_status_queue_name_and_text(
    client: TestClient, seeded: Seeded
) -> None:
    assert _ids(client.get("/tasks").text) == {
        seeded.pending, seeded.running, seeded.dead, seeded.succeeded, seeded.other_queue
    }  # fmt: skip
    assert _ids(client.get("/tasks?status=dead").text) == {seeded.dead}
    assert _ids(client.get("/tasks?queue=mail").text) == {seeded.other_queue}
    assert _ids(client.get("/tasks?task=add").text) == {seeded.succeeded}
    assert _ids(client.get("/tasks?q=a%40b.c").text) == {seeded.other_queue}
    assert _ids(client.get("/tasks?q=alert").text) == {seeded.pending, seeded.dead}
    assert _ids(client.get("/tasks?status=succeeded&q=alert").text) == set()


def test_the_task_list_pages_older_tasks_by_keyset(client: TestClient, seeded: Seeded) -> None:
    first = client.get("/tasks").text
    assert 'data-testid="live-counts"' in first and "data-live-rows" in first
    assert 'data-testid="next-page"' not in first  # five tasks: one page
    older = client.get("/tasks", params={"before": seeded.dead}).text
    assert _ids(older) == {seeded.pending}  # enqueued before the dead task
    assert 'data-testid="first-page"' in older and "data-live-rows" not in older


def test_an_unknown_status_is_a_clear_400(client: TestClient) -> None:
    response = client.get("/tasks?status=bogus")
    assert response.status_code == 400
    assert "unknown status" in response.text and "pending" in response.text


def test_task_detail_shows_call_result_timings_and_actions(
    client: TestClient, seeded: Seeded
) -> None:
    html = client.get(f"/tasks/{seeded.succeeded}").text
    assert f'data-task-id="{seeded.succeeded}"' in html
    assert "app.tasks:add" in html
    args = _section(html, "task-args")
    assert "<code>1</code>" in args and "<code>2</code>" in args
    assert '<pre data-testid="task-result">3</pre>' in html
    assert 'data-testid="action-delete"' in html
    assert 'data-testid="action-retry"' not in html
    dead = client.get(f"/tasks/{seeded.dead}").text
    assert 'data-testid="task-traceback"' in dead and 'data-testid="action-retry"' in dead
    running = client.get(f"/tasks/{seeded.running}").text
    assert WORKER_ID in running and 'data-testid="action-cancel"' in running


def test_an_unknown_task_is_a_404(client: TestClient) -> None:
    assert client.get("/tasks/no-such-task").status_code == 404


def test_workers_are_seen_through_their_running_tasks(client: TestClient, seeded: Seeded) -> None:
    html = client.get("/workers").text
    row = _row(html, f'data-worker-id="{WORKER_ID}"')
    assert "web-host" in row and "4242" in row and seeded.running in row


def test_views_of_optional_features_say_when_the_backend_lacks_them(client: TestClient) -> None:
    backend = client.app.state.dashboard.backend  # type: ignore[attr-defined]
    for path, capability, present in (
        ("/limits", "FLOW_CONTROL", "queues-table"),
        ("/workflows", "WORKFLOWS", "workflows-table"),
        ("/schedules", "SCHEDULES", "schedules-table"),
    ):
        html = client.get(path).text
        if backend.supports(Capability[capability]):
            assert f'data-testid="{present}"' in html
        else:
            assert "not supported by this backend" in html


def test_a_workflow_page_without_workflows_says_so(client: TestClient) -> None:
    backend = client.app.state.dashboard.backend  # type: ignore[attr-defined]
    response = client.get("/workflows/wf-unknown")
    if backend.supports(Capability.WORKFLOWS):
        assert response.status_code == 404
    else:
        assert response.status_code == 200 and "not supported by this backend" in response.text


def test_live_summary_json(client: TestClient, seeded: Seeded) -> None:
    summary = client.get("/api/summary").json()
    assert summary["queues"]["default"]["pending"] == 1
    assert summary["totals"]["pending"] == 2
    assert summary["workers"][0]["id"] == WORKER_ID
    assert summary["oldest_pending"]["id"] == seeded.pending


def test_the_page_loads_its_script_and_style_from_the_package(client: TestClient) -> None:
    for asset in ("/static/sitq-web.js", "/static/sitq-web.css"):
        assert client.get(asset).status_code == 200


def _ids(html: str) -> set[str]:
    return set(re.findall(r'data-testid="task-row" data-task-id="([^"]+)"', html))


def _row(html: str, marker: str) -> str:
    start = html.index(marker)
    return html[start : html.index("</tr>", start)]


def _section(html: str, testid: str) -> str:
    start = html.index(f'data-testid="{testid}"')
    return html[start : html.index("</dd>", start)]


def test_pages_of_fifty_follow_each_other_without_gaps(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'many.db'}"

    async def store() -> list[str]:
        async with sitq.TaskQueue(url, serializer="json") as queue:
            return await queue.enqueue_many([sitq.Task("app:job", (i,)) for i in range(120)])

    ids = asyncio.run(store())
    seen: list[str] = []
    with TestClient(create_app(url)) as client:
        html = client.get("/tasks").text
        while True:
            seen += re.findall(r'data-testid="task-row" data-task-id="([^"]+)"', html)
            following = re.search(r'data-testid="next-page" href="([^"]+)"', html)
            if following is None:
                break
            html = client.get(following.group(1).replace("&amp;", "&")).text
    assert seen == list(reversed(ids))


def test_schedules_show_their_next_fire_when_the_app_declares_them(tmp_path: Path) -> None:
    queue = sitq.TaskQueue(f"sqlite:///{tmp_path / 'periodic.db'}")

    @queue.periodic(every=timedelta(minutes=5))
    def tick() -> None:
        """Runs every five minutes."""

    (name,) = queue.schedules

    async def store() -> None:
        await queue.connect()
        await queue.backend.add_schedules({name: queue.schedules[name].trigger.describe()})

    asyncio.run(store())
    with TestClient(create_app(queue)) as client:
        row = _row(client.get("/schedules").text, f'data-schedule="{html_text.escape(name)}"')
    assert re.search(r'data-testid="schedule-next">\d{4}-\d\d-\d\d ', row)


def test_a_sync_queue_decodes_with_its_own_serializer_and_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'signed.db'}"
    queue = sitq.SyncTaskQueue(url, serializer="json", secret_key="k" * 32)
    try:
        task_id = queue.enqueue("app:greet", "Ada")
        with TestClient(create_app(queue)) as client:
            html = client.get(f"/tasks/{task_id}").text
        assert "<code>&#39;Ada&#39;</code>" in html  # signature checked, then decoded
    finally:
        queue.close()
