"""Acceptance of the dashboard in a real browser: headless Chromium from the distribution's
packages, driven by Playwright, on a store a real worker process serves: a SQLite file, then
PostgreSQL.

Each test opens a fresh tab; the store, the worker and the server are shared by the tests of
one store. ``SITQ_TEST_SCREENSHOTS=1`` saves the screenshots of the main views into
``docs/images/web/`` (the pictures the docs show) instead of a temporary folder.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from browser_support import require_chromium, screenshot_folder
from dashboard_store import (
    ECHO,
    HOSTILE_ARGUMENTS,
    LINGER,
    LINGER_SECONDS,
    PAUSED_QUEUE,
    UNSERVED_QUEUE,
    Seeded,
    Store,
)

from sitq.backend import Capability
from sitq.task import TaskStatus

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_web, pytest.mark.needs_browser]

require_chromium()
from playwright.sync_api import Browser, Page, Response, expect  # noqa: E402 (only once it is known to be there)

#: Elements an escaping mistake would let a task's arguments add to a page.
INJECTED = "script:not([src]), img, b"


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory, store: Store) -> Path:
    """Where this module's screenshots go (see the module's docstring); the docs' pictures
    are taken on SQLite, the store of their examples."""
    folder = tmp_path_factory.mktemp("screenshots")
    return screenshot_folder(folder) if store.url.startswith("sqlite") else folder


def test_every_view_through_its_links(page: Page, seeded: Seeded, pictures: Path) -> None:
    page.goto("/")
    queues = page.get_by_test_id("queue-counts")
    for name in ("default", "mail", UNSERVED_QUEUE):
        expect(queues.locator(f"tr[data-queue='{name}']")).to_be_visible()
    expect(page.get_by_test_id("oldest-pending-link")).to_have_text(seeded.pending[0])
    expect(page.get_by_test_id("workers")).to_be_visible()
    page.screenshot(path=pictures / "overview.png")

    page.get_by_test_id("nav-tasks").click()
    expect(page).to_have_url(re.compile(r"/tasks$"))
    expect(page.get_by_test_id("task-row").first).to_be_visible()
    page.screenshot(path=pictures / "tasks.png")

    failed = seeded.failed[0]
    page.locator(f"[data-testid=task-row][data-task-id='{failed}'] a").click()
    detail = page.get_by_test_id("task-detail")
    expect(detail).to_have_attribute("data-status", "failed")
    expect(detail).to_contain_text("RuntimeError: exploded on purpose")  # the traceback
    page.screenshot(path=pictures / "task-detail.png")

    page.get_by_test_id("nav-workers").click()
    running = page.locator(f"[data-testid=worker-row]:has(a[href$='/tasks/{seeded.running}'])")
    expect(running).to_be_visible()
    page.screenshot(path=pictures / "workers.png")

    page.get_by_test_id("nav-schedules").click()
    expect(
        page.locator("[data-testid=schedule-row][data-schedule='hourly-report']")
    ).to_be_visible()
    page.screenshot(path=pictures / "schedules.png")

    page.get_by_test_id("nav-limits").click()
    expect(page.locator("h1")).to_contain_text("Limits")
    if seeded.limited:
        expect(page.locator("[data-testid=limit-row][data-key='stripe']")).to_be_visible()
        paused = page.locator(f"[data-testid=queue-row][data-queue='{PAUSED_QUEUE}']")
        expect(paused).to_have_attribute("data-paused", "true")
    page.screenshot(path=pictures / "limits.png")

    page.get_by_test_id("nav-workflows").click()
    expect(page.locator("h1")).to_contain_text("Workflows")
    if seeded.workflow:
        row = page.locator(f"[data-testid=workflow-row][data-workflow-id='{seeded.workflow}']")
        expect(row).to_be_visible()
    page.screenshot(path=pictures / "workflows.png")


def test_filters_narrow_the_task_list(page: Page, seeded: Seeded) -> None:
    page.goto("/tasks")
    page.get_by_test_id("filter-status").select_option("failed")
    page.get_by_test_id("filter-submit").click()
    rows = page.get_by_test_id("task-row")
    expect(rows).to_have_count(len(seeded.failed))
    expect(rows.first).to_have_attribute("data-status", "failed")

    page.goto("/tasks")
    page.get_by_test_id("filter-queue").select_option(UNSERVED_QUEUE)
    page.get_by_test_id("filter-text").fill("xss-img")
    page.get_by_test_id("filter-submit").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-task-id", seeded.pending[1])


def test_hostile_arguments_are_shown_as_text(
    page: Page, seeded: Seeded, dialogs: list[str]
) -> None:
    page.goto(f"/tasks?queue={UNSERVED_QUEUE}")
    expect(page.get_by_test_id("task-row").first).to_be_visible()
    for task_id, text in zip(seeded.pending, HOSTILE_ARGUMENTS, strict=True):
        page.goto(f"/tasks/{task_id}")
        # Shown as the Python literal of the call (quotes escaped by repr, markup by HTML).
        expect(page.get_by_test_id("task-args")).to_contain_text(repr(text))
        expect(page.get_by_test_id("task-detail").locator(INJECTED)).to_have_count(0)
    page.goto(f"/tasks/{seeded.succeeded[0]}")
    expect(page.get_by_test_id("task-result")).to_contain_text(HOSTILE_ARGUMENTS[0])
    expect(page.get_by_test_id("task-detail").locator(INJECTED)).to_have_count(0)
    assert not [message for message in dialogs if "xss" in message]


def test_retry_puts_a_dead_task_back_to_pending(page: Page, store: Store, seeded: Seeded) -> None:
    assert store.status(seeded.dead) == TaskStatus.DEAD
    page.goto(f"/tasks/{seeded.dead}")
    page.get_by_test_id("action-retry").click()
    expect(page.get_by_test_id("flash")).to_be_visible()
    # Its queue is one the worker does not serve: it stays pending, ready to run.
    assert store.status(seeded.dead) == TaskStatus.PENDING
    expect(page.get_by_test_id("task-detail")).to_have_attribute("data-status", "pending")


def test_cancel_stops_a_running_task(
    page: Page, store: Store, seeded: Seeded, dialogs: list[str]
) -> None:
    task_id = store.enqueue(LINGER, LINGER_SECONDS)
    store.wait_for_status(task_id, TaskStatus.RUNNING)
    page.goto(f"/tasks/{task_id}")
    page.get_by_test_id("action-cancel").click()
    expect(page.get_by_test_id("flash")).to_be_visible()
    assert store.status(task_id) == TaskStatus.CANCELLED
    assert dialogs, "the action was not confirmed"


def test_a_paused_queue_is_not_claimed_until_resumed(
    page: Page, store: Store, seeded: Seeded
) -> None:
    if not store.supports(Capability.FLOW_CONTROL):
        pytest.skip(f"{store.queue.backend!r} has no flow control yet (pause_queue)")
    page.goto("/limits")
    page.locator("[data-testid=queue-row][data-queue='mail'] [data-testid=queue-pause]").click()
    expect(page.locator("[data-testid=queue-row][data-queue='mail']")).to_have_attribute(
        "data-paused", "true"
    )
    held = store.enqueue(ECHO, "held", queue="mail")
    # Claims take the earliest task first: once the later one has run, the worker has passed
    # over the held one.
    later = store.enqueue(ECHO, "later")
    store.wait_for_status(later, TaskStatus.SUCCEEDED)
    assert store.status(held) == TaskStatus.PENDING

    page.locator("[data-testid=queue-row][data-queue='mail'] [data-testid=queue-resume]").click()
    store.wait_for_status(held, TaskStatus.SUCCEEDED)


def test_a_post_without_the_csrf_token_is_refused(page: Page, store: Store, seeded: Seeded) -> None:
    task_id = seeded.failed[1]
    page.goto(f"/tasks/{task_id}")  # the browser now holds the dashboard's cookies
    forms: list[dict[str, str | float | bool]] = [{}, {"csrf_token": "forged"}]
    for form in forms:
        response = page.request.post(f"/tasks/{task_id}/retry", form=form, max_redirects=0)
        assert response.status == 403, (form, response.status, response.text())
    response = page.request.post("/tasks/bulk", form={"action": "cancel", "scope": "filter"})
    assert response.status == 403
    assert store.status(task_id) == TaskStatus.FAILED


def test_bulk_cancel_over_a_filter(page: Page, store: Store, seeded: Seeded) -> None:
    marker = f"bulk-{uuid.uuid4().hex[:8]}"
    ids = [store.enqueue(ECHO, marker, str(n), queue=UNSERVED_QUEUE) for n in range(3)]
    page.goto(f"/tasks?q={marker}")
    expect(page.get_by_test_id("task-row")).to_have_count(len(ids))
    page.get_by_test_id("bulk-action").select_option("cancel")
    page.get_by_test_id("bulk-filter").click()
    expect(page.get_by_test_id("flash")).to_be_visible()
    assert [store.status(task_id) for task_id in ids] == [TaskStatus.CANCELLED] * len(ids)


def test_live_counts_follow_the_store_without_a_reload(
    page: Page, store: Store, seeded: Seeded
) -> None:
    pending = page.locator(
        f"[data-live=count][data-live-queue='{UNSERVED_QUEUE}'][data-status='pending']"
    )
    page.goto("/")
    expect(pending).to_have_text(str(store.pending(UNSERVED_QUEUE)))
    store.enqueue(ECHO, "from outside", queue=UNSERVED_QUEUE)
    expect(pending).to_have_text(str(store.pending(UNSERVED_QUEUE)))
    # The task list's live counts and rows: in the test of the mounted dashboard.


def test_pause_and_resume_a_schedule(page: Page, store: Store, seeded: Seeded) -> None:
    row = page.locator("[data-testid=schedule-row][data-schedule='hourly-report']")
    page.goto("/schedules")
    row.get_by_test_id("schedule-pause").click()
    expect(row).to_have_attribute("data-paused", "true")
    assert store.schedule_paused("hourly-report")
    row.get_by_test_id("schedule-resume").click()
    expect(row).to_have_attribute("data-paused", "false")
    assert not store.schedule_paused("hourly-report")


def test_delete_a_finished_task(page: Page, store: Store, seeded: Seeded) -> None:
    task_id = store.enqueue(ECHO, "to be deleted")
    store.wait_for_status(task_id, TaskStatus.SUCCEEDED)
    page.goto(f"/tasks/{task_id}")
    page.get_by_test_id("action-delete").click()
    expect(page.get_by_test_id("flash")).to_be_visible()
    assert store.run(store.queue.backend.get_task(task_id)) is None


def test_a_workflow_is_shown_and_cancelled(page: Page, store: Store, seeded: Seeded) -> None:
    if not seeded.workflow:
        pytest.skip(f"{store.queue.backend!r} has no workflows yet")
    page.goto("/workflows")
    page.locator(f"[data-testid=workflow-row][data-workflow-id='{seeded.workflow}'] a").click()
    members = page.get_by_test_id("workflow-detail").get_by_test_id("task-row")
    expect(members).to_have_count(len(seeded.workflow_members))
    page.get_by_test_id("workflow-cancel").click()
    expect(page.get_by_test_id("flash")).to_be_visible()
    statuses = [store.status(task_id) for task_id in seeded.workflow_members]
    assert statuses == [TaskStatus.SUCCEEDED, TaskStatus.CANCELLED, TaskStatus.CANCELLED]


def test_read_only_shows_and_never_acts(
    browser: Browser, read_only_dashboard: str, store: Store, seeded: Seeded
) -> None:
    context = browser.new_context(base_url=read_only_dashboard)
    try:
        page = context.new_page()
        page.goto(f"/tasks/{seeded.failed[0]}")
        expect(page.get_by_test_id("read-only")).to_be_visible()
        expect(page.get_by_test_id("task-traceback")).to_contain_text("exploded on purpose")
        expect(page.locator("form[method=post]")).to_have_count(0)
        # With this browser's real CSRF token: refused for being read-only, not as a forgery.
        cookies = {c.get("name"): c.get("value", "") for c in context.cookies()}
        form: dict[str, str | float | bool] = {"csrf_token": cookies["sitq_web_csrf"]}
        response = page.request.post(f"/tasks/{seeded.failed[0]}/retry", form=form)
        assert response.status == 403
        assert store.status(seeded.failed[0]) == TaskStatus.FAILED
    finally:
        context.close()


def test_mounted_under_a_path_its_links_script_and_actions_follow(
    browser: Browser, mounted_dashboard: str, store: Store, seeded: Seeded
) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        refused: list[str] = []  # what the pages asked for that the mount did not serve

        def check(response: Response) -> None:
            if response.status >= 400:
                refused.append(f"{response.status} {response.url}")

        page.on("response", check)
        page.goto(f"{mounted_dashboard}/tasks?queue={UNSERVED_QUEUE}")
        counted = page.get_by_test_id("live-counts").locator("[data-status=pending]")
        expect(counted).to_have_text(str(store.pending(UNSERVED_QUEUE)))
        task_id = store.enqueue(ECHO, "seen under a mount", queue=UNSERVED_QUEUE)
        row = page.locator(f"[data-testid=task-row][data-task-id='{task_id}']")
        expect(row).to_be_visible()  # no reload: the live script polled the mounted path
        expect(counted).to_have_text(str(store.pending(UNSERVED_QUEUE)))
        row.get_by_test_id("task-link").click()
        expect(page).to_have_url(f"{mounted_dashboard}/tasks/{task_id}")
        page.get_by_test_id("action-cancel").click()
        expect(page.get_by_test_id("flash")).to_be_visible()
        assert store.status(task_id) == TaskStatus.CANCELLED
        assert not refused
    finally:
        context.close()
