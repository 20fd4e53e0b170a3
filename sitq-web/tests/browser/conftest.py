"""Fixtures of the browser tests: a seeded store (a SQLite file, then PostgreSQL tables) with a
real worker process serving it, the dashboard on it served by uvicorn, and headless Chromium
driven by Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from browser_support import CHROMIUM, PATIENCE, VIEWPORT, served, worker_process
from dashboard_store import APP, SERVED_QUEUES, Seeded, Store, seed, write_app
from store_urls import postgres_url, sqlite_url

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Dialog, Page


#: Where `mounted_dashboard` mounts the dashboard in an app of its own.
MOUNT_PATH = "/ops/sitq"

#: The stores every test runs on, one after the other.
STORES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=[pytest.mark.needs_postgres]),
]


@pytest.fixture(scope="module")
def store_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of the worker's module and log (and of the SQLite file)."""
    folder = tmp_path_factory.mktemp("dashboard")
    write_app(folder)
    return folder


@pytest.fixture(scope="module", params=STORES)
def store(request: pytest.FixtureRequest, store_folder: Path) -> Iterator[Store]:
    """The tests' own handle on the store: SQLite, then PostgreSQL."""
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = sqlite_url(store_folder)
        else:
            url = stack.enter_context(postgres_url())
        handle = Store(url)
        stack.callback(handle.close)
        yield handle


@pytest.fixture(scope="module")
def seeded(store_folder: Path, store: Store) -> Iterator[Seeded]:
    """The seeded tasks, with a real ``sitq worker`` process serving `SERVED_QUEUES` for the
    whole module (a short lease, so a cancelled task's worker learns it within a second; no grace
    at the end for the task still running)."""
    options = ["--poll-interval", "0.2", "--lease-seconds", "3", "--graceful-shutdown", "0"]
    options += ["--queues", ",".join(SERVED_QUEUES)]
    with worker_process(store_folder, APP, *options, DASHBOARD_TEST_URL=store.url):
        yield seed(store)


@pytest.fixture(scope="module")
def dashboard(store: Store, seeded: Seeded) -> Iterator[str]:
    """The base URL of the dashboard on the seeded store."""
    from sitq_web import create_app

    with served(create_app(store.url)) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def read_only_dashboard(store: Store, seeded: Seeded) -> Iterator[str]:
    """The base URL of a read-only dashboard on the same store."""
    from sitq_web import create_app

    with served(create_app(store.url, read_only=True)) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def mounted_dashboard(store: Store, seeded: Seeded) -> Iterator[str]:
    """The URL of the dashboard mounted at `MOUNT_PATH` of a Starlette app, as a user mounts
    it in theirs."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from sitq_web import create_app

    host = Starlette(routes=[Mount(MOUNT_PATH, app=create_app(store.url))])
    with served(host) as base_url:
        yield base_url + MOUNT_PATH


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium from the distribution's packages; every `expect` of the tests waits
    up to `PATIENCE` (the machine may be loaded)."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=PATIENCE * 1000)

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


@pytest.fixture
def dialogs() -> list[str]:
    """The messages of the dialogs (``confirm``, ``alert``) the page opened, each accepted."""
    return []


@pytest.fixture
def page(browser: Browser, dashboard: str, dialogs: list[str]) -> Iterator[Page]:
    """A fresh browser tab (its own cookies) on the dashboard, 1280 by 800, accepting every
    dialog (the actions' confirmations) and recording it in `dialogs`."""
    context = browser.new_context(viewport=VIEWPORT, base_url=dashboard)
    tab = context.new_page()

    def accept(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    tab.on("dialog", accept)
    yield tab
    context.close()
